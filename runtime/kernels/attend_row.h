// Query rows of attention over a static KV cache: the inner loops of edgeslm::sdpa_cached(_tokens).
//
// Plain C++ (no ExecuTorch types) so it can be benchmarked and tested on its own. Up to 4 query rows
// that share a KV head and a mask row (the query heads of one token in a GQA group) are done together,
// so each K and V row is read once for all of them. Written with GCC/Clang vector extensions (8 floats):
// NEON on arm64, SSE2 on baseline x86-64, and on x86-64 an AVX+FMA clone picked at load time
// (target_clones). exp() is a Cephes-style polynomial (~1 ulp for softmax's arguments, x - max <= 0).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGESLM_VECTOR_CLONES __attribute__((target_clones("fma", "default")))
#else
#define EDGESLM_VECTOR_CLONES
#endif

namespace edgeslm_kernels {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
constexpr int kMaxRows = 4;     // query rows per call (accumulators: 4 rows x 32 components)

inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline v8f splat8(float x) { return v8f{x, x, x, x, x, x, x, x}; }
inline float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
inline float hmax8(v8f v) {
  float m = v[0];
  for (int i = 1; i < 8; ++i) m = std::max(m, v[i]);
  return m;
}

// e^x for x <= 0, 8 lanes; below -87 the result is ~1e-38 (no denormals), -inf lanes give 0.
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

inline float exp_nonpositive(float x) {
  v8f v = splat8(x);
  return exp8_nonpositive(v)[0];
}

// m query rows q[i] [D] (scaled) against one KV head: kg [D, S] (K transposed: key j's
// components are S apart), vg [S, D]; mrow [S] the rows' shared additive mask; L = slots holding tokens;
// softcap > 0: tanh soft-capping; scratch: m * L floats; out[i] [D].
// Only slots [lo, hi] between the first and last finite mask entries are computed (causal rows of a
// prefill chunk see a prefix, sliding windows a band); -inf holes inside the band get weight 0.
template <int m>
__attribute__((always_inline)) inline void attend_fixed(const float* const* q, float* const* out, const float* kg,
                                                        const float* vg, const float* mrow, int64_t D, int64_t S,
                                                        int64_t L, float softcap, float* scratch) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  int64_t lo = 0, hi = L - 1;
  while (lo < L && mrow[lo] == kNegInf) ++lo;
  while (hi >= lo && mrow[hi] == kNegInf) --hi;
  if (lo > hi) {                                                   // nothing visible: zeros
    for (int i = 0; i < m; ++i) std::fill(out[i], out[i] + D, 0.0f);
    return;
  }
  const int64_t n = hi - lo + 1, n8 = n & ~int64_t(7);
  float* sc[m];
  for (int i = 0; i < m; ++i) {
    sc[i] = scratch + i * n;
    std::fill(sc[i], sc[i] + n, 0.0f);
  }

  // scores[i][j] = q_i . K[:, lo + j]: key blocks of 512 stay in L1 across the D passes
  for (int64_t j0 = 0; j0 < n; j0 += 512) {
    const int64_t j1 = std::min(n, j0 + 512), j18 = std::min(j1, n8);
    for (int64_t d = 0; d < D; ++d) {
      const float* kr = kg + d * S + lo;
      float qd[m];
      for (int i = 0; i < m; ++i) qd[i] = q[i][d];
      for (int64_t j = j0; j < j18; j += 8) {
        const v8f k = load8(kr + j);
        for (int i = 0; i < m; ++i) store8(sc[i] + j, load8(sc[i] + j) + splat8(qd[i]) * k);
      }
      for (int64_t j = std::max(j18, j0); j < j1; ++j)
        for (int i = 0; i < m; ++i) sc[i][j] += qd[i] * kr[j];
    }
  }

  // softmax per row (cap, mask, max, exp, sum), weights normalised in place
  for (int i = 0; i < m; ++i) {
    float* s = sc[i];
    const float* mk = mrow + lo;
    for (int64_t j = 0; j < n; ++j) {
      float x = s[j];
      if (softcap > 0.0f) x = std::tanh(x / softcap) * softcap;
      s[j] = x + mk[j];
    }
    v8f mxv = splat8(kNegInf);
    for (int64_t j = 0; j < n8; j += 8) {
      const v8f x = load8(s + j);
      mxv = x > mxv ? x : mxv;
    }
    float mx = hmax8(mxv);
    for (int64_t j = n8; j < n; ++j) mx = std::max(mx, s[j]);
    v8f sumv = splat8(0.0f);
    for (int64_t j = 0; j < n8; j += 8) {
      const v8f e = exp8_nonpositive(load8(s + j) - mx);
      store8(s + j, e);
      sumv += e;
    }
    float sum = hsum8(sumv);
    for (int64_t j = n8; j < n; ++j) {
      s[j] = s[j] == kNegInf ? 0.0f : exp_nonpositive(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) s[j] *= inv;
  }

  // out_i = sum_j p_i[j] V[lo + j, :], 32 components (4 x 8 lanes) per pass, V rows read once for all rows
  const float* vb = vg + lo * D;
  int64_t d0 = 0;
  for (; d0 + 32 <= D; d0 += 32) {
    v8f acc[m][4] = {};
    for (int64_t j = 0; j < n; ++j) {
      const float* vr = vb + j * D + d0;
      const v8f v0 = load8(vr), v1 = load8(vr + 8), v2 = load8(vr + 16), v3 = load8(vr + 24);
      for (int i = 0; i < m; ++i) {
        const v8f p = splat8(sc[i][j]);
        acc[i][0] += p * v0;
        acc[i][1] += p * v1;
        acc[i][2] += p * v2;
        acc[i][3] += p * v3;
      }
    }
    for (int i = 0; i < m; ++i)
      for (int c = 0; c < 4; ++c) store8(out[i] + d0 + 8 * c, acc[i][c]);
  }
  for (; d0 + 8 <= D; d0 += 8) {
    v8f acc[m] = {};
    for (int64_t j = 0; j < n; ++j) {
      const v8f v = load8(vb + j * D + d0);
      for (int i = 0; i < m; ++i) acc[i] += splat8(sc[i][j]) * v;
    }
    for (int i = 0; i < m; ++i) store8(out[i] + d0, acc[i]);
  }
  for (; d0 < D; ++d0) {
    for (int i = 0; i < m; ++i) {
      float a = 0.0f;
      for (int64_t j = 0; j < n; ++j) a += sc[i][j] * vb[j * D + d0];
      out[i][d0] = a;
    }
  }
}

// m (1..kMaxRows) rows: the row count is a template argument below so the accumulators live in registers.
EDGESLM_VECTOR_CLONES
inline void attend_rows(const float* const* q, float* const* out, int m, const float* kg, const float* vg,
                        const float* mrow, int64_t D, int64_t S, int64_t L, float softcap, float* scratch) {
  switch (m) {
    case 1: return attend_fixed<1>(q, out, kg, vg, mrow, D, S, L, softcap, scratch);
    case 2: return attend_fixed<2>(q, out, kg, vg, mrow, D, S, L, softcap, scratch);
    case 3: return attend_fixed<3>(q, out, kg, vg, mrow, D, S, L, softcap, scratch);
    default: return attend_fixed<4>(q, out, kg, vg, mrow, D, S, L, softcap, scratch);
  }
}

}  // namespace edgeslm_kernels
