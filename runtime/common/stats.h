// stats.h — clocks and process memory probes shared by every backend and the runner.
#pragma once

#include <cstdint>

namespace edgeslm {

double now_ms();                 // monotonic clock, milliseconds
int64_t peak_rss_bytes();        // getrusage ru_maxrss (under qemu-user: qemu's RSS, not the guest's)
int64_t heap_in_use_bytes();     // mallinfo2: uordblks + hblkhd (guest heap; -1 where unavailable)

}  // namespace edgeslm
