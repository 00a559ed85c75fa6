// Writing new keys and values into the static KV cache, shared by edgeslm::cache_write (cache_write.cpp)
// and edgeslm::attend_qkv (sdpa_cached.cpp), which writes them from the fused q/k/v rows itself.
#pragma once

#include <executorch/runtime/kernel/kernel_includes.h>

#include <cstdint>

namespace edgeslm_kernels {

// Token t's keys k[t * ld + g * D + d] and values v[t * ld + g * D + d] (g < H_kv, d < D) into slot pos[t]
// of k_cache ([H_kv, S/16, D, 16] or [H_kv, D, S]) and v_cache ([H_kv, S, D]), float32 or float16 (round to
// nearest even), or int8 (K [H_kv, S/16, D + 4, 16], V [H_kv, S, D + 4]: symmetric per row, with its
// scale). The caller has checked the shapes, dtypes and 0 <= pos[t] < S.
void write_cache_rows(const float* k, const float* v, int64_t ld, executorch::aten::Tensor& k_cache,
                      executorch::aten::Tensor& v_cache, const int64_t* pos, int64_t T);

}  // namespace edgeslm_kernels
