// stats.cpp — see stats.h.
#include "stats.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace edgeslm {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

int64_t peak_rss_bytes() {
#if defined(__linux__)
  // VmHWM: this process image's own high-water mark. getrusage's ru_maxrss survives execve and starts
  // from the spawning process's RSS (a runner started by a 300 MB Python reported 326 MB, 9 MB alone).
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
    std::fclose(f);
    if (kib > 0) return (int64_t)kib * 1024;
  }
#endif
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
#if defined(__APPLE__)
  return (int64_t)ru.ru_maxrss;           // bytes on macOS
#else
  return (int64_t)ru.ru_maxrss * 1024;    // KiB on Linux
#endif
}

int64_t heap_in_use_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  return (int64_t)(mi.uordblks + mi.hblkhd);  // allocated chunks + mmapped chunks
#else
  return -1;
#endif
}

}  // namespace edgeslm
