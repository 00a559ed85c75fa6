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

// One query row: scores over slots [0, L), softmax with the mask row, weighted sum of V rows.
//   qi [D], kg [D, S] (stride S), vg [S, D], mrow [S], scores scratch [L], oi [D]
void attend_row(const float* qi, const float* kg, const float* vg, const float* mrow, int64_t D,
                int64_t S, int64_t L, float softcap, float* scores, float* oi) {
  std::fill(scores, scores + L, 0.0f);
  for (int64_t d = 0; d < D; ++d) {           // scores += q[d] * K[d, :L]  (contiguous in j)
    const float qd = qi[d];
    const float* kr = kg + d * S;
    for (int64_t j = 0; j < L; ++j) scores[j] += qd * kr[j];
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < L; ++j) {
    float s = scores[j];
    if (softcap > 0.0f) s = std::tanh(s / softcap) * softcap;
    s += mrow[j];
    scores[j] = s;
    mx = std::max(mx, s);
  }
  std::fill(oi, oi + D, 0.0f);
  if (!(mx > -std::numeric_limits<float>::infinity())) return;   // nothing visible: zeros (never for causal rows)
  float sum = 0.0f;
  for (int64_t j = 0; j < L; ++j) {
    const float e = std::exp(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < L; ++j) {           // out += p[j] * V[j, :]  (contiguous in d)
    const float p = scores[j] * inv;
    if (p == 0.0f) continue;
    const float* vr = vg + j * D;
    for (int64_t d = 0; d < D; ++d) oi[d] += p * vr[d];
  }
}

}  // namespace

Tensor& sdpa_cached_out(KernelRuntimeContext& ctx, const Tensor& q, const Tensor& k_cache,
                        const Tensor& v_cache, const Tensor& mask, const Tensor& input_pos, double softcap,
                        Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, q.dim() == 3 && k_cache.dim() == 3 && v_cache.dim() == 3 && mask.dim() == 2 &&
                               input_pos.dim() == 1,
                      InvalidArgument, out, "sdpa_cached: expected q/k/v 3-D, mask 2-D, input_pos 1-D");
  ET_KERNEL_CHECK_MSG(ctx, q.scalar_type() == ScalarType::Float && k_cache.scalar_type() == ScalarType::Float &&
                               v_cache.scalar_type() == ScalarType::Float && mask.scalar_type() == ScalarType::Float &&
                               input_pos.scalar_type() == ScalarType::Long,
                      InvalidArgument, out, "sdpa_cached: float32 q/k/v/mask and int64 input_pos only");
  const int64_t H = q.size(0), R = q.size(1), D = q.size(2), S = k_cache.size(2);
  ET_KERNEL_CHECK_MSG(ctx, k_cache.size(0) == H && k_cache.size(1) == D && v_cache.size(0) == H &&
                               v_cache.size(1) == S && v_cache.size(2) == D && mask.size(0) == R &&
                               mask.size(1) == S && input_pos.numel() > 0,
                      InvalidArgument, out, "sdpa_cached: shapes disagree (q [H,R,D], k [H,D,S], v [H,S,D], mask [R,S])");
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, q.sizes()) == Error::Ok, InvalidArgument, out);

  const int64_t* pos = input_pos.const_data_ptr<int64_t>();
  int64_t last = 0;
  for (int64_t t = 0; t < input_pos.numel(); ++t) last = std::max(last, pos[t]);
  ET_KERNEL_CHECK_MSG(ctx, last >= 0 && last < S, InvalidArgument, out, "sdpa_cached: input_pos outside the cache");
  const int64_t L = last + 1;                 // slots that hold tokens; the mask hides the rest anyway

  const float* qp = q.const_data_ptr<float>();
  const float* kp = k_cache.const_data_ptr<float>();
  const float* vp = v_cache.const_data_ptr<float>();
  const float* mp = mask.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  const float cap = static_cast<float>(softcap);
  // Rows per task: enough work (~64K multiply-adds) that thread hand-off does not dominate decode.
  const int64_t grain = std::max<int64_t>(1, (64 * 1024) / std::max<int64_t>(1, 2 * L * D));
  const bool ok = executorch::extension::parallel_for(0, H * R, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(L));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t g = row / R, i = row % R;
      attend_row(qp + row * D, kp + g * D * S, vp + g * S * D, mp + i * S, D, S, L, cap, scores.data(),
                 op + row * D);
    }
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "sdpa_cached: parallel_for failed");
  return out;
}

namespace {
// Register unless another copy of this file already did (see the header comment).
constexpr char kOpName[] = "edgeslm::sdpa_cached.out";
bool already_registered() {
  // Scan the table instead of registry_has_op_function, which logs "kernel not found" when absent.
  for (const auto& kernel : executorch::runtime::get_registered_kernels()) {
    if (kernel.name_ != nullptr && std::strcmp(kernel.name_, kOpName) == 0) return true;
  }
  return false;
}
const bool kRegistered = [] {
  if (already_registered()) return true;
  static const executorch::runtime::Kernel kernel =
      executorch::extension::make_boxed_kernel(kOpName, EXECUTORCH_FN(sdpa_cached_out, kOpName));
  return executorch::runtime::register_kernel(kernel) == Error::Ok;
}();
}  // namespace

}  // namespace edgeslm_kernels

// A C symbol to check from outside (ctypes) that the library loaded and registered the kernel.
extern "C" __attribute__((visibility("default"))) int edgeslm_kernels_registered(void) {
  return edgeslm_kernels::kRegistered ? 1 : 0;
}
