// edgeslm::sdpa_cached.out — grouped-query attention over the filled part of a static KV cache.
//
// The ExecuTorch kernel behind the `edgeslm::sdpa_cached` op that compilers/executorch/sdpa_op.py puts in
// exported decoders. XNNPACK's batch matmul over the whole cache re-packs all S slots of K and V on
// every call (S = max_seq_len, e.g. 2048) and the mask add runs over all of them too; this kernel reads
// only the L = max(input_pos) + 1 slots that hold tokens, so decode cost follows the real length.
//
// Shapes (float32, batch 1, the layout of sdk/models/attention.py):
//   q         [H_kv, R, D]   query rows of each KV head, already scaled; row r*T + t = query head
//                            g*rep + r at position input_pos[t] (R = rep*T)
//   k_cache   [H_kv, D, S]   K transposed (a key's components are S apart)
//   v_cache   [H_kv, S, D]
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
// Registered once per process into ExecuTorch's kernel registry, from libedgeslm.so (native runner) or
// from the small libedgeslm_kernels.so the Python runtime loads (sdk/native/kernels.py); a second copy
// in the same process sees the op registered and stays quiet (ExecuTorch aborts on re-registration).
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace edgeslm_kernels {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;

namespace {

// One query row: scores over the visible slots, softmax with the mask row, weighted sum of V rows.
//   qi [D], kg [D, S] (stride S), vg [S, D], mrow [S], scores scratch [L], oi [D]
// Only slots [lo, hi] between the row's first and last finite mask entries are computed (causal rows of a
// prefill chunk see a prefix, sliding windows a band): no dot products or exp() over masked slots.
void attend_row(const float* qi, const float* kg, const float* vg, const float* mrow, int64_t D,
                int64_t S, int64_t L, float softcap, float* scores, float* oi) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::fill(oi, oi + D, 0.0f);
  int64_t lo = 0, hi = L - 1;
  while (lo < L && mrow[lo] == kNegInf) ++lo;
  while (hi >= lo && mrow[hi] == kNegInf) --hi;
  if (lo > hi) return;                        // nothing visible: zeros (never for causal rows)
  const int64_t n = hi - lo + 1;
  float* sc = scores + lo;
  std::fill(sc, sc + n, 0.0f);
  for (int64_t d = 0; d < D; ++d) {           // scores += q[d] * K[d, lo..hi]  (contiguous in j)
    const float qd = qi[d];
    const float* kr = kg + d * S + lo;
    for (int64_t j = 0; j < n; ++j) sc[j] += qd * kr[j];
  }
  float mx = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    float s = sc[j];
    if (softcap > 0.0f) s = std::tanh(s / softcap) * softcap;
    s += mrow[lo + j];
    sc[j] = s;
    mx = std::max(mx, s);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float e = sc[j] == kNegInf ? 0.0f : std::exp(sc[j] - mx);   // holes inside a band stay 0
    sc[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) {           // out += p[j] * V[lo + j, :]  (contiguous in d)
    const float p = sc[j] * inv;
    if (p == 0.0f) continue;
    const float* vr = vg + (lo + j) * D;
    for (int64_t d = 0; d < D; ++d) oi[d] += p * vr[d];
  }
}

}  // namespace

namespace {

// Common checks of both layouts; returns L = max(input_pos) + 1 or 0 after reporting an error.
int64_t checked_length(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       const Tensor& mask, const Tensor& input_pos) {
  ET_KERNEL_CHECK_MSG(ctx, q.dim() == 3 && k_cache.dim() == 3 && v_cache.dim() == 3 && mask.dim() == 2 &&
                               input_pos.dim() == 1,
                      InvalidArgument, 0, "sdpa_cached: expected q/k/v 3-D, mask 2-D, input_pos 1-D");
  ET_KERNEL_CHECK_MSG(ctx, q.scalar_type() == ScalarType::Float && k_cache.scalar_type() == ScalarType::Float &&
                               v_cache.scalar_type() == ScalarType::Float && mask.scalar_type() == ScalarType::Float &&
                               input_pos.scalar_type() == ScalarType::Long,
                      InvalidArgument, 0, "sdpa_cached: float32 q/k/v/mask and int64 input_pos only");
  const int64_t D = k_cache.size(1), S = k_cache.size(2);
  ET_KERNEL_CHECK_MSG(ctx, q.size(2) == D && v_cache.size(0) == k_cache.size(0) && v_cache.size(1) == S &&
                               v_cache.size(2) == D && mask.size(1) == S && input_pos.numel() > 0,
                      InvalidArgument, 0, "sdpa_cached: shapes disagree (k [H_kv,D,S], v [H_kv,S,D], mask [*,S])");
  const int64_t* pos = input_pos.const_data_ptr<int64_t>();
  int64_t last = 0;
  for (int64_t t = 0; t < input_pos.numel(); ++t) last = std::max(last, pos[t]);
  ET_KERNEL_CHECK_MSG(ctx, last >= 0 && last < S, InvalidArgument, 0, "sdpa_cached: input_pos outside the cache");
  return last + 1;                            // slots that hold tokens; the mask hides the rest anyway
}

// Runs attend_row for rows [0, rows): row -> (KV group, q/out row offset, mask row) by `where`.
// Small calls (a decode step: rows * L * D below ~256K multiply-adds) run on the calling thread: waking
// the pool costs more than the work.
template <typename Where>
bool run_rows(int64_t rows, int64_t L, int64_t D, int64_t S, const float* qp, const float* kp, const float* vp,
              const float* mp, float cap, float* op, Where where) {
  const int64_t per_row = std::max<int64_t>(1, 2 * L * D);
  const int64_t grain = std::max<int64_t>(1, (256 * 1024) / per_row);
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(L));
    for (int64_t row = begin; row < end; ++row) {
      int64_t g, qrow, mrow;
      where(row, &g, &qrow, &mrow);
      attend_row(qp + qrow * D, kp + g * D * S, vp + g * S * D, mp + mrow * S, D, S, L, cap, scores.data(),
                 op + qrow * D);
    }
  };
  if (grain >= rows) {
    work(0, rows);
    return true;
  }
  return executorch::extension::parallel_for(0, rows, grain, work);
}

}  // namespace

// Head-grouped layout: q/out [H_kv, R, D] with R = rep*T, row r*T + t = head g*rep + r at token t.
Tensor& sdpa_cached_out(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache,
                        const Tensor& v_cache, const Tensor& mask, const Tensor& input_pos, double softcap,
                        Tensor& out) {
  const int64_t L = checked_length(ctx, q, k_cache, v_cache, mask, input_pos);
  if (L == 0) return out;
  const int64_t H = q.size(0), R = q.size(1), D = q.size(2), S = k_cache.size(2);
  ET_KERNEL_CHECK_MSG(ctx, k_cache.size(0) == H && mask.size(0) == R, InvalidArgument, out,
                      "sdpa_cached: shapes disagree (q [H_kv,R,D], mask [R,S])");
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, q.sizes()) == Error::Ok, InvalidArgument, out);
  const bool ok = run_rows(H * R, L, D, S, q.const_data_ptr<float>(), k_cache.const_data_ptr<float>(),
                           v_cache.const_data_ptr<float>(), mask.const_data_ptr<float>(),
                           static_cast<float>(softcap), out.mutable_data_ptr<float>(),
                           [R](int64_t row, int64_t* g, int64_t* qrow, int64_t* mrow) {
                             *g = row / R;
                             *qrow = row;
                             *mrow = row % R;
                           });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "sdpa_cached: parallel_for failed");
  return out;
}

// Token-major layout: q [T, H, D] -> out [1, T, H*D]; mask row t.
Tensor& sdpa_cached_tokens_out(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache,
                               const Tensor& v_cache, const Tensor& mask, const Tensor& input_pos,
                               double softcap, Tensor& out) {
  const int64_t L = checked_length(ctx, q, k_cache, v_cache, mask, input_pos);
  if (L == 0) return out;
  const int64_t T = q.size(0), H = q.size(1), D = q.size(2), S = k_cache.size(2), Hkv = k_cache.size(0);
  ET_KERNEL_CHECK_MSG(ctx, Hkv > 0 && H % Hkv == 0 && input_pos.numel() == T && mask.size(0) >= T,
                      InvalidArgument, out,
                      "sdpa_cached_tokens: shapes disagree (q [T,H,D] with H a multiple of H_kv, mask [>=T,S])");
  const executorch::aten::SizesType sizes[3] = {1, static_cast<executorch::aten::SizesType>(T),
                                                static_cast<executorch::aten::SizesType>(H * D)};
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {sizes, 3}) == Error::Ok, InvalidArgument, out);
  const int64_t rep = H / Hkv;
  const bool ok = run_rows(T * H, L, D, S, q.const_data_ptr<float>(), k_cache.const_data_ptr<float>(),
                           v_cache.const_data_ptr<float>(), mask.const_data_ptr<float>(),
                           static_cast<float>(softcap), out.mutable_data_ptr<float>(),
                           [H, rep](int64_t row, int64_t* g, int64_t* qrow, int64_t* mrow) {
                             *g = (row % H) / rep;   // row = t*H + h
                             *qrow = row;
                             *mrow = row / H;
                           });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "sdpa_cached_tokens: parallel_for failed");
  return out;
}

namespace {
// Register unless another copy of this file already did (see the header comment).
bool already_registered(const char* name) {
  // Scan the table instead of registry_has_op_function, which logs "kernel not found" when absent.
  for (const auto& kernel : executorch::runtime::get_registered_kernels()) {
    if (kernel.name_ != nullptr && std::strcmp(kernel.name_, name) == 0) return true;
  }
  return false;
}
constexpr char kGrouped[] = "edgeslm::sdpa_cached.out";
constexpr char kTokens[] = "edgeslm::sdpa_cached_tokens.out";
const bool kRegistered = [] {
  if (already_registered(kGrouped)) return true;
  static const executorch::runtime::Kernel kernels[] = {
      executorch::extension::make_boxed_kernel(kGrouped, EXECUTORCH_FN(sdpa_cached_out, kGrouped)),
      executorch::extension::make_boxed_kernel(kTokens, EXECUTORCH_FN(sdpa_cached_tokens_out, kTokens)),
  };
  return executorch::runtime::register_kernels({kernels, 2}) == Error::Ok;
}();
}  // namespace

}  // namespace edgeslm_kernels

// A C symbol to check from outside (ctypes) that the library loaded and registered the kernel.
extern "C" __attribute__((visibility("default"))) int edgeslm_kernels_registered(void) {
  return edgeslm_kernels::kRegistered ? 1 : 0;
}
