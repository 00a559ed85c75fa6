// edgeslm::linear_q4.out / linear_q8.out — y = x W^T with int8 dynamic activations and packed int4
// (group 32) or int8 (per-channel) weights: the ExecuTorch kernels behind the ops that
// compilers/executorch/qlinear_op.py puts in exported decoders. Loops and packing: qlinear.h.
//
// Shapes:
//   x    [..., K] float32            K % 32 == 0; rows = numel / K, each quantized once per call (per
//                                    group of 32, on the calling thread)
//   w4   [Np/8, K/32, 128] uint8     s4 [Np/8, K/32, 8] float16
//   w8   [Np/8, K/4, 32] int8        s8 [Np] float32
//   n    int                         real output features (Np = n rounded up to 8)
//   out  [..., n] float32
// Columns are split over ExecuTorch's thread pool in blocks of 8; the activations are shared.
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <vector>

#include "qlinear.h"
#include "register_once.h"

namespace edgeslm_kernels {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;

namespace {

// Quantized activations of one call (grown on demand, reused: no allocation per decode step).
struct Activations {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> gsum;
};

template <bool kInt4>
Tensor& linear_q(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s, int64_t n,
                 Tensor& out) {
  const char* name = kInt4 ? "linear_q4" : "linear_q8";
  ET_KERNEL_CHECK_MSG(ctx, x.scalar_type() == ScalarType::Float && x.dim() >= 1 && w.dim() == 3 && n > 0,
                      InvalidArgument, out, "%s: float32 x [..., K] and 3-D packed weights expected", name);
  const int64_t K = x.size(x.dim() - 1), blocks = w.size(0), Np = blocks * kQCols;
  if (kInt4) {
    ET_KERNEL_CHECK_MSG(ctx, w.scalar_type() == ScalarType::Byte && s.scalar_type() == ScalarType::Half &&
                                 K % kQGroup == 0 && w.size(1) == K / kQGroup && w.size(2) == 128 &&
                                 s.dim() == 3 && s.size(0) == blocks && s.size(1) == K / kQGroup &&
                                 s.size(2) == kQCols && n <= Np && n > Np - kQCols,
                        InvalidArgument, out, "%s: packed shapes disagree with x [..., K]", name);
  } else {
    ET_KERNEL_CHECK_MSG(ctx, w.scalar_type() == ScalarType::Char && s.scalar_type() == ScalarType::Float &&
                                 K % kQGroup == 0 && w.size(1) == K / 4 && w.size(2) == 32 && s.dim() == 1 &&
                                 s.size(0) == Np && n <= Np && n > Np - kQCols,
                        InvalidArgument, out, "%s: packed shapes disagree with x [..., K]", name);
  }
  SizesType sizes[executorch::runtime::kTensorDimensionLimit];
  for (int64_t d = 0; d + 1 < x.dim(); ++d) sizes[d] = static_cast<SizesType>(x.size(d));
  sizes[x.dim() - 1] = static_cast<SizesType>(n);
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {sizes, static_cast<size_t>(x.dim())}) == Error::Ok,
                  InvalidArgument, out);
  const int64_t rows = K > 0 ? x.numel() / K : 0;
  if (rows == 0) return out;

  thread_local Activations act;
  act.q.resize(rows * K);
  const int64_t G = K / kQGroup;
  act.scale.resize(rows * G);
  act.gsum.resize(rows * G);
  const float* xp = x.const_data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(xp + r * K, K, act.q.data() + r * K, act.scale.data() + r * G, act.gsum.data() + r * G);

  // One task per thread (x4 for matrices over 1 MB, so a thread the VM delays holds less back), but at
  // least ~16 KB of weights per task: the pool is hot between linears, so small tasks still pay.
  const int64_t block_bytes = (kInt4 ? K * kQCols / 2 : K * kQCols) * ((rows + kQMaxRows - 1) / kQMaxRows);
  const int64_t threads = std::max<int64_t>(1, executorch::extension::get_thread_count());
  const int64_t tasks = threads * (blocks * block_bytes > (1 << 20) ? 4 : 1);
  const int64_t grain = std::max<int64_t>((16 * 1024 + block_bytes - 1) / block_bytes, (blocks + tasks - 1) / tasks);
  const void* wp = kInt4 ? static_cast<const void*>(w.const_data_ptr<uint8_t>())
                         : static_cast<const void*>(w.const_data_ptr<int8_t>());
  const void* sp = kInt4 ? static_cast<const void*>(s.const_data_ptr<executorch::aten::Half>())
                         : static_cast<const void*>(s.const_data_ptr<float>());
  float* op = out.mutable_data_ptr<float>();
  const Activations& a = act;
  auto work = [&](int64_t b0, int64_t b1) {
    q_blocks<kInt4>(a.q.data(), a.scale.data(), a.gsum.data(), rows, K, wp, sp, b0, b1, n, nullptr, op, n);
  };
  if (grain >= blocks) {
    work(0, blocks);
  } else {
    ET_KERNEL_CHECK_MSG(ctx, executorch::extension::parallel_for(0, blocks, grain, work), Internal, out,
                        "%s: parallel_for failed", name);
  }
  return out;
}

}  // namespace

Tensor& linear_q4_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s, int64_t n,
                      Tensor& out) {
  return linear_q<true>(ctx, x, w, s, n, out);
}

Tensor& linear_q8_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s, int64_t n,
                      Tensor& out) {
  return linear_q<false>(ctx, x, w, s, n, out);
}

namespace {
constexpr char kQ4[] = "edgeslm::linear_q4.out";
constexpr char kQ8[] = "edgeslm::linear_q8.out";
const executorch::runtime::Kernel kQLinearKernels[] = {
    executorch::extension::make_boxed_kernel(kQ4, EXECUTORCH_FN(linear_q4_out, kQ4)),
    executorch::extension::make_boxed_kernel(kQ8, EXECUTORCH_FN(linear_q8_out, kQ8)),
};
const bool kRegistered = register_once(kQLinearKernels);
}  // namespace

bool qlinear_registered() { return kRegistered; }

}  // namespace edgeslm_kernels
