// The x86 loops of qlinear.h with AVX-512 VNNI's `vpdpbusd` (u8 x s8 products summed in 32-bit lanes, 256-bit
// registers: AVX512VL), picked at run time on CPUs that have it (Ice Lake and later Xeons, AMD Zen 4+).
// Same packing and the same integer sums as the AVX2 loops (qlinear.h), so the same float results bit for
// bit; one instruction where AVX2 needs two or three:
//   int4: maddubs (u4 weights x s8 activations -> s16 pairs) + add16 per half-pair, a madd to 32 bits per
//         group  ->  dpbusd per half-pair
//   int8: abs + sign + maddubs(|x|, w with x's sign) + madd + add per row  ->  xor + dpbusd(x + 128, w) per
//         row and one dpbusd(128, w) per step for all rows (the 128 sum w correction)
// Included by qlinear.h (x86-64 GCC/Clang only); EDGESLM_QLINEAR_NO_VNNI=1 forces the AVX2 loops (tests).
#pragma once

#define EDGESLM_QL_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

namespace edgeslm_kernels {

inline bool cpu_has_avx512vnni() {
  static const bool ok = [] {
    const char* off = std::getenv("EDGESLM_QLINEAR_NO_VNNI");
    return !(off && off[0] == '1') && cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return ok;
}

// q4_rows_simd with vpdpbusd: the group's 32-bit sums directly (the 16-bit partials never overflowed, so
// the totals are the same integers).
template <int R>
EDGESLM_QL_VNNI inline void q4_rows_vnni(const int8_t* q, const float* xs, const int32_t* gsum, int64_t K,
                                         const uint8_t* wb, const uint16_t* sb, float* dst, int64_t ldo,
                                         const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  __m256 facc[R];
  for (int r = 0; r < R; ++r) facc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* wp = wb + g * 128;
    prefetch_ahead(wp, 2);
    __m256i acc[R], acc2[R];                    // two dependency chains: vpdpbusd's latency is ~5 cycles
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_set1_epi32(-8 * gsum[r * G + g]);   // u = w + 8
      acc2[r] = _mm256_setzero_si256();
    }
    for (int p = 0; p < 4; ++p) {
      __m256i lo, hi;
      nibbles(wp + 32 * p, lo, hi);
      for (int r = 0; r < R; ++r) {
        const int8_t* qp = q + r * K + g * kQGroup + 8 * p;
        acc[r] = _mm256_dpbusd_epi32(acc[r], lo, bcast4(qp));
        acc2[r] = _mm256_dpbusd_epi32(acc2[r], hi, bcast4(qp + 4));
      }
    }
    for (int r = 0; r < R; ++r) acc[r] = _mm256_add_epi32(acc[r], acc2[r]);
    const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + g * kQCols)));
    for (int r = 0; r < R; ++r)
      facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r]), _mm256_mul_ps(scale, _mm256_set1_ps(xs[r * G + g])),
                                facc[r]);
  }
  for (int r = 0; r < R; ++r) store_cols(facc[r], dst + r * ldo, bias, cols);
}

// q8_rows_simd with vpdpbusd on x + 128 (unsigned) and the weights: sum (x + 128) w = sum x w + 128 sum w, the
// 128 sum w of each column from one more vpdpbusd per step shared by all rows (no |x| and sign per row).
// Exact: 32-bit sums, no saturation.
template <int R>
EDGESLM_QL_VNNI inline void q8_rows_vnni(const int8_t* q, const float* xs, int64_t K, const int8_t* wb,
                                         const float* sb, float* dst, int64_t ldo, const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  const __m256i bias128 = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 facc[R];
  for (int r = 0; r < R; ++r) facc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    prefetch_ahead(wb + 256 * g, 4);
    __m256i acc[R], acc2[R];                    // even and odd steps: two dependency chains
    __m256i wsum = _mm256_setzero_si256(), wsum2 = wsum;   // 128 * sum of the group's weights, per column
    for (int r = 0; r < R; ++r) acc[r] = acc2[r] = _mm256_setzero_si256();
    for (int64_t s = 8 * g; s < 8 * g + 8; s += 2) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 32 * s));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 32 * s + 32));
      wsum = _mm256_dpbusd_epi32(wsum, bias128, w0);
      wsum2 = _mm256_dpbusd_epi32(wsum2, bias128, w1);
      for (int r = 0; r < R; ++r) {
        const int8_t* qp = q + r * K + 4 * s;
        const __m256i x0 = _mm256_xor_si256(bcast4(qp), bias128);   // x + 128 as u8
        const __m256i x1 = _mm256_xor_si256(bcast4(qp + 4), bias128);
        acc[r] = _mm256_dpbusd_epi32(acc[r], x0, w0);
        acc2[r] = _mm256_dpbusd_epi32(acc2[r], x1, w1);
      }
    }
    wsum = _mm256_add_epi32(wsum, wsum2);
    for (int r = 0; r < R; ++r) {
      const __m256i d = _mm256_sub_epi32(_mm256_add_epi32(acc[r], acc2[r]), wsum);
      facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(xs[r * G + g]), facc[r]);
    }
  }
  const __m256 scale = _mm256_loadu_ps(sb);
  for (int r = 0; r < R; ++r) store_cols(_mm256_mul_ps(facc[r], scale), dst + r * ldo, bias, cols);
}

}  // namespace edgeslm_kernels
