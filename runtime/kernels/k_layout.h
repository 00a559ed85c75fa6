// The K cache layouts edgeslm::sdpa_cached(_tokens) and edgeslm::cache_write accept, from the tensor's
// shape: key-tiled [H_kv, S/16, D, 16] (what exports write; attend_row.h kKeyTile) or transposed
// [H_kv, D, S] (bundles before the tiled layout).
#pragma once

#include <executorch/runtime/kernel/kernel_includes.h>

#include <cstdint>

#include "attend_row.h"   // kKeyTile

namespace edgeslm_kernels {

struct KGeometry {
  int64_t D, S;   // head size, cache slots
  bool tiled;
};

// True for either layout's rank and tile size (the other dims are checked against q/v by the caller).
inline bool k_layout_ok(const executorch::aten::Tensor& k_cache) {
  return k_cache.dim() == 3 || (k_cache.dim() == 4 && k_cache.size(3) == kKeyTile);
}

// Call after k_layout_ok.
inline KGeometry k_geometry(const executorch::aten::Tensor& k_cache) {
  if (k_cache.dim() == 4) return KGeometry{k_cache.size(2), k_cache.size(1) * kKeyTile, true};
  return KGeometry{k_cache.size(1), k_cache.size(2), false};
}

}  // namespace edgeslm_kernels
