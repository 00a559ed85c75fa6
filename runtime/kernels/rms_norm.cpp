// edgeslm::rms_norm.out — out = x * rsqrt(mean(x^2) + eps) * (offset + w) over the last dim (float32).
//
// The decoder's RMSNorm (sdk/models/layers.RMSNorm: Llama offset 0, Gemma offset 1) as one op, so a
// decoder built of edgeslm's ops (qlinear.cpp, sdpa_cached.cpp) needs no XNNPACK partition between them.
// Shapes: x [..., dim], w [dim], out like x. Rows are independent; large calls split rows over the pool.
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <cmath>

#include "register_once.h"
#include "vec8.h"   // v8f, load8/store8, hsum8

namespace edgeslm_kernels {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;

// One row: out[d] = x[d] * rsqrt(mean(x^2) + eps) * (offset + w[d]). The sum of squares in 8 lanes (a
// serial float chain cost ~1.5 us per 576-wide row on the decode's critical path; the order differs from
// torch's in the last bits, tests/test_rms_norm_kernel.py bounds it).
namespace {
EDGESLM_VECTOR_CLONES
void norm_row(const float* x, const float* w, float* out, int64_t dim, float eps, float offset) {
  v8f acc = splat8(0.0f);
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    const v8f v = load8(x + d);
    acc += v * v;
  }
  float ss = hsum8(acc);
  for (; d < dim; ++d) ss += x[d] * x[d];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  d = 0;
  for (; d + 8 <= dim; d += 8) store8(out + d, (load8(x + d) * inv) * (offset + load8(w + d)));
  for (; d < dim; ++d) out[d] = (x[d] * inv) * (offset + w[d]);
}
}  // namespace

Tensor& rms_norm_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, double eps, double offset,
                     Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, x.scalar_type() == ScalarType::Float && w.scalar_type() == ScalarType::Float &&
                               x.dim() >= 1 && w.dim() == 1 && w.size(0) == x.size(x.dim() - 1),
                      InvalidArgument, out, "rms_norm: float32 x [..., dim] and w [dim] expected");
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, x.sizes()) == Error::Ok, InvalidArgument, out);
  const int64_t dim = w.size(0), rows = dim > 0 ? x.numel() / dim : 0;
  const float* xp = x.const_data_ptr<float>();
  const float* wp = w.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  const float fo = static_cast<float>(offset), fe = static_cast<float>(eps);
  auto work = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) norm_row(xp + r * dim, wp, op + r * dim, dim, fe, fo);
  };
  if (rows * dim < (1 << 16)) {
    work(0, rows);
  } else {
    ET_KERNEL_CHECK_MSG(ctx, executorch::extension::parallel_for(0, rows, 8, work), Internal, out,
                        "rms_norm: parallel_for failed");
  }
  return out;
}

namespace {
constexpr char kRmsNorm[] = "edgeslm::rms_norm.out";
const executorch::runtime::Kernel kNormKernels[] = {
    executorch::extension::make_boxed_kernel(kRmsNorm, EXECUTORCH_FN(rms_norm_out, kRmsNorm)),
};
const bool kRegistered = register_once(kNormKernels);
}  // namespace

bool rms_norm_registered() { return kRegistered; }

}  // namespace edgeslm_kernels
