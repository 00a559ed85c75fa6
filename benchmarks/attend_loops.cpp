// One thread, the attention of a decode step (runtime/kernels/attend_row.h) with SmolLM2-135M's shapes:
// 30 layers x 3 KV heads x 3 query rows, head size 64, caches of 640 slots, L tokens of context; the
// caches of all layers are distinct buffers and a 96 MB buffer is streamed between steps, as the weights
// of a real step evict the last-level cache. float32 and float16 caches, K transposed [D, S] (older
// bundles) and key-tiled [S/16, D, 16] (exports now); int8 caches (key-tiled, a scale per row). Prints ms
// per step and the rate at which K and V bytes were read.
//   g++ -O3 -DNDEBUG -std=c++17 -I runtime/kernels benchmarks/attend_loops.cpp -o /tmp/attend_loops && /tmp/attend_loops
// (-O3 as the runtime is built, CMake Release: at -O2 GCC compiles some of these loops much worse, so -O2
// timings exaggerate differences between variants)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "attend_row.h"

using namespace edgeslm_kernels;

template <typename KV>
double step_ms(int64_t L, int reps, bool tiled) {
  const int64_t layers = 30, hkv = 3, rep = 3, D = 64, S = 640;
  constexpr int64_t P = CacheRows<KV>::kScale;          // int8: + 4 scale bytes per row
  std::vector<KV> k(layers * hkv * (D + P) * S), v(layers * hkv * S * (D + P));
  std::mt19937 gen(1);
  for (auto& x : k) x = static_cast<KV>(gen() % 1000 == 0 ? 0 : 0x3c00 & 0x3fff);   // 1.0 in float16 bits
  for (auto& x : v) x = static_cast<KV>(0x3800);                                      // 0.5
  if constexpr (sizeof(KV) == 4) {
    for (auto& x : k) x = 0.01f;
    for (auto& x : v) x = 0.5f;
  }
  if constexpr (P > 0) {                                 // int8: values 1, scales 0.01 (K) and 0.5 (V)
    const float ks = 0.01f, vs = 0.5f;
    for (auto& x : k) x = 1;
    for (auto& x : v) x = 1;
    for (int64_t t = 0; t < layers * hkv * S / kKeyTile; ++t)
      for (int64_t c = 0; c < kKeyTile; ++c) std::memcpy(&k[(t * kKeyTile) * (D + P) + D * kKeyTile + 4 * c], &ks, 4);
    for (int64_t r = 0; r < layers * hkv * S; ++r) std::memcpy(&v[r * (D + P) + D], &vs, 4);
  }
  std::vector<float> q(rep * D, 0.1f), out(rep * D), mask(S, 0.0f), scratch(kScratchRows * (S + kScratchPad));
  std::vector<char> evict(96 << 20, 1);
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    long sink = 0;
    for (size_t i = 0; i < evict.size(); i += 64) sink += evict[i];
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < layers; ++l) {
      for (int64_t g = 0; g < hkv; ++g) {
        const float* qs[3] = {q.data(), q.data() + D, q.data() + 2 * D};
        float* os[3] = {out.data(), out.data() + D, out.data() + 2 * D};
        const int64_t head = l * hkv + g;
        attend_rows(qs, os, 3, k.data() + head * (D + P) * S, v.data() + head * S * (D + P), mask.data(), D, S, L, 0.0f,
                    scratch.data(), tiled);
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
    if (sink == 42) std::printf(" ");
  }
  return best;
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  for (int64_t L : {64, 216, 512, 639}) {
    for (bool tiled : {false, true}) {
      const double f32 = step_ms<float>(L, reps, tiled), f16 = step_ms<uint16_t>(L, reps, tiled);
      const double bytes32 = 30.0 * 3 * 2 * 64 * L * 4;
      std::printf("L=%3ld K %-10s  float32 cache %.3f ms/step (%.1f GB/s of K+V)   float16 cache %.3f ms/step "
                  "(%.1f GB/s)", (long)L, tiled ? "tiled" : "transposed", f32, bytes32 / f32 / 1e6, f16,
                  bytes32 / 2 / f16 / 1e6);
      if (tiled) {
        const double i8 = step_ms<int8_t>(L, reps, tiled);
        std::printf("   int8 cache %.3f ms/step (%.1f GB/s)", i8, bytes32 * 68 / 256 / i8 / 1e6);
      }
      std::printf("\n");
    }
  }
  return 0;
}
