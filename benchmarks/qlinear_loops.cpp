// Single-thread throughput of edgeslm's quantized linear loops (runtime/kernels/qlinear.h) over the 211
// linears of one SmolLM2-135M token (30 x q/k/v/o/gate/up/down + the lm_head), random packed weights.
// Prints ms per token pass and GB/s of weights streamed; "portable" forces the non-SIMD loop.
//
//   g++ -O3 -std=c++17 -Wno-psabi benchmarks/qlinear_loops.cpp -o /tmp/qlinear_loops
//   /tmp/qlinear_loops 4 1            # bits (4 | 8), rows per call (1 = decode, 4 = a prefill pass)
//   /tmp/qlinear_loops 4 1 1          # + transformer layers (default 30 + the lm_head; fewer: no lm_head, and
//                                     #   1 layer's weights, ~1.8 MB at int4, stay in L2/L3: the loops' compute rate)
//   EDGESLM_QLINEAR_SCALAR=1 /tmp/qlinear_loops 4 1
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "../runtime/kernels/qlinear.h"

using namespace edgeslm_kernels;

struct Linear {
  int64_t N, K;
  std::vector<uint8_t> w;
  std::vector<uint16_t> s4;
  std::vector<float> s8;
};

int main(int argc, char** argv) {
  const int bits = argc > 1 ? std::atoi(argv[1]) : 4;
  const int64_t rows = argc > 2 ? std::atoi(argv[2]) : 1;
  const int n_layers = argc > 3 ? std::atoi(argv[3]) : 30;
  std::mt19937 gen(1);
  std::vector<Linear> layers;
  for (int l = 0; l < n_layers; ++l)
    for (auto nk : {std::pair<int, int>{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576},
                    {576, 1536}})
      layers.push_back({nk.first, nk.second, {}, {}, {}});
  if (n_layers == 30) layers.push_back({49152, 576, {}, {}, {}});
  double bytes = 0;
  for (auto& x : layers) {
    x.w.resize(bits == 4 ? x.N * x.K / 2 : x.N * x.K);
    for (auto& b : x.w) b = static_cast<uint8_t>(bits == 4 ? gen() : gen() % 255 + 1);   // int8: no -128
    if (bits == 4) {
      x.s4.assign(x.N * x.K / kQGroup, 0x2000);                                           // 2^-7 in float16
      bytes += x.w.size() + 2.0 * x.s4.size();
    } else {
      x.s8.assign(x.N, 0.01f);
      bytes += x.w.size() + 4.0 * x.s8.size();
    }
  }
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * 1536), out(rows * 49152);
  for (auto& v : x) v = normal(gen);
  std::vector<int8_t> q(rows * 1536);
  std::vector<float> xs(rows * 48);
  std::vector<int32_t> gsum(rows * 48);
  double best = 1e30;
  for (int it = 0; it < (n_layers == 30 ? 7 : 7 * 30 / n_layers); ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& l : layers) {
      const int64_t G = l.K / kQGroup;
      for (int64_t r = 0; r < rows; ++r) quantize_row(x.data() + r * l.K, l.K, q.data() + r * l.K, &xs[r * G], &gsum[r * G]);
      if (bits == 4)
        q_blocks<true>(q.data(), xs.data(), gsum.data(), rows, l.K, l.w.data(), l.s4.data(), 0, l.N / 8, l.N, nullptr,
                       out.data(), l.N);
      else
        q_blocks<false>(q.data(), xs.data(), gsum.data(), rows, l.K, l.w.data(), l.s8.data(), 0, l.N / 8, l.N,
                        nullptr, out.data(), l.N);
    }
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("int%d, %lld row(s) per call, %s loops: %.2f ms per pass over %.1f MB of weights = %.2f GB/s, "
              "%.1f tokens/s (linears only, 1 thread)\n",
              bits, static_cast<long long>(rows), qlinear_use_simd() ? "SIMD" : "portable", best, bytes / 1e6,
              bytes / best / 1e6, 1000.0 / best * rows);
  return 0;
}
