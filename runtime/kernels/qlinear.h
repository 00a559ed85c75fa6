// Inner loops of edgeslm::linear_q4 / linear_q8: y = x W^T with int8 dynamic activations and packed
// int4 (grouped) or int8 (per-channel) weights.
//
// Why our own: XNNPACK's QD8 x QB4W GEMM on AVX2 sign-extends every weight to 16 bits and converts
// and scales every 32-weight group per 4 columns; one core moves ~5 GB/s of int4 weights with it, so a
// 135M-parameter decode step is compute-bound, not memory-bound. These loops keep 8 output columns in
// one vector and sum a whole group of 32 in 16-bit lanes before one widening and one scale (AVX2 / SDOT;
// with AVX-512 VNNI, qlinear_vnni.h, 32-bit vpdpbusd sums of the same integers).
//
// Plain C++ (no ExecuTorch types) so it can be tested and benchmarked on its own.
//
// Activations, per group g of 32 inputs of a row (shared by every column; llama.cpp's Q8_0 blocks):
// q = clamp(round(x * (127 / max|x_g|)), -127, 127) (round half to even), xs[g] = max|x_g| / 127
// (1 for an all-zero group), gsum[g] = sum of q over the group. K must be a multiple of 32.
// sdk side: compilers/executorch/qlinear_op.py emulates exactly this.
//
// int4 packing (N padded to Np, a multiple of 8; K a multiple of 32), symmetric weights w in [-8, 7]
// stored as u = w + 8:
//   w4 [Np/8][K/32][4][32] bytes: block b, group g, pair p, byte j = c*4 + i (column 8b + c) holds
//       u[k = 32g + 8p + i] in its low nibble and u[k = 32g + 8p + 4 + i] in its high nibble.
//   s4 [Np/8][K/32][8] float16 bits: the weight scale of column 8b + c over group g.
//   y[n] = sum_g xs[g] * s4[n][g] * (sum_k u q - 8 gsum[g])
// int8 packing, symmetric weights in [-127, 127] (the AVX2 loop negates weights by
// the activation's sign: -128 would not survive):
//   w8 [Np/8][K/4][32] int8: block b, step s, byte c*4 + i = w[8b + c][4s + i];  s8 [Np] float32.
//   y[n] = s8[n] * sum_g xs[g] * sum_k w q
// Overflow: 16-bit lanes hold at most 8 steps x 2 x 15 x 127 = 30480 (int4); int8 widens after every
// step (2 x 127 x 127 = 32258).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "vec8.h"   // half_to_float, cpu_has_avx2

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define EDGESLM_QL_X86 1
#define EDGESLM_QL_SIMD __attribute__((target("avx2,fma,f16c")))
#elif defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)   // Linux arm64 ABI (bionic's headers may not define it)
#endif
#endif
#define EDGESLM_QL_ARM 1
#if defined(__clang__)
#define EDGESLM_QL_DOTPROD __attribute__((target("dotprod")))
#else
#define EDGESLM_QL_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define EDGESLM_QL_SIMD EDGESLM_QL_DOTPROD
#endif

namespace edgeslm_kernels {

constexpr int kQGroup = 32;      // inputs per activation scale (and per int4 weight scale)
constexpr int kQCols = 8;        // output columns per packed block
constexpr int kQMaxRows = 4;     // rows sharing one pass over a weight block
// Weight bytes fetched ahead by the x86 loops: one core streamed ~12-14 GB/s on the hardware prefetcher
// alone and 14.6-18.5 GB/s with 2-4 KB of software prefetch (benchmarks/qlinear_loops.cpp, SmolLM2's
// linears, this VM); past the end of a matrix it only touches lines another task will read.
constexpr int64_t kQPrefetchBytes = 4096;

// One row x[K] -> q[K] int8, xs[K/32], gsum[K/32]. Portable version.
inline void quantize_row_scalar(const float* x, int64_t K, int8_t* q, float* xs, int32_t* gsum) {
  for (int64_t g = 0; g < K / kQGroup; ++g) {
    const float* xg = x + g * kQGroup;
    float amax = 0.0f;
    for (int k = 0; k < kQGroup; ++k) amax = std::max(amax, std::fabs(xg[k]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    xs[g] = amax > 0.0f ? amax / 127.0f : 1.0f;
    int32_t sum = 0;
    for (int k = 0; k < kQGroup; ++k) {
      const float r = std::nearbyint(xg[k] * inv);          // half to even (default rounding mode)
      q[g * kQGroup + k] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, r)));
      sum += q[g * kQGroup + k];
    }
    gsum[g] = sum;
  }
}

// ---- portable reference loops (any CPU; also the fallback) ----
// Rows: q[r*K..], xs and gsum [r*K/32..]; out[r*ldo + n] for the columns of blocks [b0, b1) below N.
inline void q4_blocks_scalar(const int8_t* q, const float* xs, const int32_t* gsum, int64_t rows, int64_t K,
                             const uint8_t* w4, const uint16_t* s4, int64_t b0, int64_t b1, int64_t N,
                             const float* bias, float* out, int64_t ldo) {
  const int64_t G = K / kQGroup;
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      float acc[kQCols] = {0};
      for (int64_t g = 0; g < G; ++g) {
        const uint8_t* wp = w4 + (b * G + g) * 128;
        const int8_t* qp = q + r * K + g * kQGroup;
        for (int c = 0; c < kQCols; ++c) {
          int32_t d = 0;
          for (int p = 0; p < 4; ++p)
            for (int i = 0; i < 4; ++i) {
              const uint8_t byte = wp[p * 32 + c * 4 + i];
              d += (byte & 0x0F) * qp[8 * p + i] + (byte >> 4) * qp[8 * p + 4 + i];
            }
          d -= 8 * gsum[r * G + g];
          acc[c] += half_to_float(s4[(b * G + g) * kQCols + c]) * xs[r * G + g] * static_cast<float>(d);
        }
      }
      for (int c = 0; c < kQCols && b * kQCols + c < N; ++c) {
        const int64_t n = b * kQCols + c;
        out[r * ldo + n] = acc[c] + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

inline void q8_blocks_scalar(const int8_t* q, const float* xs, int64_t rows, int64_t K, const int8_t* w8,
                             const float* s8, int64_t b0, int64_t b1, int64_t N, const float* bias, float* out,
                             int64_t ldo) {
  for (int64_t b = b0; b < b1; ++b) {
    const int8_t* wb = w8 + b * K * kQCols;
    for (int64_t r = 0; r < rows; ++r) {
      float acc[kQCols] = {0};
      for (int64_t g = 0; g < K / kQGroup; ++g) {
        int32_t d[kQCols] = {0};
        for (int64_t s = g * 8; s < g * 8 + 8; ++s)
          for (int c = 0; c < kQCols; ++c)
            for (int i = 0; i < 4; ++i) d[c] += wb[s * 32 + c * 4 + i] * q[r * K + 4 * s + i];
        for (int c = 0; c < kQCols; ++c) acc[c] += xs[r * (K / kQGroup) + g] * static_cast<float>(d[c]);
      }
      for (int c = 0; c < kQCols && b * kQCols + c < N; ++c) {
        const int64_t n = b * kQCols + c;
        out[r * ldo + n] = acc[c] * s8[n] + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

#if defined(EDGESLM_QL_X86)
// ---- AVX2 + FMA + F16C (picked at run time) ----
// A block's 8 columns of one row (+ bias) -> dst[0, cols): one vector store for a whole block.
EDGESLM_QL_SIMD inline void store_cols(__m256 v, float* dst, const float* bias, int cols) {
  if (cols == kQCols) {
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    _mm256_storeu_ps(dst, v);
    return;
  }
  float tmp[kQCols];
  _mm256_storeu_ps(tmp, v);
  for (int c = 0; c < cols; ++c) dst[c] = tmp[c] + (bias ? bias[c] : 0.0f);
}

// Pieces the AVX2 and the VNNI loops (qlinear_vnni.h) share; AVX2-only, so they inline into both.
// The weight lines `lines` x 64 bytes at p + kQPrefetchBytes (the stream ahead of the loop).
EDGESLM_QL_SIMD inline void prefetch_ahead(const void* p, int lines) {
  for (int l = 0; l < lines; ++l)
    _mm_prefetch(static_cast<const char*>(p) + kQPrefetchBytes + 64 * l, _MM_HINT_T0);
}

// 32 packed int4 bytes -> their low and high nibbles (u = w + 8, 0..15) as bytes.
EDGESLM_QL_SIMD inline void nibbles(const uint8_t* p, __m256i& lo, __m256i& hi) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  lo = _mm256_and_si256(v, low4);
  hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
}

// 4 activation bytes at p, broadcast to every 32-bit lane (one column's 4 inputs, for all 8 columns).
EDGESLM_QL_SIMD inline __m256i bcast4(const int8_t* p) {
  int32_t x;
  std::memcpy(&x, p, 4);
  return _mm256_set1_epi32(x);
}

// R rows of one int4 block: dst[r * ldo + c] = row r's output column c (+ bias[c]), c < cols.
template <int R>
EDGESLM_QL_SIMD inline void q4_rows_simd(const int8_t* q, const float* xs, const int32_t* gsum, int64_t K,
                                         const uint8_t* wb, const uint16_t* sb, float* dst, int64_t ldo,
                                         const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc[R];
  for (int r = 0; r < R; ++r) facc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* wp = wb + g * 128;
    prefetch_ahead(wp, 2);
    __m256i acc16[R];
    for (int r = 0; r < R; ++r) acc16[r] = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      __m256i lo, hi;
      nibbles(wp + 32 * p, lo, hi);
      for (int r = 0; r < R; ++r) {
        const int8_t* qp = q + r * K + g * kQGroup + 8 * p;
        acc16[r] = _mm256_add_epi16(acc16[r], _mm256_maddubs_epi16(lo, bcast4(qp)));
        acc16[r] = _mm256_add_epi16(acc16[r], _mm256_maddubs_epi16(hi, bcast4(qp + 4)));
      }
    }
    const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + g * kQCols)));
    for (int r = 0; r < R; ++r) {
      __m256i d = _mm256_madd_epi16(acc16[r], ones);
      d = _mm256_sub_epi32(d, _mm256_set1_epi32(8 * gsum[r * G + g]));
      facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(scale, _mm256_set1_ps(xs[r * G + g])), facc[r]);
    }
  }
  for (int r = 0; r < R; ++r) store_cols(facc[r], dst + r * ldo, bias, cols);
}

template <int R>
EDGESLM_QL_SIMD inline void q8_rows_simd(const int8_t* q, const float* xs, int64_t K, const int8_t* wb,
                                         const float* sb, float* dst, int64_t ldo, const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc[R];
  for (int r = 0; r < R; ++r) facc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    prefetch_ahead(wb + 256 * g, 4);   // the group's 256 weight bytes, kQPrefetchBytes ahead
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    for (int64_t s = 8 * g; s < 8 * g + 8; ++s) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 32 * s));
      for (int r = 0; r < R; ++r) {
        const __m256i xb = bcast4(q + r * K + 4 * s);
        // |x| (u8) x (w with x's sign): exact products, pairs fit 16 bits (2 x 127 x 127)
        const __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(xb), _mm256_sign_epi8(w, xb));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(prod, ones));
      }
    }
    for (int r = 0; r < R; ++r)
      facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r]), _mm256_set1_ps(xs[r * G + g]), facc[r]);
  }
  const __m256 scale = _mm256_loadu_ps(sb);
  for (int r = 0; r < R; ++r) store_cols(_mm256_mul_ps(facc[r], scale), dst + r * ldo, bias, cols);
}

// quantize_row_scalar with AVX2: the same float32 products, rounded half to even by vcvtps2dq.
__attribute__((target("avx2,fma,f16c"))) inline void quantize_row_avx2(const float* x, int64_t K, int8_t* q,
                                                                        float* xs, int32_t* gsum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
  for (int64_t g = 0; g < K / kQGroup; ++g) {
    const float* xg = x + g * kQGroup;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xg + 8 * j);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const float amax = _mm_cvtss_f32(m4);
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    xs[g] = amax > 0.0f ? amax / 127.0f : 1.0f;
    __m256i sum = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], _mm256_set1_ps(inv)));
      r = _mm256_max_epi32(lo, _mm256_min_epi32(hi, r));
      sum = _mm256_add_epi32(sum, r);
      const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + g * kQGroup + 8 * j), _mm_packs_epi16(w16, w16));
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    gsum[g] = _mm_cvtsi128_si32(s4);
  }
}

}  // namespace edgeslm_kernels
#include "qlinear_vnni.h"   // the same loops with AVX-512 VNNI (run-time choice)
namespace edgeslm_kernels {
#endif

#if defined(EDGESLM_QL_ARM)
// ---- arm64: SDOT (Armv8.2 dot product, picked at run time) ----
// A block's 8 columns of one row (+ bias) -> dst[0, cols).
EDGESLM_QL_SIMD inline void store_cols(float32x4_t lo, float32x4_t hi, float* dst, const float* bias, int cols) {
  if (cols == kQCols) {
    if (bias) {
      lo = vaddq_f32(lo, vld1q_f32(bias));
      hi = vaddq_f32(hi, vld1q_f32(bias + 4));
    }
    vst1q_f32(dst, lo);
    vst1q_f32(dst + 4, hi);
    return;
  }
  float tmp[kQCols];
  vst1q_f32(tmp, lo);
  vst1q_f32(tmp + 4, hi);
  for (int c = 0; c < cols; ++c) dst[c] = tmp[c] + (bias ? bias[c] : 0.0f);
}

template <int R>
EDGESLM_QL_SIMD inline void q4_rows_simd(const int8_t* q, const float* xs, const int32_t* gsum, int64_t K,
                                         const uint8_t* wb, const uint16_t* sb, float* dst, int64_t ldo,
                                         const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  const uint8x16_t low4 = vdupq_n_u8(0x0F);
  float32x4_t f0[R], f1[R];
  for (int r = 0; r < R; ++r) f0[r] = f1[r] = vdupq_n_f32(0.0f);
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* wp = wb + g * 128;
    int32x4_t a0[R], a1[R];                         // columns 0-3, 4-7
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = vdupq_n_s32(0);
    for (int p = 0; p < 4; ++p) {
      const uint8x16_t v0 = vld1q_u8(wp + 32 * p), v1 = vld1q_u8(wp + 32 * p + 16);
      const int8x16_t lo0 = vreinterpretq_s8_u8(vandq_u8(v0, low4)), hi0 = vreinterpretq_s8_u8(vshrq_n_u8(v0, 4));
      const int8x16_t lo1 = vreinterpretq_s8_u8(vandq_u8(v1, low4)), hi1 = vreinterpretq_s8_u8(vshrq_n_u8(v1, 4));
      for (int r = 0; r < R; ++r) {
        const int8_t* qp = q + r * K + g * kQGroup + 8 * p;
        int32_t x0, x1;
        std::memcpy(&x0, qp, 4);
        std::memcpy(&x1, qp + 4, 4);
        const int8x16_t xb0 = vreinterpretq_s8_s32(vdupq_n_s32(x0)), xb1 = vreinterpretq_s8_s32(vdupq_n_s32(x1));
        a0[r] = vdotq_s32(vdotq_s32(a0[r], lo0, xb0), hi0, xb1);
        a1[r] = vdotq_s32(vdotq_s32(a1[r], lo1, xb0), hi1, xb1);
      }
    }
    const float16x8_t sh = vreinterpretq_f16_u16(vld1q_u16(sb + g * kQCols));
    const float32x4_t s0 = vcvt_f32_f16(vget_low_f16(sh)), s1 = vcvt_f32_f16(vget_high_f16(sh));
    for (int r = 0; r < R; ++r) {
      const int32x4_t corr = vdupq_n_s32(8 * gsum[r * G + g]);
      const float x_scale = xs[r * G + g];
      f0[r] = vfmaq_f32(f0[r], vcvtq_f32_s32(vsubq_s32(a0[r], corr)), vmulq_n_f32(s0, x_scale));
      f1[r] = vfmaq_f32(f1[r], vcvtq_f32_s32(vsubq_s32(a1[r], corr)), vmulq_n_f32(s1, x_scale));
    }
  }
  for (int r = 0; r < R; ++r) store_cols(f0[r], f1[r], dst + r * ldo, bias, cols);
}

template <int R>
EDGESLM_QL_SIMD inline void q8_rows_simd(const int8_t* q, const float* xs, int64_t K, const int8_t* wb,
                                         const float* sb, float* dst, int64_t ldo, const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  float32x4_t f0[R], f1[R];
  for (int r = 0; r < R; ++r) f0[r] = f1[r] = vdupq_n_f32(0.0f);
  for (int64_t g = 0; g < G; ++g) {
    int32x4_t a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = vdupq_n_s32(0);
    for (int64_t s = 8 * g; s < 8 * g + 8; ++s) {
      const int8x16_t w0 = vld1q_s8(wb + 32 * s), w1 = vld1q_s8(wb + 32 * s + 16);
      for (int r = 0; r < R; ++r) {
        int32_t x4;
        std::memcpy(&x4, q + r * K + 4 * s, 4);
        const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(x4));
        a0[r] = vdotq_s32(a0[r], w0, xb);
        a1[r] = vdotq_s32(a1[r], w1, xb);
      }
    }
    for (int r = 0; r < R; ++r) {
      f0[r] = vfmaq_n_f32(f0[r], vcvtq_f32_s32(a0[r]), xs[r * G + g]);
      f1[r] = vfmaq_n_f32(f1[r], vcvtq_f32_s32(a1[r]), xs[r * G + g]);
    }
  }
  const float32x4_t s0 = vld1q_f32(sb), s1 = vld1q_f32(sb + 4);
  for (int r = 0; r < R; ++r) store_cols(vmulq_f32(f0[r], s0), vmulq_f32(f1[r], s1), dst + r * ldo, bias, cols);
}

inline bool cpu_has_dotprod() {
#if defined(__linux__)
  static const bool ok = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return ok;
#elif defined(__APPLE__)
  return true;                                      // every arm64 Apple SoC since A11 has SDOT
#else
  return false;
#endif
}
#endif

// Which loops run: 0 = portable, 1 = SIMD when the CPU has it (EDGESLM_QLINEAR_SCALAR=1 forces portable,
// for tests).
inline bool qlinear_use_simd() {
  static const bool forced_scalar = [] {
    const char* v = std::getenv("EDGESLM_QLINEAR_SCALAR");
    return v && v[0] == '1';
  }();
  if (forced_scalar) return false;
#if defined(EDGESLM_QL_X86)
  return cpu_has_avx2();
#elif defined(EDGESLM_QL_ARM)
  return cpu_has_dotprod();
#else
  return false;
#endif
}

// One row x[K] (K a multiple of 32) -> q[K] int8 (half to even, clamped to +-127), per group of 32:
// xs[g] = max|x_g| / 127, gsum[g] = sum of q.
inline void quantize_row(const float* x, int64_t K, int8_t* q, float* xs, int32_t* gsum) {
#if defined(EDGESLM_QL_X86)
  if (qlinear_use_simd()) return quantize_row_avx2(x, K, q, xs, gsum);
#endif
  quantize_row_scalar(x, K, q, xs, gsum);
}

#if defined(EDGESLM_QL_X86) || defined(EDGESLM_QL_ARM)
// R rows (template: accumulators stay in registers) of block b -> dst (row r at dst + r * ldo); kVnni: the
// AVX-512 VNNI loops (x86; inlined only into q_blocks_vnni, whose target has them).
template <bool kInt4, int R, bool kVnni>
EDGESLM_QL_SIMD inline void block_rows(const int8_t* q, const float* xs, const int32_t* gsum, int64_t K,
                                       const void* w, const void* s, int64_t b, float* dst, int64_t ldo,
                                       const float* bias, int cols) {
  const int64_t G = K / kQGroup;
  const uint8_t* w4 = static_cast<const uint8_t*>(w) + b * G * 128;
  const uint16_t* s4 = static_cast<const uint16_t*>(s) + b * G * kQCols;
  const int8_t* w8 = static_cast<const int8_t*>(w) + b * K * kQCols;
  const float* s8 = static_cast<const float*>(s) + b * kQCols;
#if defined(EDGESLM_QL_X86)
  if constexpr (kVnni) {   // int8, one row (decode): the AVX2 loop, ~8% faster in cache than q8_rows_vnni<1>
    if (kInt4) return q4_rows_vnni<R>(q, xs, gsum, K, w4, s4, dst, ldo, bias, cols);
    if (R > 1) return q8_rows_vnni<R>(q, xs, K, w8, s8, dst, ldo, bias, cols);
  }
#endif
  if (kInt4) q4_rows_simd<R>(q, xs, gsum, K, w4, s4, dst, ldo, bias, cols);
  else q8_rows_simd<R>(q, xs, K, w8, s8, dst, ldo, bias, cols);
}

// The SIMD loops over blocks [b0, b1), rows in passes of up to kQMaxRows sharing each weight block; all
// in one target-specific function (q_blocks_simd, q_blocks_vnni below) so the row loops inline and results
// go out as vector stores.
template <bool kInt4, bool kVnni>
EDGESLM_QL_SIMD inline void q_blocks_loop(const int8_t* q, const float* xs, const int32_t* gsum, int64_t rows,
                                          int64_t K, const void* w, const void* s, int64_t b0, int64_t b1, int64_t N,
                                          const float* bias, float* out, int64_t ldo) {
  const int64_t G = K / kQGroup;
  for (int64_t b = b0; b < b1; ++b) {
    const int cols = static_cast<int>(std::min<int64_t>(kQCols, N - b * kQCols));
    const float* bb = bias ? bias + b * kQCols : nullptr;
    for (int64_t r0 = 0; r0 < rows; r0 += kQMaxRows) {
      const int8_t* qr = q + r0 * K;
      const float* xr = xs + r0 * G;
      const int32_t* gr = kInt4 ? gsum + r0 * G : nullptr;
      float* dst = out + r0 * ldo + b * kQCols;
      switch (std::min<int64_t>(kQMaxRows, rows - r0)) {
        case 4: block_rows<kInt4, 4, kVnni>(qr, xr, gr, K, w, s, b, dst, ldo, bb, cols); break;
        case 3: block_rows<kInt4, 3, kVnni>(qr, xr, gr, K, w, s, b, dst, ldo, bb, cols); break;
        case 2: block_rows<kInt4, 2, kVnni>(qr, xr, gr, K, w, s, b, dst, ldo, bb, cols); break;
        default: block_rows<kInt4, 1, kVnni>(qr, xr, gr, K, w, s, b, dst, ldo, bb, cols); break;
      }
    }
  }
}

template <bool kInt4>
EDGESLM_QL_SIMD __attribute__((flatten)) void q_blocks_simd(const int8_t* q, const float* xs, const int32_t* gsum,
                                                            int64_t rows, int64_t K, const void* w, const void* s,
                                                            int64_t b0, int64_t b1, int64_t N, const float* bias,
                                                            float* out, int64_t ldo) {
  q_blocks_loop<kInt4, false>(q, xs, gsum, rows, K, w, s, b0, b1, N, bias, out, ldo);
}

#if defined(EDGESLM_QL_X86)
template <bool kInt4>
EDGESLM_QL_VNNI __attribute__((flatten)) void q_blocks_vnni(const int8_t* q, const float* xs, const int32_t* gsum,
                                                            int64_t rows, int64_t K, const void* w, const void* s,
                                                            int64_t b0, int64_t b1, int64_t N, const float* bias,
                                                            float* out, int64_t ldo) {
  q_blocks_loop<kInt4, true>(q, xs, gsum, rows, K, w, s, b0, b1, N, bias, out, ldo);
}
#endif
#endif

// Writes out[r*ldo + n] (+ bias) for the rows and the blocks [b0, b1); columns >= N are not written.
template <bool kInt4>
inline void q_blocks(const int8_t* q, const float* xs, const int32_t* gsum, int64_t rows, int64_t K,
                     const void* w, const void* s, int64_t b0, int64_t b1, int64_t N, const float* bias,
                     float* out, int64_t ldo) {
  const bool simd = qlinear_use_simd();
  if (!simd) {
    if (kInt4)
      q4_blocks_scalar(q, xs, gsum, rows, K, static_cast<const uint8_t*>(w), static_cast<const uint16_t*>(s),
                       b0, b1, N, bias, out, ldo);
    else
      q8_blocks_scalar(q, xs, rows, K, static_cast<const int8_t*>(w), static_cast<const float*>(s), b0, b1, N,
                       bias, out, ldo);
    return;
  }
#if defined(EDGESLM_QL_X86)
  if (cpu_has_avx512vnni()) return q_blocks_vnni<kInt4>(q, xs, gsum, rows, K, w, s, b0, b1, N, bias, out, ldo);
#endif
#if defined(EDGESLM_QL_X86) || defined(EDGESLM_QL_ARM)
  q_blocks_simd<kInt4>(q, xs, gsum, rows, K, w, s, b0, b1, N, bias, out, ldo);
#endif
}

}  // namespace edgeslm_kernels
