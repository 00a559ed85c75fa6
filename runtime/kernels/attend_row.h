// Query rows of attention over a static KV cache: the inner loops of edgeslm::sdpa_cached(_tokens).
//
// Plain C++ (no ExecuTorch types) so it can be benchmarked and tested on its own. Up to 4 query rows
// that share a KV head and a mask row (the query heads of one token in a GQA group) are done together,
// so each K and V row is read once for all of them. The cache may be float32 or float16 (`KV` =
// float or uint16_t binary16 bits; math in float32 either way).
//
// attend_span: the rows over a span of keys [j0, j1) -> unnormalised partial results (sum_j e_j V_j,
// with e_j = exp(s_j - max), the max and sum_j e_j), so a long context can be split over threads
// (split-K / flash-decoding) and the spans merged (merge_spans). attend_rows = one span, normalised.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "vec8.h"

namespace edgeslm_kernels {

constexpr int kMaxRows = 4;     // query rows per call (accumulators: 4 rows x 32 components)
constexpr int64_t kKeyBlock = 512;   // keys per score block (scores of 4 rows stay in L1)
constexpr int kPrefetchRows = 4;     // K is [D, S]: rows d + 4 are prefetched while row d is used

// Partial result of one row over a span: acc [D] = sum_j e_j V_j, e_j = exp(s_j - mx); sum = sum_j e_j.
// mx = -inf and sum = 0 when no key of the span is visible.
struct SpanStats {
  float mx, sum;
};

// m query rows q[i] [D] (scaled) against one KV head: kg [D, S] (K transposed: key j's components are
// S apart), vg [S, D]; mrow [S] the rows' shared additive mask; keys [j0, j1); softcap > 0: tanh
// soft-capping; scratch: m * min(j1 - j0, ...) floats (m * (j1 - j0) suffices); acc[i] [D] out.
// Only keys [lo, hi] between the first and last finite mask entries of the span are computed (causal
// rows of a prefill chunk see a prefix, sliding windows a band); -inf holes inside the band get weight 0.
template <int m, typename KV, bool kF16C>
inline void span_fixed(const float* const* q, float* const* acc, const KV* kg,
                                                      const KV* vg, const float* mrow, int64_t D, int64_t S,
                                                      int64_t j0, int64_t j1, float softcap, float* scratch,
                                                      SpanStats* stats) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  int64_t lo = j0, hi = j1 - 1;
  while (lo < j1 && mrow[lo] == kNegInf) ++lo;
  while (hi >= lo && mrow[hi] == kNegInf) --hi;
  if (lo > hi) {                                                   // nothing visible
    for (int i = 0; i < m; ++i) {
      std::fill(acc[i], acc[i] + D, 0.0f);
      stats[i] = SpanStats{kNegInf, 0.0f};
    }
    return;
  }
  const int64_t n = hi - lo + 1, n8 = n & ~int64_t(7);
  float* sc[m];
  for (int i = 0; i < m; ++i) {
    sc[i] = scratch + i * n;
    std::fill(sc[i], sc[i] + n, 0.0f);
  }

  // scores[i][j] = q_i . K[:, lo + j], key blocks of kKeyBlock; row d + kPrefetchRows of K is fetched
  // while row d is used (rows are S apart and short: the hardware prefetcher does not follow them)
  for (int64_t b0 = 0; b0 < n; b0 += kKeyBlock) {
    const int64_t b1 = std::min(n, b0 + kKeyBlock), b18 = std::min(b1, n8);
    const int64_t line = 64 / static_cast<int64_t>(sizeof(KV));
    for (int64_t d = 0; d < std::min<int64_t>(kPrefetchRows, D); ++d)
      for (int64_t j = b0; j < b1; j += line) __builtin_prefetch(kg + d * S + lo + j);
    for (int64_t d = 0; d < D; ++d) {
      if (d + kPrefetchRows < D)
        for (int64_t j = b0; j < b1; j += line) __builtin_prefetch(kg + (d + kPrefetchRows) * S + lo + j);
      const KV* kr = kg + d * S + lo;
      v8f qv[m];
      for (int i = 0; i < m; ++i) qv[i] = splat8(q[i][d]);
      for (int64_t j = b0; j < b18; j += 8) {
        const v8f k = load8_kv<kF16C>(kr + j);
        for (int i = 0; i < m; ++i) store8(sc[i] + j, load8(sc[i] + j) + qv[i] * k);
      }
      for (int64_t j = std::max(b18, b0); j < b1; ++j) {
        const float k = load1(kr + j);
        for (int i = 0; i < m; ++i) sc[i][j] += q[i][d] * k;
      }
    }
  }

  // per row: cap, mask, max, e_j = exp(s_j - max) in place, sum
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
    stats[i] = SpanStats{mx, sum};
  }

  // acc_i = sum_j e_i[j] V[lo + j, :], 32 components (4 x 8 lanes) per pass, V rows read once for all rows
  const KV* vb = vg + lo * D;
  int64_t d0 = 0;
  for (; d0 + 32 <= D; d0 += 32) {
    v8f a[m][4] = {};
    for (int64_t j = 0; j < n; ++j) {
      const KV* vr = vb + j * D + d0;
      const v8f v0 = load8_kv<kF16C>(vr), v1 = load8_kv<kF16C>(vr + 8), v2 = load8_kv<kF16C>(vr + 16),
                v3 = load8_kv<kF16C>(vr + 24);
      for (int i = 0; i < m; ++i) {
        const v8f p = splat8(sc[i][j]);
        a[i][0] += p * v0;
        a[i][1] += p * v1;
        a[i][2] += p * v2;
        a[i][3] += p * v3;
      }
    }
    for (int i = 0; i < m; ++i)
      for (int c = 0; c < 4; ++c) store8(acc[i] + d0 + 8 * c, a[i][c]);
  }
  for (; d0 + 8 <= D; d0 += 8) {
    v8f a[m] = {};
    for (int64_t j = 0; j < n; ++j) {
      const v8f v = load8_kv<kF16C>(vb + j * D + d0);
      for (int i = 0; i < m; ++i) a[i] += splat8(sc[i][j]) * v;
    }
    for (int i = 0; i < m; ++i) store8(acc[i] + d0, a[i]);
  }
  for (; d0 < D; ++d0) {
    for (int i = 0; i < m; ++i) {
      float a = 0.0f;
      for (int64_t j = 0; j < n; ++j) a += sc[i][j] * load1(vb + j * D + d0);
      acc[i][d0] = a;
    }
  }
}

// m (1..kMaxRows) rows over keys [j0, j1): the row count is a template argument below so the
// accumulators live in registers. On x86-64 an AVX2 + FMA + F16C variant is picked at run time.
#define EDGESLM_SPAN_SWITCH(F16C)                                                                \
  switch (m) {                                                                                   \
    case 1: return span_fixed<1, KV, F16C>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st); \
    case 2: return span_fixed<2, KV, F16C>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st); \
    case 3: return span_fixed<3, KV, F16C>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st); \
    default: return span_fixed<4, KV, F16C>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st); \
  }

#if defined(EDGESLM_X86_AVX2)
template <typename KV>
EDGESLM_X86_AVX2 __attribute__((flatten)) void attend_span_avx2(const float* const* q, float* const* acc, int m, const KV* kg, const KV* vg,
                                       const float* mrow, int64_t D, int64_t S, int64_t j0, int64_t j1, float cap,
                                       float* scratch, SpanStats* st) {
  EDGESLM_SPAN_SWITCH(true)
}
#endif

template <typename KV>
__attribute__((flatten)) void attend_span_base(const float* const* q, float* const* acc, int m, const KV* kg, const KV* vg,
                      const float* mrow, int64_t D, int64_t S, int64_t j0, int64_t j1, float cap, float* scratch,
                      SpanStats* st) {
  EDGESLM_SPAN_SWITCH(false)
}
#undef EDGESLM_SPAN_SWITCH

template <typename KV>
inline void attend_span(const float* const* q, float* const* acc, int m, const KV* kg, const KV* vg,
                        const float* mrow, int64_t D, int64_t S, int64_t j0, int64_t j1, float softcap,
                        float* scratch, SpanStats* stats) {
#if defined(EDGESLM_X86_AVX2)
  if (cpu_has_avx2())
    return attend_span_avx2(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats);
#endif
  attend_span_base(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats);
}

// out [D] = softmax-weighted V of one row from the partials of its `spans` spans (acc[c] [D], stats[c]):
// sum_c w_c acc_c / sum_c w_c sum_c with w_c = exp(mx_c - max_c mx_c); zeros when nothing was visible.
inline void merge_spans(const float* const* acc, const SpanStats* stats, int64_t spans, int64_t D, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < spans; ++c) mx = std::max(mx, stats[c].mx);
  std::fill(out, out + D, 0.0f);
  if (mx == -std::numeric_limits<float>::infinity()) return;
  float total = 0.0f;
  for (int64_t c = 0; c < spans; ++c) {
    if (stats[c].sum == 0.0f) continue;
    const float w = std::exp(stats[c].mx - mx);
    total += w * stats[c].sum;
    for (int64_t d = 0; d < D; ++d) out[d] += w * acc[c][d];
  }
  const float inv = 1.0f / total;
  for (int64_t d = 0; d < D; ++d) out[d] *= inv;
}

// Normalised attention of m rows over keys [0, L): out[i] [D]; scratch m * L floats.
template <typename KV>
inline void attend_rows(const float* const* q, float* const* out, int m, const KV* kg, const KV* vg,
                        const float* mrow, int64_t D, int64_t S, int64_t L, float softcap, float* scratch) {
  SpanStats stats[kMaxRows];
  attend_span(q, out, m, kg, vg, mrow, D, S, 0, L, softcap, scratch, stats);
  for (int i = 0; i < m; ++i) {
    const float inv = stats[i].sum > 0.0f ? 1.0f / stats[i].sum : 0.0f;
    for (int64_t d = 0; d < D; ++d) out[i][d] *= inv;
  }
}

}  // namespace edgeslm_kernels
