// Query rows of attention over a static KV cache: the inner loops of edgeslm::sdpa_cached(_tokens).
//
// Plain C++ (no ExecuTorch types) so it can be benchmarked and tested on its own. Up to 4 query rows
// that share a KV head and a mask row (the query heads of one token in a GQA group) are done together,
// so each K and V row is read once for all of them. The cache may be float32, float16 or int8 (`KV` =
// float, uint16_t binary16 bits or int8_t; math in float32 either way). int8 caches carry a float32 scale
// per key and per value row (symmetric, scale = max|x| / 127; see CacheRows); their scores are integer dot
// products of the keys' bytes with the query rows quantized to int8 (attend_int8.h).
//
// K comes in one of two layouts: transposed [D, S] (a key's components are S apart; bundles before the
// tiled layout) or key-tiled [S/16, D, 16] (`tiled`: tiles of kKeyTile keys, each tile's D x 16 block
// contiguous, so the score loop reads K sequentially as it reads V).
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

#include "attend_int8.h"   // int8 caches: integer score dot products (int8_tile_scores)
#include "vec8.h"

namespace edgeslm_kernels {

constexpr int kMaxRows = 4;            // query rows per call (a GQA group of up to 4 heads)
constexpr int64_t kKeyTile = 16;       // keys per tile of the tiled K layout = keys per register block
                                       // of scores (2 vectors x m rows)
constexpr int64_t kPrefetchKeys = 64;  // transposed K: each of its D rows is fetched this many keys ahead
constexpr int64_t kScratchPad = 32;    // scratch floats per row beyond the span's keys (tile alignment)
constexpr int64_t kScratchRows = kMaxRows + 1;   // scratch rows a call needs: m score rows + int8's V scales
// int8 caches: K tiles (+ their V rows) software-prefetched this many tiles ahead (1, 2, 4, 8 and 16 measured
// alike within the VM's noise over evicted caches, benchmarks/attend_loops.cpp; 1 was best in the last run)
constexpr int64_t kInt8AheadTiles = 1;

// Offset of component d of key j in a KV head's K: tiled [S/16, D, 16] or transposed [D, S].
inline int64_t k_offset(int64_t d, int64_t j, int64_t D, int64_t S, bool tiled) {
  return tiled ? (j / kKeyTile) * kKeyTile * D + d * kKeyTile + j % kKeyTile : d * S + j;
}

// Extra elements per cache row that hold the row's float32 scale: 0 for float caches; int8 caches store it
// in the row's last 4 bytes: K tiles [D + 4, 16] (bytes: D*16 components in groups of 4 per key,
// [D/4, 16, 4] (attend_int8.h int8_k_offset), then the 16 keys' scales, key k's at byte D*16 + 4k), V rows
// [D + 4] (the scale at byte D). Value x = int8 q * scale.
template <typename KV>
struct CacheRows {
  static constexpr int64_t kScale = 0;
};
template <>
struct CacheRows<int8_t> {
  static constexpr int64_t kScale = 4;
};

inline float scale_at(const int8_t* p) {   // the float32 scale stored in 4 cache bytes
  float s;
  std::memcpy(&s, p, sizeof s);
  return s;
}

// Partial result of one row over a span: acc [D] = sum_j e_j V_j, e_j = exp(s_j - mx); sum = sum_j e_j.
// mx = -inf and sum = 0 when no key of the span is visible.
struct SpanStats {
  float mx, sum;
};

// m query rows q[i] [D] (scaled) against one KV head: kg its K (tiled [S/16, D, 16], S a multiple of 16,
// or transposed [D, S]; int8: tiled [S/16, D + 4, 16] with the scales), vg [S, D] (int8: [S, D + 4]);
// mrow [S] the rows' shared additive mask; keys [j0, j1); softcap > 0: tanh soft-capping; scratch: (m + 1) * (j1 - j0 + kScratchPad) floats; acc[i] [D] out.
// Only keys [lo, hi] between the first and last finite mask entries of the span are computed (causal
// rows of a prefill chunk see a prefix, sliding windows a band); -inf holes inside the band get weight 0.
template <int m, typename KV, bool kF16C, int kDot>
inline void span_fixed(const float* const* q, float* const* acc, const KV* kg,
                                                      const KV* vg, const float* mrow, int64_t D, int64_t S,
                                                      int64_t j0, int64_t j1, float softcap, float* scratch,
                                                      SpanStats* stats, bool tiled) {
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
  constexpr int64_t P = CacheRows<KV>::kScale;                          // int8: scale bytes per row
  const int64_t n = hi - lo + 1, n8 = n & ~int64_t(7);
  // scores[i][j] = q_i . K[:, lo + j], kKeyTile keys at a time with the sums in registers. Tiled K: whole
  // tiles from the one holding lo (scores of keys outside [lo, hi] are computed and left unused);
  // transposed K: blocks from lo, the last < 16 keys one by one, and each of the D rows (S apart and
  // short: the hardware prefetcher does not follow them) software-prefetched kPrefetchKeys ahead.
  const int64_t js = tiled ? lo & ~(kKeyTile - 1) : lo;                 // first key scored
  const int64_t je = tiled ? (hi | (kKeyTile - 1)) + 1 : js + (n & ~(kKeyTile - 1));   // end of the blocks
  const int64_t kstride = tiled ? kKeyTile : S;                         // K row d -> row d + 1
  const int64_t ahead = tiled ? 2 * kKeyTile * (D + P) : kPrefetchKeys;
  float* sc[m];                                                         // sc[i][j - lo]: row i, key j
  for (int i = 0; i < m; ++i) sc[i] = scratch + i * (n + kScratchPad) + (lo - js);
  float* vsc = scratch + m * (n + kScratchPad);                         // int8: vsc[j - lo] = V row j's scale
  QueryInt8<(P > 0 ? m : 1)> qr;                                        // int8: the rows quantized
  if constexpr (P > 0)
    for (int i = 0; i < m; ++i) qr.qs[i] = quantize_query(q[i], D, qr.q8[i]);
  // int8 (what decode steps read; prefill chunks read float32 copies): K tiles and the V rows of their keys
  // (for the PV pass below) fetched kInt8AheadTiles tiles ahead, the V scales read from the fetched rows
  auto fetch_tile = [&](int64_t t) {                                    // t: first key of a tile
    if (t >= je) return;
    const char* kb = reinterpret_cast<const char*>(kg + t * (D + P));
    for (int64_t b = 0; b < kKeyTile * (D + P); b += 64) __builtin_prefetch(kb + b);
    const char* vrows = reinterpret_cast<const char*>(vg + std::max(t, lo) * (D + P));
    const char* vend = reinterpret_cast<const char*>(vg + std::min(t + kKeyTile, hi + 1) * (D + P));
    for (; vrows < vend; vrows += 64) __builtin_prefetch(vrows);
  };
  if constexpr (P > 0)
    for (int64_t t = 0; t < kInt8AheadTiles; ++t) fetch_tile(js + t * kKeyTile);
  for (int64_t j = js; j < je; j += kKeyTile) {
    const KV* kt = kg + (tiled ? j * (D + P) : j);                      // key j, component 0
    if constexpr (P > 0) {
      fetch_tile(j + kInt8AheadTiles * kKeyTile);
      for (int64_t r = std::max(j, lo); r < std::min(j + kKeyTile, hi + 1); ++r)   // one contiguous array for the
        vsc[r - lo] = scale_at(vg + r * (D + P) + D);                   // softmax pass (not m strided passes)
      float* dst[m];
      for (int i = 0; i < m; ++i) dst[i] = sc[i] + (j - lo);
      int8_tile_scores<m, kDot>(qr, reinterpret_cast<const int8_t*>(kt), D, dst);   // attend_int8.h
      continue;
    }
    v8f s0[m], s1[m];
    for (int i = 0; i < m; ++i) s0[i] = s1[i] = v8f{};
    for (int64_t d = 0; d < D; ++d) {
      const KV* kr = kt + d * kstride;
      __builtin_prefetch(kr + ahead);
      const v8f k0 = load8_kv<kF16C>(kr), k1 = load8_kv<kF16C>(kr + 8);
      for (int i = 0; i < m; ++i) {
        const v8f qd = splat8_on<kF16C>(q[i][d]);
        s0[i] += qd * k0;
        s1[i] += qd * k1;
      }
    }
    for (int i = 0; i < m; ++i) {
      store8(sc[i] + (j - lo), s0[i]);
      store8(sc[i] + (j - lo) + 8, s1[i]);
    }
  }
  for (int64_t j = je; j <= hi && P == 0; ++j) {                      // transposed: the last < 16 keys
    for (int i = 0; i < m; ++i) sc[i][j - lo] = 0.0f;
    for (int64_t d = 0; d < D; ++d) {
      const float k = load1(kg + k_offset(d, j, D, S, tiled));
      for (int i = 0; i < m; ++i) sc[i][j - lo] += q[i][d] * k;
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
      store8(s + j, P > 0 ? e * load8(vsc + j) : e);                    // int8: e_j x value j's scale
      sumv += e;
    }
    float sum = hsum8(sumv);
    for (int64_t j = n8; j < n; ++j) {
      const float e = s[j] == kNegInf ? 0.0f : exp_nonpositive(s[j] - mx);
      s[j] = P > 0 ? e * vsc[j] : e;
      sum += e;
    }
    stats[i] = SpanStats{mx, sum};
  }

  // acc_i = sum_j e_i[j] V[lo + j, :], kPass vectors (32 components; 16 for 4 rows, so the m x kPass
  // accumulators, m weights and a V vector fit in the 16 registers of AVX2) per pass, V rows read once
  // for all rows. int8 with 3 rows: 16 too, since its conversion needs a register more (12 accumulators +
  // 3 + 1 + 1: GCC kept one accumulator on the stack, a store-to-load chain every key; -16% a decode
  // step's attention, benchmarks/attend_loops.cpp; float16/float32 keep 32: their V rows come from L2).
  constexpr int kPass = m <= 2 || (m == 3 && P == 0) ? 4 : 2;
  const KV* vb = vg + lo * (D + P);
  const int64_t vstride = D + P;                                        // V row j -> j + 1
  int64_t d0 = 0;
  for (; d0 + 8 * kPass <= D; d0 += 8 * kPass) {
    v8f a[m][kPass];
    for (int i = 0; i < m; ++i)
      for (int c = 0; c < kPass; ++c) a[i][c] = v8f{};
    for (int64_t j = 0; j < n; ++j) {   // (loops over rows unrolled: in the AVX-512 VNNI variant GCC had kept
                                        // a[][] in memory, a load + store per FMA: 1.4 -> 0.94 ms per step)
      const KV* vr = vb + j * vstride + d0;
      v8f p[m];
#pragma GCC unroll 4
      for (int i = 0; i < m; ++i) p[i] = splat8_on<kF16C>(sc[i][j]);
#pragma GCC unroll 4
      for (int c = 0; c < kPass; ++c) {
        const v8f v = load8_kv<kF16C>(vr + 8 * c);
#pragma GCC unroll 4
        for (int i = 0; i < m; ++i) a[i][c] += p[i] * v;
      }
    }
    for (int i = 0; i < m; ++i)
      for (int c = 0; c < kPass; ++c) store8(acc[i] + d0 + 8 * c, a[i][c]);
  }
  for (; d0 + 8 <= D; d0 += 8) {
    v8f a[m] = {};
    for (int64_t j = 0; j < n; ++j) {
      const v8f v = load8_kv<kF16C>(vb + j * vstride + d0);
      for (int i = 0; i < m; ++i) a[i] += splat8_on<kF16C>(sc[i][j]) * v;
    }
    for (int i = 0; i < m; ++i) store8(acc[i] + d0, a[i]);
  }
  for (; d0 < D; ++d0) {
    for (int i = 0; i < m; ++i) {
      float a = 0.0f;
      for (int64_t j = 0; j < n; ++j) a += sc[i][j] * load1(vb + j * vstride + d0);
      acc[i][d0] = a;
    }
  }
}

// m (1..kMaxRows) rows over keys [j0, j1): the row count is a template argument below so the
// accumulators live in registers. On x86-64 an AVX2 + FMA + F16C variant is picked at run time, and for
// int8 caches one with AVX-512 VNNI (x86-64) or SDOT (arm64) score dot products when the CPU has them
// (attend_int8.h; EDGESLM_QLINEAR_NO_VNNI=1 turns VNNI off here too).
#define EDGESLM_SPAN_SWITCH(F16C, DOT)                                                                    \
  switch (m) {                                                                                            \
    case 1: return span_fixed<1, KV, F16C, DOT>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st, tiled); \
    case 2: return span_fixed<2, KV, F16C, DOT>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st, tiled); \
    case 3: return span_fixed<3, KV, F16C, DOT>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st, tiled); \
    default: return span_fixed<4, KV, F16C, DOT>(q, acc, kg, vg, mrow, D, S, j0, j1, cap, scratch, st, tiled); \
  }
#define EDGESLM_SPAN_ARGS                                                                                 \
  const float *const *q, float *const *acc, int m, const KV *kg, const KV *vg, const float *mrow, int64_t D, \
      int64_t S, int64_t j0, int64_t j1, float cap, float *scratch, SpanStats *st, bool tiled

#if defined(EDGESLM_X86_AVX2)
template <typename KV>
EDGESLM_X86_AVX2 __attribute__((flatten)) void attend_span_avx2(EDGESLM_SPAN_ARGS) {
  EDGESLM_SPAN_SWITCH(true, kDotAvx2)
}
template <typename KV>   // int8 caches only
EDGESLM_X86_VNNI __attribute__((flatten)) void attend_span_vnni(EDGESLM_SPAN_ARGS) {
  EDGESLM_SPAN_SWITCH(true, kDotVnni)
}
#endif
#if defined(EDGESLM_QL_ARM)
template <typename KV>   // int8 caches only
EDGESLM_QL_DOTPROD __attribute__((flatten)) void attend_span_sdot(EDGESLM_SPAN_ARGS) {
  EDGESLM_SPAN_SWITCH(false, kDotSdot)
}
#endif

template <typename KV>
__attribute__((flatten)) void attend_span_base(EDGESLM_SPAN_ARGS) {
  EDGESLM_SPAN_SWITCH(false, kDotScalar)
}
#undef EDGESLM_SPAN_SWITCH
#undef EDGESLM_SPAN_ARGS

template <typename KV>
inline void attend_span(const float* const* q, float* const* acc, int m, const KV* kg, const KV* vg,
                        const float* mrow, int64_t D, int64_t S, int64_t j0, int64_t j1, float softcap,
                        float* scratch, SpanStats* stats, bool tiled) {
  if constexpr (CacheRows<KV>::kScale > 0) {
#if defined(EDGESLM_X86_AVX2)
    if (cpu_has_avx512vnni())
      return attend_span_vnni(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats, tiled);
#endif
#if defined(EDGESLM_QL_ARM)
    if (cpu_has_dotprod())
      return attend_span_sdot(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats, tiled);
#endif
  }
#if defined(EDGESLM_X86_AVX2)
  if (cpu_has_avx2())
    return attend_span_avx2(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats, tiled);
#endif
  attend_span_base(q, acc, m, kg, vg, mrow, D, S, j0, j1, softcap, scratch, stats, tiled);
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

// Normalised attention of m rows over keys [0, L): out[i] [D]; scratch (m + 1) * (L + kScratchPad) floats.
template <typename KV>
inline void attend_rows(const float* const* q, float* const* out, int m, const KV* kg, const KV* vg,
                        const float* mrow, int64_t D, int64_t S, int64_t L, float softcap, float* scratch,
                        bool tiled) {
  SpanStats stats[kMaxRows];
  attend_span(q, out, m, kg, vg, mrow, D, S, 0, L, softcap, scratch, stats, tiled);
  for (int i = 0; i < m; ++i) {
    const float inv = stats[i].sum > 0.0f ? 1.0f / stats[i].sum : 0.0f;
    for (int64_t d = 0; d < D; ++d) out[i][d] *= inv;
  }
}

}  // namespace edgeslm_kernels
