// Scores of query rows against one tile of an int8 K cache with integer dot products (attend_row.h's score
// pass for int8 caches; llama.cpp does the same for its q8_0 caches).
//
// int8 K tile layout (attend_row.h CacheRows): [D/4, 16, 4] component bytes, then the 16 keys' float32
// scales: byte (d/4)*64 + 4k + d%4 = component d of key k, so a group of 4 components of all 16 keys is one
// 64-byte line (one zmm, 4 NEON registers) and one 4-byte broadcast of a query feeds them all (vpdpbusd,
// SDOT). The scales start at byte 16*D as before; D must be a multiple of 4 (k_layout_ok).
//
// A query row q [D] (scaled) is quantized once per span like a cache row: qs = max|q| / 127,
// q8 = round-half-even(q * (127 / max|q|)) (an all-zero row: q8 = 0, qs = 0). Then
// score(key k) = (sum_d q8[d] k8[d]) * qs * ks[k], the sum an exact int32 (|sum| <= 512 * 127 * 127).
// Every variant sums the same integers, so the scores are the same floats on every CPU:
//   kDotScalar  plain loops (any CPU)
//   kDotAvx2    |q| (u8) x (k with q's sign) with maddubs + madd (pairs fit 16 bits: 2 x 127 x 127)
//   kDotVnni    AVX-512 VNNI on 512-bit registers: dpbusd(q + 128, k) - dpbusd(128, k), one line per group
//   kDotSdot    arm64 SDOT (Armv8.2 dot product), 4 keys per instruction
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "qlinear.h"   // cpu_has_avx512vnni, cpu_has_dotprod; arm_neon.h / immintrin.h

namespace edgeslm_kernels {

constexpr int64_t kMaxInt8HeadDim = 512;   // head size an int8 cache supports (the rows' int8 copies on the stack)

enum DotKind { kDotScalar = 0, kDotAvx2 = 1, kDotVnni = 2, kDotSdot = 3 };

#if defined(EDGESLM_QL_X86)
#define EDGESLM_X86_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#endif

// Byte offset of component d of key k (0..15) in an int8 K tile.
inline int64_t int8_k_offset(int64_t d, int64_t k) { return (d / 4) * 64 + 4 * k + d % 4; }

// m query rows quantized for the integer score pass (q8 row i at q8[i], 4-byte aligned groups).
template <int m>
struct QueryInt8 {
  alignas(64) int8_t q8[m][kMaxInt8HeadDim];
  float qs[m];
};

// q [D] -> q8 [D], returns qs (see the header comment; the same arithmetic as sdpa_op.py quantize_query_int8).
inline float quantize_query(const float* q, int64_t D, int8_t* q8) {
  float amax = 0.0f;
  for (int64_t d = 0; d < D; ++d) amax = std::max(amax, std::fabs(q[d]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t d = 0; d < D; ++d) {
    const float r = (q[d] * inv + 12582912.0f) - 12582912.0f;   // half to even (|r| <= 127: exact)
    q8[d] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
  }
  return amax / 127.0f;
}

inline int32_t group4(const int8_t* p) {   // 4 bytes as one 32-bit lane
  int32_t x;
  std::memcpy(&x, p, 4);
  return x;
}

// sums[i][k] = sum_d q8_i[d] k8[d] of row i and key k of the tile kt, one function per variant (each with
// its target; they inline into attend_row.h's attend_span_* functions, which flatten their callees).
template <int m>
inline void int8_sums_scalar(const QueryInt8<m>& qr, const int8_t* kt, int64_t D, int32_t (*sums)[16]) {
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < 16; ++k) sums[i][k] = 0;
  for (int64_t g = 0; g < D / 4; ++g)
    for (int k = 0; k < 16; ++k)
      for (int i = 0; i < m; ++i)
        for (int c = 0; c < 4; ++c) sums[i][k] += qr.q8[i][4 * g + c] * kt[64 * g + 4 * k + c];
}

#if defined(EDGESLM_QL_X86)
template <int m>
EDGESLM_QL_SIMD inline void int8_sums_avx2(const QueryInt8<m>& qr, const int8_t* kt, int64_t D, int32_t (*sums)[16]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a0[m], a1[m];
  for (int i = 0; i < m; ++i) a0[i] = a1[i] = _mm256_setzero_si256();
  for (int64_t g = 0; g < D / 4; ++g) {
    const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kt + 64 * g));
    const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kt + 64 * g + 32));
    for (int i = 0; i < m; ++i) {
      const __m256i x = _mm256_set1_epi32(group4(qr.q8[i] + 4 * g)), ax = _mm256_abs_epi8(x);
      a0[i] = _mm256_add_epi32(a0[i], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(k0, x)), ones));
      a1[i] = _mm256_add_epi32(a1[i], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(k1, x)), ones));
    }
  }
  for (int i = 0; i < m; ++i) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[i]), a0[i]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[i] + 8), a1[i]);
  }
}

// Two sets of chains (even / odd groups): vpdpbusd's latency is ~5 cycles.
template <int m>
EDGESLM_X86_VNNI inline void int8_sums_vnni(const QueryInt8<m>& qr, const int8_t* kt, int64_t D, int32_t (*sums)[16]) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i a[m], b[m], ksum = _mm512_setzero_si512(), ksum2 = ksum;   // ksum: 128 * sum of each key's bytes
  for (int i = 0; i < m; ++i) a[i] = b[i] = _mm512_setzero_si512();
  int64_t g = 0;
  for (; g + 2 <= D / 4; g += 2) {
    const __m512i k0 = _mm512_loadu_si512(kt + 64 * g), k1 = _mm512_loadu_si512(kt + 64 * g + 64);
    ksum = _mm512_dpbusd_epi32(ksum, bias, k0);
    ksum2 = _mm512_dpbusd_epi32(ksum2, bias, k1);
    for (int i = 0; i < m; ++i) {
      const int8_t* qp = qr.q8[i] + 4 * g;
      a[i] = _mm512_dpbusd_epi32(a[i], _mm512_xor_si512(_mm512_set1_epi32(group4(qp)), bias), k0);
      b[i] = _mm512_dpbusd_epi32(b[i], _mm512_xor_si512(_mm512_set1_epi32(group4(qp + 4)), bias), k1);
    }
  }
  if (g < D / 4) {                                            // D/4 odd: the last group
    const __m512i k0 = _mm512_loadu_si512(kt + 64 * g);
    ksum = _mm512_dpbusd_epi32(ksum, bias, k0);
    for (int i = 0; i < m; ++i)
      a[i] = _mm512_dpbusd_epi32(a[i], _mm512_xor_si512(_mm512_set1_epi32(group4(qr.q8[i] + 4 * g)), bias), k0);
  }
  ksum = _mm512_add_epi32(ksum, ksum2);
  for (int i = 0; i < m; ++i) _mm512_storeu_si512(sums[i], _mm512_sub_epi32(_mm512_add_epi32(a[i], b[i]), ksum));
}
#endif

#if defined(EDGESLM_QL_ARM)
template <int m>
EDGESLM_QL_DOTPROD inline void int8_sums_sdot(const QueryInt8<m>& qr, const int8_t* kt, int64_t D,
                                              int32_t (*sums)[16]) {
  int32x4_t a[m][4];
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < 4; ++c) a[i][c] = vdupq_n_s32(0);
  for (int64_t g = 0; g < D / 4; ++g) {
    int8x16_t k[4];
    for (int c = 0; c < 4; ++c) k[c] = vld1q_s8(kt + 64 * g + 16 * c);   // keys 4c .. 4c + 3
    for (int i = 0; i < m; ++i) {
      const int8x16_t x = vreinterpretq_s8_s32(vdupq_n_s32(group4(qr.q8[i] + 4 * g)));
      for (int c = 0; c < 4; ++c) a[i][c] = vdotq_s32(a[i][c], k[c], x);
    }
  }
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < 4; ++c) vst1q_s32(sums[i] + 4 * c, a[i][c]);
}
#endif

// dst[i][0..16) = the 16 keys' scores of row i for the tile kt (layout above; the scales at kt + 16 * D).
template <int m, int kDot>
inline void int8_tile_scores(const QueryInt8<m>& qr, const int8_t* kt, int64_t D, float* const* dst) {
  alignas(64) int32_t sums[m][16];
  if constexpr (kDot == kDotScalar) int8_sums_scalar<m>(qr, kt, D, sums);
#if defined(EDGESLM_QL_X86)
  if constexpr (kDot == kDotAvx2) int8_sums_avx2<m>(qr, kt, D, sums);
  if constexpr (kDot == kDotVnni) int8_sums_vnni<m>(qr, kt, D, sums);
#endif
#if defined(EDGESLM_QL_ARM)
  if constexpr (kDot == kDotSdot) int8_sums_sdot<m>(qr, kt, D, sums);
#endif
  float ks[16];
  std::memcpy(ks, kt + 16 * D, sizeof ks);
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < 16; ++k) dst[i][k] = static_cast<float>(sums[i][k]) * (qr.qs[i] * ks[k]);
}

}  // namespace edgeslm_kernels
