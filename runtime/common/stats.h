// stats.h — clocks and process memory probes shared by every backend and the runner.
#pragma once

#include <cstdint>

namespace edgeslm {

double now_ms();                 // monotonic clock, milliseconds
int64_t peak_rss_bytes();        // Linux VmHWM, else getrusage ru_maxrss (under qemu-user: qemu's own)
int64_t heap_in_use_bytes();     // mallinfo2: uordblks + hblkhd (guest heap; -1 where unavailable)

}  // namespace edgeslm
