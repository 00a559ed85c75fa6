// The K cache layouts edgeslm::sdpa_cached(_tokens) and edgeslm::cache_write accept, from the tensor's
// shape and dtype: key-tiled [H_kv, S/16, D, 16] (what exports write; attend_row.h kKeyTile), transposed
// [H_kv, D, S] (bundles before the tiled layout), or for int8 caches key-tiled [H_kv, S/16, D + 4, 16]
// (D a multiple of 4: each tile's components in groups of 4 per key, then the 16 keys' float32 scales;
// attend_row.h CacheRows, attend_int8.h).
#pragma once

#include <executorch/runtime/kernel/kernel_includes.h>

#include <cstdint>

#include "attend_row.h"   // kKeyTile, CacheRows

namespace edgeslm_kernels {

struct KGeometry {
  int64_t D, S;   // head size, cache slots
  bool tiled;
};

inline bool is_int8_cache(const executorch::aten::Tensor& cache) {
  return cache.scalar_type() == executorch::aten::ScalarType::Char;
}

// Scale bytes per cache row: CacheRows<int8_t>::kScale for int8 caches, 0 for float ones.
inline int64_t scale_elems(const executorch::aten::Tensor& cache) {
  return is_int8_cache(cache) ? CacheRows<int8_t>::kScale : 0;
}

// True for either layout's rank and tile size (the other dims are checked against q/v by the caller);
// int8 caches only key-tiled, with room for the scales.
inline bool k_layout_ok(const executorch::aten::Tensor& k_cache) {
  if (is_int8_cache(k_cache)) {   // D a multiple of 4 (components in groups of 4), at most kMaxInt8HeadDim
    const int64_t D = k_cache.dim() == 4 ? k_cache.size(2) - CacheRows<int8_t>::kScale : 0;
    return k_cache.dim() == 4 && k_cache.size(3) == kKeyTile && D > 0 && D % 4 == 0 && D <= kMaxInt8HeadDim;
  }
  return k_cache.dim() == 3 || (k_cache.dim() == 4 && k_cache.size(3) == kKeyTile);
}

// Call after k_layout_ok.
inline KGeometry k_geometry(const executorch::aten::Tensor& k_cache) {
  if (k_cache.dim() == 4) return KGeometry{k_cache.size(2) - scale_elems(k_cache), k_cache.size(1) * kKeyTile, true};
  return KGeometry{k_cache.size(1), k_cache.size(2), false};
}

}  // namespace edgeslm_kernels
