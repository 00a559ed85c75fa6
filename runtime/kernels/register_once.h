// Registering edgeslm's kernels once per process into ExecuTorch's kernel registry.
//
// The kernels live in libedgeslm.so (native runner) and in the small libedgeslm_kernels.so the Python
// runtime loads (sdk/native/kernels.py); a second copy in the same process sees its first op already
// registered and stays quiet (ExecuTorch aborts on re-registration).
#pragma once

#include <executorch/runtime/kernel/operator_registry.h>

#include <cstring>

namespace edgeslm_kernels {

inline bool already_registered(const char* name) {
  // Scan the table instead of registry_has_op_function, which logs "kernel not found" when absent.
  for (const auto& kernel : executorch::runtime::get_registered_kernels()) {
    if (kernel.name_ != nullptr && std::strcmp(kernel.name_, name) == 0) return true;
  }
  return false;
}

// kernels[0].name_ identifies the set; true when registered now or before.
template <size_t N>
bool register_once(const executorch::runtime::Kernel (&kernels)[N]) {
  if (already_registered(kernels[0].name_)) return true;
  return executorch::runtime::register_kernels({kernels, N}) == executorch::runtime::Error::Ok;
}

}  // namespace edgeslm_kernels
