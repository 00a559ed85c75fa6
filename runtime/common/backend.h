// backend.h — the internal seam between the shared generation loop (common/) and one inference engine
// (executorch/, tvm/). A backend only loads a model and runs forward; sampling, positions,
// timing and the C API live in common/ and are identical for every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgeslm.h"

namespace edgeslm {

// What the model says about itself (ExecuTorch: the .pte's constant methods).
struct ModelInfo {
  int64_t vocab_size = 0;          // V: logits length
  int64_t max_seq_len = 0;         // KV cache capacity in tokens (positions 0..max_seq_len-1)
  int64_t bos_id = -1;             // -1: none
  std::vector<int64_t> eos_ids;    // may be empty
  int64_t planned_arena_bytes = 0; // forward's memory-planned buffers (activations + mutable KV cache)
  int64_t weights_huge_page_bytes = 0;  // program bytes the kernel backs with huge pages (0: 4 KB pages)
};

// Error with a status: backends return it instead of throwing across the C boundary.
struct Status {
  edgeslm_status code = EDGESLM_OK;
  std::string message;
  bool ok() const { return code == EDGESLM_OK; }
  static Status Ok() { return {}; }
  static Status Error(edgeslm_status c, std::string m) { return {c, std::move(m)}; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual const ModelInfo& info() const = 0;
  virtual int threads() const = 0;
  // Runs ids[0..n) at positions [start_pos, start_pos+n) in one call, updating the KV cache in place,
  // and points *logits at the LAST position's logits [vocab_size], memory the backend owns and keeps
  // until its next forward (ExecuTorch: the program's output tensor, no copy). The caller checks bounds
  // (start_pos + n <= max_seq_len) and token ids (0 <= id < vocab_size) before calling.
  virtual Status forward(const int64_t* ids, size_t n, int64_t start_pos, const float** logits) = 0;
};

// Factory per backend, implemented in <backend>/; `threads` <= 0 means the backend's default.
// Returns nullptr and fills `err` on failure; never throws.
std::unique_ptr<Backend> open_executorch(const std::string& pte_path, int threads, Status* err);
#ifdef EDGESLM_WITH_TVM
std::unique_ptr<Backend> open_tvm(const std::string& so_path, int threads, Status* err);  // tvm/
#endif

}  // namespace edgeslm
