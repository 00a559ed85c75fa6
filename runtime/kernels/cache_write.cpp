// edgeslm::cache_write.out — the new keys and values of a forward call written into the static KV cache,
// in one op per layer.
//
// Replaces, per layer, the transposes, dtype casts, index tensors and two index_put_ calls that
// KVCache.update lowers to (about 11 small ops on ExecuTorch's CPU kernels, each a dispatch and a copy):
//   k, v       [T, H_kv, D] float32   the new keys/values in the projections' token-major layout
//   k_cache    [H_kv, S/16, D, 16]    float32 or float16 (binary16 bits), written in place: K key-tiled
//              or [H_kv, D, S]        (tiles of 16 keys; see sdpa_cached.cpp) or transposed (older bundles)
//   v_cache    [H_kv, S, D]           same dtype as k_cache, written in place
//              int8 caches: K [H_kv, S/16, D + 4, 16], V [H_kv, S, D + 4]: each key's and value row's D values
//              quantized symmetrically (scale = max|x| / 127, q = round-half-even(x / scale)), the float32
//              scale in the row's 4 extra bytes (attend_row.h CacheRows); a K tile's components in groups of
//              4 per key (attend_int8.h int8_k_offset)
//   input_pos  [T] int64              slot of token t (each in [0, S))
//   out        [1] float32            a dummy result (0): ExecuTorch's out-variant convention for an op
//                                     whose effect is the mutation (as llama::update_cache)
// float16 caches get round-to-nearest-even conversion, the same bits as torch's .to(torch.float16) (F16C on
// x86-64: NaN payloads aside); int8 caches the same bytes as sdpa_op.py's quantize_rows_int8.
// Python op and reference: compilers/executorch/sdpa_op.py (SdpaKVCache.update_tokens).
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/kernel/kernel_includes.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "attend_row.h"   // k_offset, kKeyTile
#include "cache_rows.h"
#include "k_layout.h"
#include "register_once.h"

namespace edgeslm_kernels {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;

// float -> binary16 bits, round to nearest even; overflow -> inf, NaN stays NaN, subnormals exact.
inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u);   // inf / NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;                                      // >= 65520: inf
  if (a < 0x38800000u) {                                                            // < 2^-14: subnormal
    const uint32_t e = a >> 23;
    if (e < 102) return sign;                                                       // < 2^-25: 0
    const uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;                // units of 2^-24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);                 // rebias 127 -> 15
  return static_cast<uint16_t>(sign | (r >> 13));
}

template <typename KV>
inline KV to_cache(float x);
template <>
inline float to_cache<float>(float x) { return x; }
template <>
inline uint16_t to_cache<uint16_t>(float x) { return float_to_half(x); }

// One key and one value row: kr[0, D) -> kcol[d * kstride] (K's components are strided), vr -> vrow.
template <typename KV>
void put_row(const float* kr, const float* vr, KV* kcol, int64_t kstride, KV* vrow, int64_t D) {
  for (int64_t d = 0; d < D; ++d) {
    kcol[d * kstride] = to_cache<KV>(kr[d]);
    vrow[d] = to_cache<KV>(vr[d]);
  }
}

#if defined(EDGESLM_X86_AVX2)
// put_row<uint16_t> with F16C: 8 conversions per instruction, round to nearest even like float_to_half (the
// same bits for every number; a NaN keeps its payload where float_to_half gives 0x7e00). The scalar
// conversions cost ~2 us a layer on the decode's critical path.
EDGESLM_X86_AVX2 void put_row_f16c(const float* kr, const float* vr, uint16_t* kcol, int64_t kstride, uint16_t* vrow,
                                   int64_t D) {
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(vrow + d),
                     _mm256_cvtps_ph(_mm256_loadu_ps(vr + d), _MM_FROUND_TO_NEAREST_INT));
    alignas(16) uint16_t kh[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(kh), _mm256_cvtps_ph(_mm256_loadu_ps(kr + d), _MM_FROUND_TO_NEAREST_INT));
    for (int i = 0; i < 8; ++i) kcol[(d + i) * kstride] = kh[i];
  }
  put_row(kr + d, vr + d, kcol + d * kstride, kstride, vrow + d, D - d);
}
#endif

// Token t's keys and values of every KV head into slot pos[t]; put(kr, vr, kcol, kstride, vrow, D) writes a row.
// Token t's rows start at k + t * ld and v + t * ld (ld = H_kv * D for k/v tensors of their own; wider when
// they are head ranges of the fused q/k/v rows).
template <typename KV, typename PutRow>
void write_rows(const float* k, const float* v, int64_t ld, KV* kc, KV* vc, const int64_t* pos, int64_t T,
                int64_t Hkv, int64_t D, int64_t S, bool tiled, PutRow put) {
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = pos[t];
    for (int64_t g = 0; g < Hkv; ++g) {
      // key p's components: k_cache[g, p/16, :, p%16] (stride 16) or k_cache[g, :, p] (stride S)
      KV* kcol = kc + g * D * S + k_offset(0, p, D, S, tiled);
      KV* vrow = vc + (g * S + p) * D;                     // v_cache[g, p, :]
      put(k + t * ld + g * D, v + t * ld + g * D, kcol, tiled ? kKeyTile : S, vrow, D);
    }
  }
}

// x [D] -> q[d * stride] int8 with x ~ q * scale; returns scale = max|x| / 127 (0 for an all-zero row). The division
// and the rounding (half to even: + 1.5 * 2^23 and back, exact for |x / scale| <= 127) are torch's
// round(x / scale), so the bytes equal the Python reference's.
inline float quantize_row_int8(const float* x, int8_t* q, int64_t stride, int64_t D) {
  float amax = 0.0f;
  for (int64_t d = 0; d < D; ++d) amax = std::max(amax, std::fabs(x[d]));
  const float scale = amax / 127.0f, div = scale > 0.0f ? scale : 1.0f;
  for (int64_t d = 0; d < D; ++d) {
    const float r = (x[d] / div + 12582912.0f) - 12582912.0f;
    q[d * stride] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
  }
  return scale;
}

// write_rows for int8 caches: key p of head g -> key p % 16 of its tile (components in groups of 4,
// int8_k_offset; the scale at byte D*16 + 4 * (p % 16)), value -> row p (the scale at byte D).
void write_rows_int8(const float* k, const float* v, int64_t ld, int8_t* kc, int8_t* vc, const int64_t* pos,
                     int64_t T, int64_t Hkv, int64_t D, int64_t S) {
  constexpr int64_t P = CacheRows<int8_t>::kScale;
  int8_t row[kMaxInt8HeadDim];
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = pos[t], tile = p / kKeyTile, col = p % kKeyTile;
    for (int64_t g = 0; g < Hkv; ++g) {
      int8_t* kt = kc + g * (D + P) * S + tile * kKeyTile * (D + P);   // tile [D + 4, 16]
      const float ks = quantize_row_int8(k + t * ld + g * D, row, 1, D);
      for (int64_t d = 0; d < D; d += 4) std::memcpy(kt + int8_k_offset(d, col), row + d, 4);
      std::memcpy(kt + D * kKeyTile + 4 * col, &ks, sizeof ks);
      int8_t* vrow = vc + (g * S + p) * (D + P);
      const float vs = quantize_row_int8(v + t * ld + g * D, vrow, 1, D);
      std::memcpy(vrow + D, &vs, sizeof vs);
    }
  }
}

Tensor& cache_write_out(KernelRuntimeContext& ctx, const Tensor& k, const Tensor& v, Tensor& k_cache,
                        Tensor& v_cache, const Tensor& input_pos, Tensor& out) {
  const ScalarType kv = k_cache.scalar_type();
  ET_KERNEL_CHECK_MSG(ctx, k.dim() == 3 && v.dim() == 3 && k_layout_ok(k_cache) && v_cache.dim() == 3 &&
                               input_pos.dim() == 1,
                      InvalidArgument, out,
                      "cache_write: expected k/v [T,H_kv,D], k_cache [H_kv,S/16,D,16] or [H_kv,D,S] (int8: [H_kv,S/16,D+4,16], "
                      "D a multiple of 4, <= 512), v_cache 3-D, input_pos [T]");
  ET_KERNEL_CHECK_MSG(ctx, k.scalar_type() == ScalarType::Float && v.scalar_type() == ScalarType::Float &&
                               (kv == ScalarType::Float || kv == ScalarType::Half || kv == ScalarType::Char) &&
                               v_cache.scalar_type() == kv &&
                               input_pos.scalar_type() == ScalarType::Long && out.scalar_type() == ScalarType::Float,
                      InvalidArgument, out,
                      "cache_write: float32 k/v/out, float32, float16 or int8 caches (alike), int64 input_pos");
  const int64_t T = k.size(0), Hkv = k.size(1), D = k.size(2);
  const KGeometry kgeo = k_geometry(k_cache);
  const int64_t S = kgeo.S;
  ET_KERNEL_CHECK_MSG(ctx, v.size(0) == T && v.size(1) == Hkv && v.size(2) == D && k_cache.size(0) == Hkv &&
                               kgeo.D == D && v_cache.size(0) == Hkv && v_cache.size(1) == S &&
                               v_cache.size(2) == D + scale_elems(v_cache) && input_pos.numel() == T,
                      InvalidArgument, out,
                      "cache_write: shapes disagree (k/v [T,H_kv,D], k_cache [H_kv,S/16,D,16] or [H_kv,D,S], v_cache [H_kv,S,D]; "
                      "int8: D + 4)");
  const int64_t* pos = input_pos.const_data_ptr<int64_t>();
  for (int64_t t = 0; t < T; ++t)
    ET_KERNEL_CHECK_MSG(ctx, pos[t] >= 0 && pos[t] < S, InvalidArgument, out, "cache_write: input_pos outside the cache");
  const executorch::aten::SizesType one[1] = {1};
  ET_KERNEL_CHECK(ctx, executorch::runtime::resize_tensor(out, {one, 1}) == Error::Ok, InvalidArgument, out);
  write_cache_rows(k.const_data_ptr<float>(), v.const_data_ptr<float>(), Hkv * D, k_cache, v_cache, pos, T);
  out.mutable_data_ptr<float>()[0] = 0.0f;
  return out;
}

void write_cache_rows(const float* k, const float* v, int64_t ld, Tensor& k_cache, Tensor& v_cache,
                      const int64_t* pos, int64_t T) {
  const KGeometry kgeo = k_geometry(k_cache);
  const int64_t Hkv = k_cache.size(0), D = kgeo.D, S = kgeo.S;
  if (is_int8_cache(k_cache)) {
    write_rows_int8(k, v, ld, static_cast<int8_t*>(k_cache.mutable_data_ptr()),
                    static_cast<int8_t*>(v_cache.mutable_data_ptr()), pos, T, Hkv, D, S);
  } else if (k_cache.scalar_type() == ScalarType::Half) {
    auto put = put_row<uint16_t>;
#if defined(EDGESLM_X86_AVX2)
    if (cpu_has_avx2()) put = put_row_f16c;
#endif
    write_rows(k, v, ld, static_cast<uint16_t*>(k_cache.mutable_data_ptr()),
               static_cast<uint16_t*>(v_cache.mutable_data_ptr()), pos, T, Hkv, D, S, kgeo.tiled, put);
  } else {
    write_rows(k, v, ld, k_cache.mutable_data_ptr<float>(), v_cache.mutable_data_ptr<float>(), pos, T, Hkv, D, S,
               kgeo.tiled, put_row<float>);
  }
}

namespace {
constexpr char kCacheWrite[] = "edgeslm::cache_write.out";
const executorch::runtime::Kernel kCacheKernels[] = {
    executorch::extension::make_boxed_kernel(kCacheWrite, EXECUTORCH_FN(cache_write_out, kCacheWrite)),
};
const bool kRegistered = register_once(kCacheKernels);
}  // namespace

bool cache_write_registered() { return kRegistered; }

}  // namespace edgeslm_kernels
