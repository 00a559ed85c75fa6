// work(b0, b1) over [0, n) on ExecuTorch's thread pool with the chunks claimed dynamically.
//
// ExecuTorch's parallel_for splits a range statically, one run per thread, so the slowest thread sets
// the op's time: on a shared VM (a vCPU descheduled for a moment) and on phones, whose big and little cores
// run the same chunk at different speeds, the other threads spin. Here each of the pool's tasks claims
// chunks of >= grain items from one atomic counter until none is left (about kChunksPerThread per thread),
// so a thread that runs ahead takes more; chunks stay contiguous ranges, claimed in order.
#pragma once

#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace edgeslm_kernels {

constexpr int64_t kChunksPerThread = 4;

// False when the pool failed to run (as parallel_for). n <= grain or one thread: the calling thread does it.
template <typename F>
bool parallel_chunks(int64_t n, int64_t grain, const F& work) {
  const int64_t threads = executorch::extension::get_thread_count();
  if (n <= 0) return true;
  if (threads <= 1 || grain >= n) {
    work(int64_t{0}, n);
    return true;
  }
  const int64_t chunks = std::min((n + grain - 1) / std::max<int64_t>(grain, 1), threads * kChunksPerThread);
  const int64_t size = (n + chunks - 1) / chunks;                 // items per chunk (the last may be short)
  std::atomic<int64_t> next{0};
  return executorch::extension::parallel_for(0, std::min(threads, chunks), 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c * size < n;
         c = next.fetch_add(1, std::memory_order_relaxed))
      work(c * size, std::min(n, (c + 1) * size));
  });
}

}  // namespace edgeslm_kernels
