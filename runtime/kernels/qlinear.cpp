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
//
// edgeslm::mlp_q4.out / mlp_q8.out — the gated SiLU MLP of a decoder layer in one op:
//   out [..., H] = down(silu(gate(x)) * up(x)); w_gu/s_gu pack gate's I features then up's (n = 2I),
//   w_d/s_d the down projection (K = I, n = H). One quantization of x, no XNNPACK partition between.
//
// edgeslm::qkv_rope_q4.out / qkv_rope_q8.out — a layer's q/k/v projections in one pass, then RoPE and the
// query scale: out [T, H + 2 H_kv, D] (query heads, key heads, value heads).
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>

#include <cstring>
#include <vector>

#include "vec8.h"   // v8f, exp8_nonpositive (silu)
#include "parallel_chunks.h"
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

// Packed weights for inputs of width K and n real output features.
template <bool kInt4>
bool packed_ok(const Tensor& w, const Tensor& s, int64_t K, int64_t n) {
  if (w.dim() != 3 || n <= 0 || K % kQGroup != 0) return false;
  const int64_t blocks = w.size(0), Np = blocks * kQCols;
  if (n > Np || n <= Np - kQCols) return false;
  if (kInt4)
    return w.scalar_type() == ScalarType::Byte && s.scalar_type() == ScalarType::Half && w.size(1) == K / kQGroup &&
           w.size(2) == 128 && s.dim() == 3 && s.size(0) == blocks && s.size(1) == K / kQGroup && s.size(2) == kQCols;
  return w.scalar_type() == ScalarType::Char && s.scalar_type() == ScalarType::Float && w.size(1) == K / 4 &&
         w.size(2) == 32 && s.dim() == 1 && s.size(0) == Np;
}

// Rows of x [rows, K] quantized once, on the calling thread (shared by every task).
void quantize_rows(const float* x, int64_t rows, int64_t K, Activations& act) {
  const int64_t G = K / kQGroup;
  act.q.resize(rows * K);
  act.scale.resize(rows * G);
  act.gsum.resize(rows * G);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(x + r * K, K, act.q.data() + r * K, act.scale.data() + r * G, act.gsum.data() + r * G);
}

// Smallest task, in column blocks: ~16 KB of weights (the pool is hot between linears, so even small
// tasks pay; below that one thread does it all). block_bytes: weight bytes of one block (times the passes).
int64_t grain_for(int64_t block_bytes) { return (16 * 1024 + block_bytes - 1) / block_bytes; }

// work(b0, b1) over [0, blocks) for `rows` rows: on the calling thread when one task covers it all, else on
// the pool. A decode step's rows (< kQMaxRows) stream their weights: one contiguous run per thread
// (parallel_for's static split); chunks claimed dynamically (parallel_chunks.h) made SmolLM2 int4 decode
// 10-14% slower (each thread's weight stream broken into pieces). Prefill rows are compute-bound: dynamic
// chunks, so a thread that falls behind does not hold the others (TTFT at 512 tokens -12%).
template <typename F>
bool run_blocks(int64_t blocks, int64_t grain, int64_t rows, const F& work) {
  if (rows >= kQMaxRows) return parallel_chunks(blocks, grain, work);
  if (grain >= blocks || executorch::extension::get_thread_count() <= 1) {
    work(0, blocks);
    return true;
  }
  return executorch::extension::parallel_for(0, blocks, grain, work);
}

template <bool kInt4>
int64_t block_bytes(int64_t K, int64_t rows) {   // weight bytes a block streams for `rows` rows
  return (kInt4 ? K * kQCols / 2 : K * kQCols) * ((rows + kQMaxRows - 1) / kQMaxRows);
}

template <bool kInt4>
const void* weights(const Tensor& w) {
  return kInt4 ? static_cast<const void*>(w.const_data_ptr<uint8_t>()) : static_cast<const void*>(w.const_data_ptr<int8_t>());
}

template <bool kInt4>
const void* scales(const Tensor& s) {
  return kInt4 ? static_cast<const void*>(s.const_data_ptr<executorch::aten::Half>())
               : static_cast<const void*>(s.const_data_ptr<float>());
}

// out[rows, n] = x[rows, K] W^T: rows quantized on the calling thread, column blocks over the pool.
template <bool kInt4>
bool run_linear(const float* x, int64_t rows, int64_t K, const Tensor& w, const Tensor& s, int64_t n, float* out,
                Activations& act) {
  quantize_rows(x, rows, K, act);
  const int64_t blocks = w.size(0);
  const void* wp = weights<kInt4>(w);
  const void* sp = scales<kInt4>(s);
  const Activations& a = act;
  return run_blocks(blocks, grain_for(block_bytes<kInt4>(K, rows)), rows, [&](int64_t b0, int64_t b1) {
    q_blocks<kInt4>(a.q.data(), a.scale.data(), a.gsum.data(), rows, K, wp, sp, b0, b1, n, nullptr, out, n);
  });
}

// out sized like x with the last dim = n.
Error resize_last(const Tensor& x, int64_t n, Tensor& out) {
  SizesType sizes[executorch::runtime::kTensorDimensionLimit];
  for (int64_t d = 0; d + 1 < x.dim(); ++d) sizes[d] = static_cast<SizesType>(x.size(d));
  sizes[x.dim() - 1] = static_cast<SizesType>(n);
  return executorch::runtime::resize_tensor(out, {sizes, static_cast<size_t>(x.dim())});
}

template <bool kInt4>
Tensor& linear_q(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s, int64_t n,
                 Tensor& out) {
  const char* name = kInt4 ? "linear_q4" : "linear_q8";
  ET_KERNEL_CHECK_MSG(ctx, x.scalar_type() == ScalarType::Float && x.dim() >= 1, InvalidArgument, out,
                      "%s: float32 x [..., K] expected", name);
  const int64_t K = x.size(x.dim() - 1);
  ET_KERNEL_CHECK_MSG(ctx, packed_ok<kInt4>(w, s, K, n), InvalidArgument, out,
                      "%s: packed shapes disagree with x [..., K]", name);
  ET_KERNEL_CHECK(ctx, resize_last(x, n, out) == Error::Ok, InvalidArgument, out);
  const int64_t rows = K > 0 ? x.numel() / K : 0;
  if (rows == 0) return out;
  thread_local Activations act;
  ET_KERNEL_CHECK_MSG(ctx, run_linear<kInt4>(x.const_data_ptr<float>(), rows, K, w, s, n,
                                             out.mutable_data_ptr<float>(), act),
                      Internal, out, "%s: parallel_for failed", name);
  return out;
}

// h[j] = silu(g[j]) * u[j] for j < n; silu(x) = x * sigmoid(x), sigmoid through e^-|x| (attend_row.h's exp).
EDGESLM_VECTOR_CLONES
void silu_mul(const float* g, const float* u, float* h, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const v8f x = load8(g + j);
    const v8f e = exp8_nonpositive(x < 0.0f ? x : -x);              // e^-|x|
    const v8f sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    store8(h + j, x * sig * load8(u + j));
  }
  for (; j < n; ++j) {
    const float x = g[j], e = exp_nonpositive(-std::fabs(x));
    h[j] = x * (x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e)) * u[j];
  }
}

// Gated MLP: out = down(silu(gate(x)) * up(x)); w_gu packs gate (features [0, I)) then up ([I, 2I)).
template <bool kInt4>
Tensor& mlp_q(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w_gu, const Tensor& s_gu,
              const Tensor& w_d, const Tensor& s_d, int64_t inter, Tensor& out) {
  const char* name = kInt4 ? "mlp_q4" : "mlp_q8";
  ET_KERNEL_CHECK_MSG(ctx, x.scalar_type() == ScalarType::Float && x.dim() >= 1 && inter > 0 && inter % kQCols == 0,
                      InvalidArgument, out, "%s: float32 x [..., hidden] and an intermediate size % 8 == 0", name);
  const int64_t K = x.size(x.dim() - 1);
  ET_KERNEL_CHECK_MSG(ctx, packed_ok<kInt4>(w_gu, s_gu, K, 2 * inter) && packed_ok<kInt4>(w_d, s_d, inter, K),
                      InvalidArgument, out, "%s: packed shapes disagree with x [..., hidden]", name);
  ET_KERNEL_CHECK(ctx, resize_last(x, K, out) == Error::Ok, InvalidArgument, out);
  const int64_t rows = K > 0 ? x.numel() / K : 0;
  if (rows == 0) return out;
  thread_local Activations act;
  thread_local std::vector<float> gu, h;
  gu.resize(rows * 2 * inter);
  h.resize(rows * inter);
  // gate (blocks [0, I/8)) and up (blocks [I/8, I/4)) of the same columns in one task, then h = silu(g) * u
  // for those columns: the activation runs in the pool instead of serially between the two linears.
  quantize_rows(x.const_data_ptr<float>(), rows, K, act);
  const int64_t gate_blocks = inter / kQCols;
  const void* wp = weights<kInt4>(w_gu);
  const void* sp = scales<kInt4>(s_gu);
  float* gp = gu.data();
  float* hp = h.data();
  const Activations& a = act;
  bool ok = run_blocks(gate_blocks, grain_for(2 * block_bytes<kInt4>(K, rows)), rows, [&](int64_t b0, int64_t b1) {
    q_blocks<kInt4>(a.q.data(), a.scale.data(), a.gsum.data(), rows, K, wp, sp, b0, b1, 2 * inter, nullptr, gp,
                    2 * inter);
    q_blocks<kInt4>(a.q.data(), a.scale.data(), a.gsum.data(), rows, K, wp, sp, gate_blocks + b0, gate_blocks + b1,
                    2 * inter, nullptr, gp, 2 * inter);
    const int64_t c0 = b0 * kQCols, cols = (b1 - b0) * kQCols;
    for (int64_t r = 0; r < rows; ++r)
      silu_mul(gp + r * 2 * inter + c0, gp + r * 2 * inter + inter + c0, hp + r * inter + c0, cols);
  });
  ok = ok && run_linear<kInt4>(hp, rows, inter, w_d, s_d, K, out.mutable_data_ptr<float>(), act);
  ET_KERNEL_CHECK_MSG(ctx, ok, Internal, out, "%s: parallel_for failed", name);
  return out;
}

// One head in place: v = v * cos + rotate_half(v) * sin over the first rot_dim components (rotate_half:
// [-v[half:rot], v[:half]]; components past rot_dim keep v * cos), then times `scale` (1 for keys).
// Branch-free loops over the three ranges so they vectorise (this runs between two pool passes).
EDGESLM_VECTOR_CLONES
void rope_head(float* v, const float* c, const float* sn, int64_t D, int64_t rot_dim, float scale, float* tmp) {
  const int64_t half = rot_dim / 2;
  std::memcpy(tmp, v, sizeof(float) * D);
  for (int64_t d = 0; d < half; ++d) v[d] = tmp[d] * c[d] + (-tmp[d + half]) * sn[d];
  for (int64_t d = half; d < rot_dim; ++d) v[d] = tmp[d] * c[d] + tmp[d - half] * sn[d];
  for (int64_t d = rot_dim; d < D; ++d) v[d] = tmp[d] * c[d] + 0.0f * sn[d];
  if (scale != 1.0f)
    for (int64_t d = 0; d < D; ++d) v[d] *= scale;
}

// Fused attention inputs: out [T, H + 2 H_kv, D] = x W_qkv^T viewed per head, RoPE on the H query and
// H_kv key heads (x * cos + rotate_half(x) * sin, rotate_half over the first rot_dim components as the
// decoder's R matrix does), queries times `scale`.
template <bool kInt4>
Tensor& qkv_rope_q(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s, const Tensor& cos,
                   const Tensor& sin, int64_t heads, int64_t kv_heads, int64_t rot_dim, double scale, Tensor& out) {
  const char* name = kInt4 ? "qkv_rope_q4" : "qkv_rope_q8";
  ET_KERNEL_CHECK_MSG(ctx, x.scalar_type() == ScalarType::Float && x.dim() >= 1 && cos.dim() == 3 &&
                               sin.dim() == 3 && cos.scalar_type() == ScalarType::Float &&
                               sin.scalar_type() == ScalarType::Float && heads > 0 && kv_heads > 0,
                      InvalidArgument, out, "%s: float32 x [..., hidden], cos/sin [T, 1, D] expected", name);
  const int64_t K = x.size(x.dim() - 1), rows = K > 0 ? x.numel() / K : 0, D = cos.size(2);
  const int64_t all_heads = heads + 2 * kv_heads, n = all_heads * D;
  ET_KERNEL_CHECK_MSG(ctx, packed_ok<kInt4>(w, s, K, n) && cos.size(0) == rows && sin.size(0) == rows &&
                               sin.size(2) == D && D <= 1024 && rot_dim >= 0 && rot_dim <= D && rot_dim % 2 == 0,
                      InvalidArgument, out,
                      "%s: shapes disagree (w [(H + 2 H_kv) D, hidden], cos/sin [T, 1, D], D <= 1024)",
                      name);
  const SizesType sizes[3] = {static_cast<SizesType>(rows), static_cast<SizesType>(all_heads),
                              static_cast<SizesType>(D)};
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {sizes, 3}) == Error::Ok, InvalidArgument, out);
  if (rows == 0) return out;
  thread_local Activations act;
  float* op = out.mutable_data_ptr<float>();
  ET_KERNEL_CHECK_MSG(ctx, run_linear<kInt4>(x.const_data_ptr<float>(), rows, K, w, s, n, op, act), Internal, out,
                      "%s: parallel_for failed", name);
  const float* cp = cos.const_data_ptr<float>();
  const float* sp = sin.const_data_ptr<float>();
  const float q_scale = static_cast<float>(scale);
  float tmp[1024];                                                 // one head (D <= 1024, checked above)
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads + kv_heads; ++h)
      rope_head(op + (t * all_heads + h) * D, cp + t * D, sp + t * D, D, rot_dim, h < heads ? q_scale : 1.0f, tmp);
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

Tensor& qkv_rope_q4_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s,
                        const Tensor& cos, const Tensor& sin, int64_t heads, int64_t kv_heads, int64_t rot_dim,
                        double scale, Tensor& out) {
  return qkv_rope_q<true>(ctx, x, w, s, cos, sin, heads, kv_heads, rot_dim, scale, out);
}

Tensor& qkv_rope_q8_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w, const Tensor& s,
                        const Tensor& cos, const Tensor& sin, int64_t heads, int64_t kv_heads, int64_t rot_dim,
                        double scale, Tensor& out) {
  return qkv_rope_q<false>(ctx, x, w, s, cos, sin, heads, kv_heads, rot_dim, scale, out);
}

Tensor& mlp_q4_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w_gu, const Tensor& s_gu,
                   const Tensor& w_d, const Tensor& s_d, int64_t inter, Tensor& out) {
  return mlp_q<true>(ctx, x, w_gu, s_gu, w_d, s_d, inter, out);
}

Tensor& mlp_q8_out(KernelRuntimeContext& ctx, const Tensor& x, const Tensor& w_gu, const Tensor& s_gu,
                   const Tensor& w_d, const Tensor& s_d, int64_t inter, Tensor& out) {
  return mlp_q<false>(ctx, x, w_gu, s_gu, w_d, s_d, inter, out);
}

namespace {
constexpr char kQ4[] = "edgeslm::linear_q4.out";
constexpr char kQ8[] = "edgeslm::linear_q8.out";
constexpr char kMlp4[] = "edgeslm::mlp_q4.out";
constexpr char kMlp8[] = "edgeslm::mlp_q8.out";
constexpr char kQkv4[] = "edgeslm::qkv_rope_q4.out";
constexpr char kQkv8[] = "edgeslm::qkv_rope_q8.out";
const executorch::runtime::Kernel kQLinearKernels[] = {
    executorch::extension::make_boxed_kernel(kQ4, EXECUTORCH_FN(linear_q4_out, kQ4)),
    executorch::extension::make_boxed_kernel(kQ8, EXECUTORCH_FN(linear_q8_out, kQ8)),
    executorch::extension::make_boxed_kernel(kMlp4, EXECUTORCH_FN(mlp_q4_out, kMlp4)),
    executorch::extension::make_boxed_kernel(kMlp8, EXECUTORCH_FN(mlp_q8_out, kMlp8)),
    executorch::extension::make_boxed_kernel(kQkv4, EXECUTORCH_FN(qkv_rope_q4_out, kQkv4)),
    executorch::extension::make_boxed_kernel(kQkv8, EXECUTORCH_FN(qkv_rope_q8_out, kQkv8)),
};
const bool kRegistered = register_once(kQLinearKernels);
}  // namespace

bool qlinear_registered() { return kRegistered; }

}  // namespace edgeslm_kernels
