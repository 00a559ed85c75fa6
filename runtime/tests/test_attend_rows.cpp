// runtime/kernels/attend_row.h against a double-precision reference: head sizes that exercise the
// 32-, 8- and 1-component paths, 1..4 rows per call, lengths around the 8-key vectors, sliding-window
// bands with -inf holes, soft-capping. Prints "all checks passed" (run by tests/test_sdpa_kernel.py).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../kernels/attend_row.h"

using edgeslm_kernels::attend_rows;

int main() {
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  double worst = 0.0;
  int cases = 0;
  for (int64_t D : {16, 40, 64, 80, 128}) {
    for (int64_t L : {1, 7, 8, 9, 148, 600}) {
      for (int m = 1; m <= 4; ++m) {
        for (int variant = 0; variant < 3; ++variant) {   // 0 causal prefix, 1 window band + hole, 2 softcap
          const int64_t S = 640;
          const float softcap = variant == 2 ? 5.0f : 0.0f;
          std::vector<float> q(m * D), k(D * S), v(S * D), mask(S), out(m * D, 7.0f), scratch(4 * S);
          for (auto& x : q) x = normal(gen) / 4;
          for (auto& x : k) x = normal(gen);
          for (auto& x : v) x = normal(gen);
          for (int64_t j = 0; j < S; ++j) {
            bool visible = j < L;
            if (variant == 1) visible = visible && j > L - 6 && j != L - 3;   // band [L-5, L-1] minus a hole
            mask[j] = visible ? 0.0f : -INFINITY;
          }
          const float* qs[4];
          float* os[4];
          for (int i = 0; i < m; ++i) {
            qs[i] = q.data() + i * D;
            os[i] = out.data() + i * D;
          }
          attend_rows(qs, os, m, k.data(), v.data(), mask.data(), D, S, L, softcap, scratch.data());
          for (int i = 0; i < m; ++i) {
            std::vector<double> p(L, 0.0);
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < L; ++j) {
              if (mask[j] != 0.0f) continue;
              double s = 0.0;
              for (int64_t d = 0; d < D; ++d) s += (double)q[i * D + d] * k[d * S + j];
              if (softcap > 0) s = std::tanh(s / softcap) * softcap;
              p[j] = s;
              mx = std::max(mx, s);
            }
            for (int64_t j = 0; j < L; ++j) {
              p[j] = mask[j] == 0.0f ? std::exp(p[j] - mx) : 0.0;
              sum += p[j];
            }
            for (int64_t d = 0; d < D; ++d) {
              double want = 0.0;
              for (int64_t j = 0; j < L; ++j) want += p[j] / sum * v[j * D + d];
              const double err = std::fabs(want - out[i * D + d]);
              worst = std::max(worst, err);
              if (!(err < 2e-5)) {
                std::printf("FAIL D=%ld L=%ld m=%d variant=%d row=%d d=%ld: got %.7f want %.7f\n", (long)D,
                            (long)L, m, variant, i, (long)d, out[i * D + d], want);
                return 1;
              }
            }
          }
          ++cases;
        }
      }
    }
  }
  std::printf("%d cases, worst abs error %.3g\nall checks passed\n", cases, worst);
  return 0;
}
