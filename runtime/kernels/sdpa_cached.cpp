// edgeslm::sdpa_cached.out — grouped-query attention over the filled part of a static KV cache.
//
// The ExecuTorch kernel behind the `edgeslm::sdpa_cached` op that compilers/executorch/sdpa_op.py puts in
// exported decoders. XNNPACK's batch matmul over the whole cache re-packs all S slots of K and V on
// every call (S = max_seq_len, e.g. 2048) and the mask add runs over all of them too; this kernel reads
// only the L = max(input_pos) + 1 slots that hold tokens, so decode cost follows the real length.
//
// Shapes (float32 except the caches, which may be float16 or int8; batch 1; the layout of sdk/models/attention.py):
//   q         [H_kv, R, D]   query rows of each KV head, already scaled; row r*T + t = query head
//                            g*rep + r at position input_pos[t] (R = rep*T)
//   k_cache   [H_kv, S/16, D, 16]  K key-tiled: tiles of 16 keys, each tile's [D, 16] block contiguous
//             (what exports write), or [H_kv, D, S]: K transposed (bundles before the tiled layout)
//   v_cache   [H_kv, S, D]
//             int8 caches: K [H_kv, S/16, D + 4, 16] (components in groups of 4 per key, attend_int8.h),
//             V [H_kv, S, D + 4], each key's and value row's float32 scale in the extra 4 bytes (attend_row.h
//             CacheRows; written by cache_write.cpp); decode steps quantize the query rows too (integer dots)
//   mask      [R, S]         additive mask (0 / -inf): causal and sliding-window visibility per row
//   input_pos [T] int64      positions of the T new tokens (already written into the caches)
//   softcap   float          > 0: scores = tanh(scores / softcap) * softcap (Gemma 2); 0: none
//   out       [H_kv, R, D]   softmax(q k^T + mask) v, rows independent
//
// edgeslm::sdpa_cached_tokens.out — the same attention in the token-major layout the projections use,
// so the decoder needs no regrouping transposes/reshapes around the op (each of those split an XNNPACK
// partition: one delegate call fewer per layer):
//   q   [T, H, D]   query heads of each token (already scaled); head h uses KV head h / (H / H_kv)
//   mask [>= T, S]  row t = additive mask of token t (the tiled [rep*T, S] mask's first T rows)
//   out [1, T, H*D]
//
// edgeslm::attend_qkv.out — cache write + sdpa_cached_tokens straight from the fused q/k/v projection's rows
// (see attend_qkv_out below).
//
// Registered once per process (register_once.h).
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "attend_row.h"
#include "cache_rows.h"
#include "k_layout.h"
#include "parallel_chunks.h"
#include "register_once.h"

namespace edgeslm_kernels {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;

namespace {

// Common checks of both layouts; returns L = max(input_pos) + 1 or 0 after reporting an error.
int64_t checked_length(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const Tensor& mask, const Tensor& input_pos) {
  ET_KERNEL_CHECK_MSG(ctx, q.dim() == 3 &&
                               k_layout_ok(k_cache) &&
                               v_cache.dim() == 3 && mask.dim() == 2 && input_pos.dim() == 1,
                      InvalidArgument, 0,
                      "sdpa_cached: expected q/v 3-D, k [H_kv,S/16,D,16] or [H_kv,D,S] (int8: [H_kv,S/16,D+4,16], D a "
                      "multiple of 4, <= 512), mask 2-D, input_pos 1-D");
  const ScalarType kv = k_cache.scalar_type();
  ET_KERNEL_CHECK_MSG(ctx, q.scalar_type() == ScalarType::Float &&
                               (kv == ScalarType::Float || kv == ScalarType::Half || kv == ScalarType::Char) &&
                               v_cache.scalar_type() == kv && mask.scalar_type() == ScalarType::Float &&
                               input_pos.scalar_type() == ScalarType::Long,
                      InvalidArgument, 0,
                      "sdpa_cached: float32 q/mask, float32, float16 or int8 k/v caches (both alike), int64 input_pos only");
  const KGeometry kgeo = k_geometry(k_cache);
  const int64_t D = kgeo.D, S = kgeo.S;
  ET_KERNEL_CHECK_MSG(ctx, q.size(2) == D && v_cache.size(0) == k_cache.size(0) && v_cache.size(1) == S &&
                               v_cache.size(2) == D + scale_elems(v_cache) && mask.size(1) == S && input_pos.numel() > 0,
                      InvalidArgument, 0,
                      "sdpa_cached: shapes disagree (k [H_kv,S/16,D,16] or [H_kv,D,S], v [H_kv,S,D], int8: D + 4 for "
                      "the scales; mask [*,S])");
  const int64_t* pos = input_pos.const_data_ptr<int64_t>();
  int64_t last = 0;
  for (int64_t t = 0; t < input_pos.numel(); ++t) last = std::max(last, pos[t]);
  ET_KERNEL_CHECK_MSG(ctx, last >= 0 && last < S, InvalidArgument, 0, "sdpa_cached: input_pos outside the cache");
  return last + 1;                            // slots that hold tokens; the mask hides the rest anyway
}

// A unit of work: `m` query rows (q rows qrow0 + i*stride, out rows orow0 + i*stride) of KV head g sharing
// mask row mrow.
struct Unit {
  int64_t g, mrow, qrow0, orow0, stride, m;
};

// Key spans per unit: a decode step has few units (T * H_kv, e.g. 3 for SmolLM2), fewer than a pool can
// share evenly, so long contexts are split over keys (at least 64 keys a span) into >= 4 items per
// thread and the spans merged; prefill has units enough (1 span each). parallel_for gives each thread
// one run of ceil(items / threads) items, so the span count is then raised (spans of >= 32 keys) until
// the items divide evenly: SmolLM2 on 2 threads had 3 x 3 = 9 items, 5 on one thread and 4 on the other.
constexpr int64_t kMaxSpans = 64;
int64_t spans_per_unit(int64_t units, int64_t L) {
  const int64_t threads = std::max<int64_t>(1, executorch::extension::get_thread_count());
  if (threads == 1 || units >= 4 * threads) return 1;
  int64_t spans = std::clamp<int64_t>(std::min((4 * threads + units - 1) / units, L / 64), 1, kMaxSpans);
  int64_t even = spans;
  while (even < kMaxSpans && even < L / 32 && (units * even) % threads != 0) ++even;
  return (units * even) % threads == 0 ? even : spans;
}

// Span c of `spans` over keys [0, L): boundaries on whole key tiles (the tiled K's 16-key blocks).
int64_t span_start(int64_t c, int64_t spans, int64_t L) {
  return c == spans ? L : (L * c / spans) & ~(kKeyTile - 1);
}

// Runs attend_span over units [0, units) (unit_of(u) -> Unit; at most rows_per_unit rows each), up to
// kMaxRows rows per call, each unit over `spans` key spans of [0, L). Small calls (below ~64K
// multiply-adds: a decode step over a short context) run on the calling thread: waking the pool costs
// more than the work.
// mask_stride: the mask's row length (the cache's S; kgeo.S may be a dequantized copy's).
template <typename KV, typename UnitOf>
bool run_units(int64_t units, int64_t rows_per_unit, int64_t L, KGeometry kgeo, int64_t mask_stride,
               const float* qp, const KV* kp, const KV* vp, const float* mp, float cap, float* op, UnitOf unit_of) {
  const int64_t D = kgeo.D, S = kgeo.S, P = CacheRows<KV>::kScale;   // P: int8 scale bytes per row
  const int64_t per_unit = std::max<int64_t>(1, 2 * L * D * rows_per_unit);
  const bool small = units * per_unit < 64 * 1024;
  const int64_t spans = small ? 1 : spans_per_unit(units, L);
  // spans > 1: partial results [units, spans, rows_per_unit] x (D accumulators + stats), merged after
  std::vector<float> partial(spans > 1 ? static_cast<size_t>(units * spans * rows_per_unit * D) : 0);
  std::vector<SpanStats> stats(spans > 1 ? static_cast<size_t>(units * spans * rows_per_unit) : 0);
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(kScratchRows * (L + kScratchPad)));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t u = item / spans, c = item % spans;
      const int64_t j0 = span_start(c, spans, L), j1 = span_start(c + 1, spans, L);
      const Unit x = unit_of(u);
      for (int64_t r0 = 0; r0 < x.m; r0 += kMaxRows) {
        const int mm = static_cast<int>(std::min<int64_t>(kMaxRows, x.m - r0));
        const float* qs[kMaxRows];
        float* os[kMaxRows];
        for (int i = 0; i < mm; ++i) {
          qs[i] = qp + (x.qrow0 + (r0 + i) * x.stride) * D;
          os[i] = spans > 1 ? partial.data() + ((u * spans + c) * rows_per_unit + r0 + i) * D
                            : op + (x.orow0 + (r0 + i) * x.stride) * D;
        }
        const KV* kg = kp + x.g * (D + P) * S;
        const KV* vg = vp + x.g * S * (D + P);
        const float* mrow = mp + x.mrow * mask_stride;
        if (spans == 1) {
          attend_rows(qs, os, mm, kg, vg, mrow, D, S, L, cap, scratch.data(), kgeo.tiled);
        } else {
          attend_span(qs, os, mm, kg, vg, mrow, D, S, j0, j1, cap, scratch.data(),
                      stats.data() + (u * spans + c) * rows_per_unit + r0, kgeo.tiled);
        }
      }
    }
  };
  if (small) {
    work(0, units);
    return true;
  }
  const int64_t grain = std::max<int64_t>(1, (64 * 1024) / (per_unit / spans + 1));
  // prefill (1 span a unit, many units): chunks claimed dynamically; a decode step: parallel_for's static
  // runs, whose item counts spans_per_unit evens out
  if (spans == 1 ? !parallel_chunks(units, grain, work)
                 : !executorch::extension::parallel_for(0, units * spans, grain, work))
    return false;
  if (spans > 1) {                                                 // merge each row's spans
    const float* accs[kMaxSpans];
    SpanStats st[kMaxSpans];
    for (int64_t u = 0; u < units; ++u) {
      const Unit x = unit_of(u);
      for (int64_t i = 0; i < x.m; ++i) {
        for (int64_t c = 0; c < spans; ++c) {
          accs[c] = partial.data() + ((u * spans + c) * rows_per_unit + i) * D;
          st[c] = stats[(u * spans + c) * rows_per_unit + i];
        }
        merge_spans(accs, st, spans, D, op + (x.orow0 + i * x.stride) * D);
      }
    }
  }
  return true;
}

// Slots [0, Lp) (Lp a multiple of 16) of int8 caches kc [H_kv, S/16, D + 4, 16], vc [H_kv, S, D + 4] ->
// float32 kf [H_kv, Lp/16, D, 16] (key-tiled) and vf [H_kv, Lp, D], each value times its row's scale.
void dequantize_prefix(const int8_t* kc, const int8_t* vc, int64_t Hkv, int64_t D, int64_t S, int64_t Lp, float* kf,
                       float* vf) {
  constexpr int64_t P = CacheRows<int8_t>::kScale;
  for (int64_t g = 0; g < Hkv; ++g) {
    for (int64_t t = 0; t < Lp / kKeyTile; ++t) {
      const int8_t* src = kc + g * (D + P) * S + t * kKeyTile * (D + P);
      float* dst = kf + g * D * Lp + t * kKeyTile * D;
      float scale[kKeyTile];
      std::memcpy(scale, src + D * kKeyTile, sizeof scale);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t c = 0; c < kKeyTile; ++c) dst[d * kKeyTile + c] = src[int8_k_offset(d, c)] * scale[c];
    }
    for (int64_t j = 0; j < Lp; ++j) {
      const int8_t* row = vc + (g * S + j) * (D + P);
      const float scale = scale_at(row + D);
      for (int64_t d = 0; d < D; ++d) vf[(g * Lp + j) * D + d] = row[d] * scale;
    }
  }
}

// A call with at least this many tokens over an int8 cache (a prefill chunk) attends float32 copies of the
// filled slots: each token's rows read every key again, so converting once beats converting per token
// (a decode step reads the int8 bytes as they are: there the bytes read are what costs).
constexpr int64_t kDequantizeTokens = 8;

// run_units with the caches' element type: float32, float16 (binary16 bits) or int8 (+ scales); math in float32.
template <typename UnitOf>
bool run_units_any(const Tensor& k_cache, const Tensor& v_cache, int64_t units, int64_t rows_per_unit, int64_t L,
                   int64_t tokens, const Tensor& q, const Tensor& mask, double softcap, Tensor& out, UnitOf unit_of) {
  const KGeometry kgeo = k_geometry(k_cache);
  const float* qp = q.const_data_ptr<float>();
  const float* mp = mask.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  const float cap = static_cast<float>(softcap);
  const int64_t S = kgeo.S;
  if (k_cache.scalar_type() == ScalarType::Char) {
    const auto* kp = static_cast<const int8_t*>(k_cache.const_data_ptr());
    const auto* vp = static_cast<const int8_t*>(v_cache.const_data_ptr());
    if (tokens < kDequantizeTokens) return run_units(units, rows_per_unit, L, kgeo, S, qp, kp, vp, mp, cap, op, unit_of);
    const int64_t Hkv = k_cache.size(0), D = kgeo.D, Lp = (L + kKeyTile - 1) / kKeyTile * kKeyTile;
    std::vector<float> kf(static_cast<size_t>(Hkv * Lp * D)), vf(static_cast<size_t>(Hkv * Lp * D));
    dequantize_prefix(kp, vp, Hkv, D, S, Lp, kf.data(), vf.data());
    return run_units(units, rows_per_unit, L, KGeometry{D, Lp, true}, S, qp, kf.data(), vf.data(), mp, cap, op,
                     unit_of);
  }
  if (k_cache.scalar_type() == ScalarType::Half)
    return run_units(units, rows_per_unit, L, kgeo, S, qp, static_cast<const uint16_t*>(k_cache.const_data_ptr()),
                     static_cast<const uint16_t*>(v_cache.const_data_ptr()), mp, cap, op, unit_of);
  return run_units(units, rows_per_unit, L, kgeo, S, qp, k_cache.const_data_ptr<float>(),
                   v_cache.const_data_ptr<float>(), mp, cap, op, unit_of);
}

}  // namespace

// Head-grouped layout: q/out [H_kv, R, D] with R = rep*T, row r*T + t = head g*rep + r at token t.
Tensor& sdpa_cached_out(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache,
                        const Tensor& v_cache, const Tensor& mask, const Tensor& input_pos, double softcap,
                        Tensor& out) {
  const int64_t L = checked_length(ctx, q, k_cache, v_cache, mask, input_pos);
  if (L == 0) return out;
  const int64_t H = q.size(0), R = q.size(1);
  ET_KERNEL_CHECK_MSG(ctx, k_cache.size(0) == H && mask.size(0) == R, InvalidArgument, out,
                      "sdpa_cached: shapes disagree (q [H_kv,R,D], mask [R,S])");
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, q.sizes()) == Error::Ok, InvalidArgument, out);
  const bool ok = run_units_any(k_cache, v_cache, H * R, 1, L, input_pos.numel(), q, mask, softcap, out,
                                [R](int64_t row) { return Unit{row / R, row % R, row, row, 0, 1}; });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "sdpa_cached: parallel_for failed");
  return out;
}

// Token-major layout: q [T, H, D] -> out [1, T, H*D]; mask row t.
Tensor& sdpa_cached_tokens_out(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache,
                               const Tensor& v_cache, const Tensor& mask, const Tensor& input_pos,
                               double softcap, Tensor& out) {
  const int64_t L = checked_length(ctx, q, k_cache, v_cache, mask, input_pos);
  if (L == 0) return out;
  const int64_t T = q.size(0), H = q.size(1), D = q.size(2), Hkv = k_cache.size(0);
  ET_KERNEL_CHECK_MSG(ctx, Hkv > 0 && H % Hkv == 0 && input_pos.numel() == T && mask.size(0) >= T,
                      InvalidArgument, out,
                      "sdpa_cached_tokens: shapes disagree (q [T,H,D] with H a multiple of H_kv, mask [>=T,S])");
  const executorch::aten::SizesType sizes[3] = {1, static_cast<executorch::aten::SizesType>(T),
                                                static_cast<executorch::aten::SizesType>(H * D)};
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {sizes, 3}) == Error::Ok, InvalidArgument, out);
  const int64_t rep = H / Hkv;
  // unit (t, g): the rep query heads g*rep .. g*rep + rep-1 of token t, contiguous rows of q
  const bool ok = run_units_any(k_cache, v_cache, T * Hkv, rep, L, T, q, mask, softcap, out,
                                [H, Hkv, rep](int64_t u) {
                                  const int64_t t = u / Hkv, g = u % Hkv;
                                  return Unit{g, t, t * H + g * rep, t * H + g * rep, 1, rep};
                                });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "sdpa_cached_tokens: parallel_for failed");
  return out;
}

// Fused q/k/v rows in, attention out: qkv [T, H + 2*H_kv, D] (per token H query heads, already roped and
// scaled, then H_kv keys and H_kv values: edgeslm::qkv_rope_q4/q8's output as it is) -> the keys and values
// written into the caches at input_pos (as cache_write) -> out [1, T, H*D] as sdpa_cached_tokens. One op
// where the decoder had three slices, a copy, cache_write and sdpa_cached_tokens (6 dispatches a layer).
Tensor& attend_qkv_out(KernelRuntimeContext& ctx, const Tensor& qkv, Tensor& k_cache, Tensor& v_cache,
                       const Tensor& mask, const Tensor& input_pos, double softcap, int64_t heads, Tensor& out) {
  const int64_t L = checked_length(ctx, qkv, k_cache, v_cache, mask, input_pos);
  if (L == 0) return out;
  const int64_t T = qkv.size(0), W = qkv.size(1), D = qkv.size(2), Hkv = k_cache.size(0), H = heads;
  ET_KERNEL_CHECK_MSG(ctx, Hkv > 0 && H > 0 && H % Hkv == 0 && W == H + 2 * Hkv && input_pos.numel() == T &&
                               mask.size(0) >= T,
                      InvalidArgument, out,
                      "attend_qkv: shapes disagree (qkv [T,H+2*H_kv,D] with H a multiple of H_kv, mask [>=T,S])");
  const executorch::aten::SizesType sizes[3] = {1, static_cast<executorch::aten::SizesType>(T),
                                                static_cast<executorch::aten::SizesType>(H * D)};
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {sizes, 3}) == Error::Ok, InvalidArgument, out);
  const float* rows = qkv.const_data_ptr<float>();
  write_cache_rows(rows + H * D, rows + (H + Hkv) * D, W * D, k_cache, v_cache, input_pos.const_data_ptr<int64_t>(), T);
  const int64_t rep = H / Hkv;
  // unit (t, g): query heads g*rep .. g*rep + rep-1 of token t (qkv row t*W + h) -> out row t*H + h
  const bool ok = run_units_any(k_cache, v_cache, T * Hkv, rep, L, T, qkv, mask, softcap, out,
                                [H, Hkv, W, rep](int64_t u) {
                                  const int64_t t = u / Hkv, g = u % Hkv;
                                  return Unit{g, t, t * W + g * rep, t * H + g * rep, 1, rep};
                                });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "attend_qkv: parallel_for failed");
  return out;
}

namespace {
constexpr char kGrouped[] = "edgeslm::sdpa_cached.out";
constexpr char kTokens[] = "edgeslm::sdpa_cached_tokens.out";
constexpr char kQkv[] = "edgeslm::attend_qkv.out";
const executorch::runtime::Kernel kSdpaKernels[] = {
    executorch::extension::make_boxed_kernel(kGrouped, EXECUTORCH_FN(sdpa_cached_out, kGrouped)),
    executorch::extension::make_boxed_kernel(kTokens, EXECUTORCH_FN(sdpa_cached_tokens_out, kTokens)),
    executorch::extension::make_boxed_kernel(kQkv, EXECUTORCH_FN(attend_qkv_out, kQkv)),
};
const bool kRegistered = register_once(kSdpaKernels);
}  // namespace

bool qlinear_registered();   // qlinear.cpp
bool rms_norm_registered();  // rms_norm.cpp
bool cache_write_registered();  // cache_write.cpp

}  // namespace edgeslm_kernels

// A C symbol to check from outside (ctypes) that the library loaded and registered the kernel.
extern "C" __attribute__((visibility("default"))) int edgeslm_kernels_registered(void) {
  return edgeslm_kernels::kRegistered && edgeslm_kernels::qlinear_registered() &&
                 edgeslm_kernels::rms_norm_registered() &&
                 edgeslm_kernels::cache_write_registered() ? 1 : 0;
}
