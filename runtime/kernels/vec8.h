// 8-float vectors for edgeslm's kernels (attend_row.h, qlinear.cpp's SiLU): loads from float32 and
// float16 storage, splat/horizontal helpers and a vectorised e^x for x <= 0.
//
// GCC/Clang vector extensions: NEON on arm64, SSE2 on baseline x86-64, and on x86-64 (GCC) an FMA
// clone of each EDGESLM_VECTOR_CLONES function picked at load time. Functions that read float16 on
// x86-64 come in two variants instead (an EDGESLM_X86_AVX2 function that flattens its callees +
// cpu_has_avx2() at run time; see attend_row.h): GCC 12 converts _Float16 vectors one lane at a time,
// so the F16C conversion is the intrinsic, inlined only into functions compiled for it. float16 values are stored as their IEEE binary16
// bits (uint16_t): converted with F16C (x86-64), FCVTL (arm64) or bit arithmetic elsewhere.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define EDGESLM_X86_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGESLM_VECTOR_CLONES __attribute__((target_clones("fma", "default")))
#else
#define EDGESLM_VECTOR_CLONES
#endif

namespace edgeslm_kernels {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline v8f splat8(float x) { return v8f{x, x, x, x, x, x, x, x}; }
inline float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
inline float hmax8(v8f v) {
  float m = v[0];
  for (int i = 1; i < 8; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// binary16 bits -> float, exact for every value (subnormals, inf, NaN): the scalar fallback and tails.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);                      // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);             // normal: rebias 15 -> 127
  } else if (man == 0) {
    bits = sign;                                                  // +-0
  } else {                                                        // subnormal: normalise
    int e = -1;
    do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return half_to_float(*p); }
inline float load1(const int8_t* p) { return *p; }   // int8 caches: the value before its row's scale

// 8 cache values -> 8 floats: float32 as they are; float16 (bits) with kF16C = the x86 instruction (only
// inside EDGESLM_X86_AVX2 functions), otherwise FCVTL on arm64 and bit arithmetic elsewhere.
template <bool kF16C>
inline v8f load8_kv(const float* p) { return load8(p); }

template <bool kF16C>
inline v8f load8_kv(const uint16_t* p) {
#if defined(__aarch64__)
  const float32x4_t a = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  const float32x4_t b = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p + 4)));
  v8f v;
  std::memcpy(&v, &a, 16);
  std::memcpy(reinterpret_cast<char*>(&v) + 16, &b, 16);
  return v;
#else
  v8f v;
  for (int i = 0; i < 8; ++i) v[i] = half_to_float(p[i]);
  return v;
#endif
}

// 8 int8 cache values -> 8 floats (their row's scale applied by the caller): vpmovsxbd + vcvtdq2ps inside
// EDGESLM_X86_AVX2 functions (kF16C), sxtl + scvtf on arm64, lane by lane elsewhere.
typedef int8_t v8b __attribute__((vector_size(8)));
template <bool kF16C>
inline v8f load8_kv(const int8_t* p) {
#if defined(__aarch64__)
  const int16x8_t w = vmovl_s8(vld1_s8(p));
  const float32x4_t a = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  const float32x4_t b = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
  v8f v;
  std::memcpy(&v, &a, 16);
  std::memcpy(reinterpret_cast<char*>(&v) + 16, &b, 16);
  return v;
#else
  v8b b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(b, v8f);   // GCC 12 converts lane by lane here: x86 uses the intrinsics below
#endif
}

// splat8 inside EDGESLM_X86_AVX2 functions (kAvx2 = true): GCC 12 turns a vector-extension splat inlined
// there into eight lane inserts (vinsertps), not one vbroadcastss, so that one is the intrinsic.
template <bool kAvx2>
inline v8f splat8_on(float x) { return splat8(x); }

#if defined(EDGESLM_X86_AVX2)
template <>
EDGESLM_X86_AVX2 inline v8f load8_kv<true>(const uint16_t* p) {
  const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  v8f v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

template <>
EDGESLM_X86_AVX2 inline v8f load8_kv<true>(const int8_t* p) {
  const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  v8f v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

template <>
EDGESLM_X86_AVX2 inline v8f splat8_on<true>(float x) {
  const __m256 f = _mm256_set1_ps(x);
  v8f v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

inline bool cpu_has_avx2() {   // AVX2 + FMA + F16C
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("f16c");
  return ok;
}
#endif

// e^x for x <= 0, 8 lanes; below -87 the result is ~1e-38 (no denormals), -inf lanes give 0.
// Cephes-style polynomial, ~1 ulp for softmax's arguments (x - max <= 0).
inline v8f exp8_nonpositive(v8f x) {
  const v8i dead = x < splat8(-87.0f);                             // includes -inf
  x = dead ? splat8(-87.0f) : x;
  const v8f t = x * 1.44269504088896341f;                          // x / ln 2
  const v8f n = (t + 12582912.0f) - 12582912.0f;                   // round to nearest (|t| < 2^22)
  const v8f r = (x - n * 0.693359375f) + n * 2.12194440e-4f;       // x - n ln 2 (two-part ln 2)
  v8f p = splat8(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;  // 2^n
  v8f scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const v8f e = p * scale;
  return dead ? splat8(0.0f) : e;
}

inline float exp_nonpositive(float x) { return exp8_nonpositive(splat8(x))[0]; }

}  // namespace edgeslm_kernels
