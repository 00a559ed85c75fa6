// runtime/kernels/qlinear.h against a double-precision reference: int4 (group 32) and int8 packed
// weights, K of 32..1536, N not a multiple of 8, 1..9 rows (the 4-row passes and their tails), zero rows,
// the extreme integers (u = 0 / 15, w = +-127, q = +-127). The SIMD loops (AVX2 on x86-64, SDOT on arm64
// under qemu) and the portable loops are both checked; on x86-64 CPUs with AVX-512 VNNI its loops (the ones
// q_blocks picks there) must equal the AVX2 loops bit for bit. Prints "all checks passed" and the path taken
// (run by tests/test_qlinear.py).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "../kernels/qlinear.h"

using namespace edgeslm_kernels;

namespace {

// Packs u [Np][K] (0..15) the way compilers/executorch/qlinear_op.py does.
std::vector<uint8_t> pack4(const std::vector<uint8_t>& u, int64_t Np, int64_t K) {
  const int64_t G = K / kQGroup;
  std::vector<uint8_t> w(Np * K / 2);
  for (int64_t n = 0; n < Np; ++n)
    for (int64_t g = 0; g < G; ++g)
      for (int p = 0; p < 4; ++p)
        for (int i = 0; i < 4; ++i) {
          const int64_t b = n / kQCols, c = n % kQCols;
          const uint8_t lo = u[n * K + g * 32 + 8 * p + i], hi = u[n * K + g * 32 + 8 * p + 4 + i];
          w[(b * G + g) * 128 + p * 32 + c * 4 + i] = static_cast<uint8_t>(lo | (hi << 4));
        }
  return w;
}

std::vector<int8_t> pack8(const std::vector<int8_t>& q, int64_t Np, int64_t K) {
  std::vector<int8_t> w(Np * K);
  for (int64_t n = 0; n < Np; ++n)
    for (int64_t k = 0; k < K; ++k) w[(n / kQCols) * K * kQCols + (k / 4) * 32 + (n % kQCols) * 4 + k % 4] = q[n * K + k];
  return w;
}

uint16_t float_to_half(float f) {  // round to nearest for normal values (the test's scales)
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int32_t e = static_cast<int32_t>((b >> 23) & 0xFF) - 127 + 15;
  uint32_t man = (b >> 13) & 0x3FFu;
  if ((b >> 12) & 1u) ++man;
  return static_cast<uint16_t>(sign | ((e + (man >> 10)) << 10) | (man & 0x3FFu));
}

int failures = 0;
double worst = 0.0;
int vnni_cases = 0;

// x86-64 with AVX-512 VNNI: its loops give the AVX2 loops' floats bit for bit (the same integer sums).
template <bool kInt4>
void check_vnni_equals_avx2(const char* what, const int8_t* q, const float* xs, const int32_t* gsum, int64_t rows,
                            int64_t K, const void* w, const void* s, int64_t N, const float* bias) {
#if defined(EDGESLM_QL_X86)
  if (!cpu_has_avx512vnni()) return;
  const int64_t blocks = (N + kQCols - 1) / kQCols;
  std::vector<float> a(rows * N, NAN), b(rows * N, NAN);
  q_blocks_vnni<kInt4>(q, xs, gsum, rows, K, w, s, 0, blocks, N, bias, a.data(), N);
  q_blocks_simd<kInt4>(q, xs, gsum, rows, K, w, s, 0, blocks, N, bias, b.data(), N);
  if (std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) {
    std::printf("FAIL %s: VNNI loops differ from AVX2 at K=%lld N=%lld rows=%lld\n", what, (long long)K,
                (long long)N, (long long)rows);
    ++failures;
  }
  ++vnni_cases;
#endif
}

void check(const char* what, int64_t K, int64_t N, int64_t rows, const std::vector<float>& got,
           const std::vector<double>& want) {
  double scale = 1e-30;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]) / scale;
    worst = std::max(worst, err);
    if (!(err < 2e-6)) {
      if (failures++ < 10)
        std::printf("FAIL %s K=%lld N=%lld rows=%lld at %zu: got %.7g want %.7g\n", what, (long long)K,
                    (long long)N, (long long)rows, i, got[i], want[i]);
    }
  }
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal;
  int cases = 0;
  for (int64_t K : {32, 64, 576, 1536}) {
    for (int64_t N : {8, 13, 64}) {
      for (int64_t rows : {1, 2, 3, 4, 5, 9}) {
        const int64_t Np = (N + 7) / 8 * 8, G = K / kQGroup;
        std::vector<float> x(rows * K);
        for (auto& v : x) v = normal(gen) * 2.0f;
        if (rows >= 3) std::fill(x.begin() + K, x.begin() + 2 * K, 0.0f);   // an all-zero row
        std::vector<int8_t> q(rows * K);
        std::vector<float> xs(rows * G);
        std::vector<int32_t> gsum(rows * G);
        for (int64_t r = 0; r < rows; ++r) quantize_row(x.data() + r * K, K, q.data() + r * K, &xs[r * G], &gsum[r * G]);
        q[0] = 127;                                                      // extremes of the activation range
        if (K > 1) q[1] = -127;
        for (int64_t g = 0; g < G; ++g) {
          int32_t s = 0;
          for (int k = 0; k < 32; ++k) s += q[g * 32 + k];
          gsum[g] = s;
        }
        // int4: u in 0..15 (the extremes in the first group), scales in float16
        std::vector<uint8_t> u(Np * K);
        for (auto& v : u) v = static_cast<uint8_t>(gen() % 16);
        for (int k = 0; k < 16; ++k) u[k] = 15, u[K + k] = 0;
        std::vector<uint16_t> s4(Np * G), s4packed(Np * G);
        for (int64_t n = 0; n < Np; ++n)
          for (int64_t g = 0; g < G; ++g) {
            s4[n * G + g] = float_to_half(0.001f + 0.01f * std::fabs(normal(gen)));
            s4packed[((n / 8) * G + g) * 8 + n % 8] = s4[n * G + g];
          }
        const std::vector<uint8_t> w4 = pack4(u, Np, K);
        std::vector<double> want(rows * N);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
              acc += static_cast<double>(half_to_float(s4[n * G + k / 32])) * xs[r * G + k / 32] *
                     (u[n * K + k] - 8) * q[r * K + k];
            want[r * N + n] = acc + 0.5 * n;                              // bias 0.5 n
          }
        std::vector<float> bias(N);
        for (int64_t n = 0; n < N; ++n) bias[n] = 0.5f * n;
        for (int path = 0; path < 2; ++path) {
          std::vector<float> got(rows * N, NAN);
          // two block ranges, as the thread pool would split them
          const int64_t mid = Np / 8 / 2;
          if (path == 0) {
            q_blocks<true>(q.data(), xs.data(), gsum.data(), rows, K, w4.data(), s4packed.data(), 0, mid, N,
                           bias.data(), got.data(), N);
            q_blocks<true>(q.data(), xs.data(), gsum.data(), rows, K, w4.data(), s4packed.data(), mid, Np / 8, N,
                           bias.data(), got.data(), N);
          } else {
            q4_blocks_scalar(q.data(), xs.data(), gsum.data(), rows, K, w4.data(), s4packed.data(), 0, Np / 8, N,
                             bias.data(), got.data(), N);
          }
          check(path ? "int4 portable" : "int4 simd", K, N, rows, got, want);
        }
        check_vnni_equals_avx2<true>("int4", q.data(), xs.data(), gsum.data(), rows, K, w4.data(), s4packed.data(), N,
                                     bias.data());
        // int8: w in -127..127 (the extremes first), per-channel scales
        std::vector<int8_t> wq(Np * K);
        for (auto& v : wq) v = static_cast<int8_t>(static_cast<int>(gen() % 255) - 127);
        wq[0] = 127, wq[1] = -127, wq[K] = -127;
        std::vector<float> s8(Np);
        for (auto& v : s8) v = 0.001f + 0.01f * std::fabs(normal(gen));
        const std::vector<int8_t> w8 = pack8(wq, Np, K);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
              acc += static_cast<double>(wq[n * K + k]) * q[r * K + k] * xs[r * G + k / 32];
            want[r * N + n] = acc * s8[n] + 0.5 * n;
          }
        for (int path = 0; path < 2; ++path) {
          std::vector<float> got(rows * N, NAN);
          if (path == 0) {
            q_blocks<false>(q.data(), xs.data(), nullptr, rows, K, w8.data(), s8.data(), 0, Np / 8, N, bias.data(),
                            got.data(), N);
          } else {
            q8_blocks_scalar(q.data(), xs.data(), rows, K, w8.data(), s8.data(), 0, Np / 8, N, bias.data(),
                             got.data(), N);
          }
          check(path ? "int8 portable" : "int8 simd", K, N, rows, got, want);
        }
        check_vnni_equals_avx2<false>("int8", q.data(), xs.data(), nullptr, rows, K, w8.data(), s8.data(), N,
                                      bias.data());
        ++cases;
      }
    }
  }
  // quantize_row: per-group scales, round half to even, clamp, zero groups; SIMD == portable
  {
    std::vector<float> x(64, 0.0f);                                  // group 0: ties (amax 127: inv 1); group 1: zeros
    for (int k = 0; k < 32; ++k) x[k] = k == 0 ? 127.0f : 0.5f * static_cast<float>(k) - 4.0f;
    int8_t q[64];
    float xs[2];
    int32_t gs[2];
    quantize_row(x.data(), 64, q, xs, gs);
    // x = -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5 at k = 1..9 -> -4, -3, -2, -2, -2, -1, 0, 0, 0 (to even)
    const int8_t want_q[10] = {127, -4, -3, -2, -2, -2, -1, 0, 0, 0};
    bool ok = xs[0] == 1.0f && xs[1] == 1.0f && gs[1] == 0 && q[40] == 0;
    for (int k = 0; k < 10; ++k) ok = ok && q[k] == want_q[k];
    if (!ok) {
      std::printf("FAIL quantize_row rounding: %d %d %d %d %d scales %g %g\n", q[0], q[1], q[2], q[3], q[7], xs[0], xs[1]);
      ++failures;
    }
    for (int64_t K : {32, 576}) {
      std::vector<float> v(K);
      for (auto& e : v) e = normal(gen) * 3.0f;
      std::vector<int8_t> a(K), b(K);
      std::vector<float> sa(K / 32), sb(K / 32);
      std::vector<int32_t> ga(K / 32), gb(K / 32);
      quantize_row(v.data(), K, a.data(), sa.data(), ga.data());
      quantize_row_scalar(v.data(), K, b.data(), sb.data(), gb.data());
      if (a != b || sa != sb || ga != gb) {
        std::printf("FAIL quantize_row (simd) differs from quantize_row_scalar at K=%lld\n", (long long)K);
        ++failures;
      }
    }
  }
  std::printf("%d cases, simd path %s, worst relative error %.3g, VNNI == AVX2 checked in %d\n", cases,
              qlinear_use_simd() ? "taken" : "not available", worst, vnni_cases);
  if (failures) {
    std::printf("%d failures\n", failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
