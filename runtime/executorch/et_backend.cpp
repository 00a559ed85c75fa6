// et_backend.cpp — the ExecuTorch backend: load a .pte through the Module API and run forward.
//
// Steps at open: register a log hook (ExecuTorch's error text goes into our error messages) ->
// set the XNNPACK thread pool size -> Module over the .pte read into huge pages, or Module(path, Mmap)
// (EDGESLM_WEIGHT_PAGES, program_image.h) -> load (flatbuffer verified, so a corrupt
// file is an error, not a crash) -> load "forward" (missing kernels / delegates fail here) -> read
// the constant metadata methods -> sum forward's memory-planned buffers from MethodMeta.
// Per forward: prompts longer than get_max_seq_len run in chunks; tokens[1,T] and input_pos[T] int64 wrap
// preallocated buffers; output logits [1,V] (or [1,T,V]) float32: the caller reads the last row in place.
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/core/hierarchical_allocator.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

#include "../common/backend.h"
#include "program_image.h"

// The wheel ships libexecutorch_threadpool.so without its header: declare the calls we use.
// (Non-virtual members on an opaque pointer: no layout knowledge needed; return types are not
// part of the mangled names.)
extern "C" {
struct pthreadpool;
size_t pthreadpool_get_threads_count(struct pthreadpool*);
}
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  void _unsafe_reset_threadpool(uint32_t num_threads);  // returns bool upstream; ignored here
};
ThreadPool* get_threadpool();
::pthreadpool* get_pthreadpool();
}  // namespace executorch::extension::threadpool

namespace edgeslm {
namespace {

using executorch::aten::ScalarType;
using executorch::extension::from_blob;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

// ---- ExecuTorch log capture: error lines of the current thread, appended to our messages ----
thread_local std::string g_et_log;  // last error-level ExecuTorch log lines (bounded)

void on_et_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
               const char* msg, size_t len) {
  static const bool forward = std::getenv("EDGESLM_LOG") != nullptr;
  if (forward) std::fprintf(stderr, "[et %c %s:%zu] %.*s\n", (char)level, file, line, (int)len, msg);
  if (level != kError && level != kFatal) return;
  std::string text(msg, len);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (g_et_log.size() > 1024) g_et_log.clear();
  if (!g_et_log.empty()) g_et_log += "; ";
  g_et_log += text;
}

// Checked at every open: another ExecuTorch user in the process (e.g. the Python runtime's module)
// may have registered its own PAL since, which would hide error text from our messages.
void install_log_hook() {
  static std::once_flag once;
  std::call_once(once, [] { executorch::runtime::runtime_init(); });
  const auto* pal = executorch::runtime::get_pal_impl();
  if (pal == nullptr || pal->emit_log_message != &on_et_log)
    executorch::runtime::register_pal(executorch::runtime::PalImpl::create(on_et_log, __FILE__));
}

// Live ExecuTorch models of this library. The XNNPACK delegate keeps the pthreadpool pointer it saw
// at method load, so resizing the pool under a loaded program is a use-after-free: resize only when
// none of ours is alive (programs loaded by others in the process, e.g. Python, cannot be seen: the
// C API documents threads = 0 for that case).
std::atomic<int> g_live_models{0};

int set_threads(int wanted) {
  namespace tp = executorch::extension::threadpool;
  tp::ThreadPool* pool = tp::get_threadpool();  // created on first use with the performant core count
  int current = (int)pthreadpool_get_threads_count(tp::get_pthreadpool());
  if (pool != nullptr && wanted > 0 && wanted != current && g_live_models.load() == 0) {
    pool->_unsafe_reset_threadpool((uint32_t)wanted);
    current = (int)pthreadpool_get_threads_count(tp::get_pthreadpool());
  }
  return current > 0 ? current : 1;
}

Status et_error(edgeslm_status code, const std::string& what, Error e) {
  std::string msg = what + ": " + executorch::runtime::to_string(e);
  if (!g_et_log.empty()) msg += " (" + g_et_log + ")";
  return Status::Error(code, msg);
}

class ExecuTorchBackend final : public Backend {
 public:
  ~ExecuTorchBackend() override {
    module_.reset();  // unload the program before another open may resize the pool
    planned_.reset();
    image_.reset();
    for (auto& m : arena_maps_) if (m.first != nullptr) munmap(m.first, m.second);
    if (counted_) --g_live_models;
  }
  const char* name() const override { return "executorch"; }
  const ModelInfo& info() const override { return info_; }
  int threads() const override { return threads_; }

  Status open(const std::string& path, int threads) {
    install_log_hook();
    g_et_log.clear();
    threads_ = set_threads(threads);
    ++g_live_models;
    counted_ = true;

    WeightPages pages = WeightPages::kMmap;
    Status wp = weight_pages(&pages);
    if (!wp.ok()) return wp;
    if (pages == WeightPages::kHuge) {
      image_ = std::make_unique<ProgramImage>();
      wp = read_program_image(path, image_.get());
      if (!wp.ok()) return wp;
      module_ = std::make_unique<Module>(
          std::make_unique<executorch::extension::BufferDataLoader>(image_->data, image_->size));
    } else {
      module_ = std::make_unique<Module>(path, Module::LoadMode::Mmap);
    }
    // InternalConsistency verifies the flatbuffer: a corrupt or truncated file returns an error.
    Error e = module_->load(executorch::runtime::Program::Verification::InternalConsistency);
    if (e != Error::Ok) return et_error(EDGESLM_ERR_LOAD, "cannot load program " + path, e);
    Status st = plan_memory();          // also sets info_.planned_arena_bytes
    if (!st.ok()) return st;
    e = module_->load_method("forward", planned_.get());
    if (e != Error::Ok) return et_error(EDGESLM_ERR_LOAD, "cannot load method 'forward'", e);

    st = read_metadata();
    if (!st.ok()) return st;
    if (image_) info_.weights_huge_page_bytes = huge_page_bytes(image_->data, image_->size);
    tokens_.assign((size_t)chunk_, 0);
    positions_.assign((size_t)chunk_, 0);
    return Status::Ok();
  }

  // Runs ids[0..n) in chunks of at most chunk_ tokens (the largest T the program was exported for);
  // the logits are those of the last chunk's last position.
  Status forward(const int64_t* ids, size_t n, int64_t start_pos, const float** logits) override {
    for (size_t at = 0; at < n; at += (size_t)chunk_) {
      const size_t len = std::min(n - at, (size_t)chunk_);
      Status st = forward_chunk(ids + at, len, start_pos + (int64_t)at, logits);
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

 private:
  // The memory-planned arena of 'forward' (activations + KV caches), one anonymous mapping per buffer.
  // Module's default arena is a zero-filled std::vector, which makes every page resident at load --
  // including the planner's unused gaps (SmolLM2: ~80 MB below the KV caches). Anonymous pages read as
  // zero and become resident only when written, so RSS follows the memory the program really touches.
  Status plan_memory() {
    auto meta = module_->method_meta("forward");
    if (!meta.ok()) return et_error(EDGESLM_ERR_LOAD, "no method meta for 'forward'", meta.error());
    for (size_t i = 0; i < meta->num_memory_planned_buffers(); ++i) {
      auto size = meta->memory_planned_buffer_size(i);
      if (!size.ok()) return et_error(EDGESLM_ERR_LOAD, "no planned buffer size", size.error());
      const size_t n = (size_t)*size;
      void* p = n == 0 ? nullptr : mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return Status::Error(EDGESLM_ERR_LOAD, "cannot map the planned arena (out of memory)");
      arena_maps_.push_back({p, n});
      info_.planned_arena_bytes += (int64_t)n;
      arena_spans_.emplace_back(static_cast<uint8_t*>(p), n);
    }
    planned_ = std::make_unique<executorch::runtime::HierarchicalAllocator>(
        executorch::runtime::Span<executorch::runtime::Span<uint8_t>>(arena_spans_.data(), arena_spans_.size()));
    return Status::Ok();
  }

  Status forward_chunk(const int64_t* ids, size_t n, int64_t start_pos, const float** logits_view) {
    g_et_log.clear();
    // tokens [1, n] and input_pos [n] int64 views over preallocated [chunk] buffers.
    std::memcpy(tokens_.data(), ids, n * sizeof(int64_t));
    for (size_t i = 0; i < n; ++i) positions_[i] = start_pos + (int64_t)i;
    auto tokens = from_blob(tokens_.data(), {1, (int)n}, ScalarType::Long);
    auto pos = from_blob(positions_.data(), {(int)n}, ScalarType::Long);
    auto out = module_->execute("forward", {EValue(*tokens), EValue(*pos)});
    if (!out.ok()) return et_error(EDGESLM_ERR_RUNTIME, "forward failed", out.error());
    if (out->empty() || !(*out)[0].isTensor())
      return Status::Error(EDGESLM_ERR_RUNTIME, "forward returned no tensor");
    const auto& logits = (*out)[0].toTensor();  // [1, V] (or [1, T, V]: take the last row)
    if (logits.scalar_type() != ScalarType::Float)
      return Status::Error(EDGESLM_ERR_RUNTIME, "forward returned non-float32 logits");
    const int64_t v = info_.vocab_size;
    if (logits.numel() < v || logits.size(logits.dim() - 1) != v)
      return Status::Error(EDGESLM_ERR_RUNTIME, "logits last dimension != vocab size");
    // The output lives in the planned arena until the next execute: the sampler reads it in place (a
    // copy of SmolLM2's 192 KB of logits cost ~1% of a decode step with glibc's rep-movsb memcpy).
    *logits_view = logits.const_data_ptr<float>() + (logits.numel() - v);
    return Status::Ok();
  }

  // Runs a constant method; returns its outputs (empty if the method is absent).
  Status constant(const char* method, std::vector<EValue>* values, bool required) {
    auto names = module_->method_names();
    if (!names.ok() || names->count(method) == 0) {
      if (!required) return Status::Ok();
      return Status::Error(EDGESLM_ERR_LOAD, std::string("model has no metadata method '") + method +
                                                 "' (not an edgeslm/ExecuTorch LLM export)");
    }
    auto out = module_->execute(method);
    if (!out.ok()) return et_error(EDGESLM_ERR_LOAD, std::string("metadata method ") + method, out.error());
    *values = std::move(*out);
    return Status::Ok();
  }

  static bool as_int(const std::vector<EValue>& v, int64_t* out) {
    if (v.empty()) return false;
    if (v[0].isInt()) { *out = v[0].toInt(); return true; }
    if (v[0].isBool()) { *out = v[0].toBool() ? 1 : 0; return true; }
    return false;
  }

  Status read_metadata() {
    std::vector<EValue> v;
    // ExecuTorch's convention: get_max_seq_len = most tokens per forward, get_max_context_len = KV
    // capacity (absent in older bundles: the same as get_max_seq_len).
    Status st = constant("get_max_seq_len", &v, true);
    if (!st.ok() || !as_int(v, &chunk_) || chunk_ <= 0)
      return st.ok() ? Status::Error(EDGESLM_ERR_LOAD, "bad get_max_seq_len") : st;
    v.clear();
    if (!(st = constant("get_max_context_len", &v, false)).ok()) return st;
    if (!as_int(v, &info_.max_seq_len)) info_.max_seq_len = chunk_;
    if (info_.max_seq_len < chunk_) return Status::Error(EDGESLM_ERR_LOAD, "get_max_context_len < get_max_seq_len");
    v.clear();
    st = constant("get_vocab_size", &v, true);
    if (!st.ok() || !as_int(v, &info_.vocab_size) || info_.vocab_size <= 0)
      return st.ok() ? Status::Error(EDGESLM_ERR_LOAD, "bad get_vocab_size") : st;
    v.clear();
    if (!(st = constant("get_bos_id", &v, false)).ok()) return st;
    if (!as_int(v, &info_.bos_id)) info_.bos_id = -1;
    v.clear();
    if (!(st = constant("get_eos_ids", &v, false)).ok()) return st;
    for (const auto& e : v)
      if (e.isInt()) info_.eos_ids.push_back(e.toInt());
    return Status::Ok();
  }

  std::unique_ptr<ProgramImage> image_;                                     // the .pte in huge pages
  std::unique_ptr<Module> module_;
  std::vector<std::pair<void*, size_t>> arena_maps_;                        // mmap (address, bytes)
  std::vector<executorch::runtime::Span<uint8_t>> arena_spans_;             // views of arena_maps_
  std::unique_ptr<executorch::runtime::HierarchicalAllocator> planned_;     // forward's planned memory
  ModelInfo info_;
  int threads_ = 1;
  bool counted_ = false;            // counted in g_live_models
  int64_t chunk_ = 0;               // most tokens per forward (get_max_seq_len)
  std::vector<int64_t> tokens_;     // [chunk] staging for the tokens input
  std::vector<int64_t> positions_;  // [chunk] staging for input_pos
};

}  // namespace

std::unique_ptr<Backend> open_executorch(const std::string& pte_path, int threads, Status* err) {
  struct stat sb;
  if (stat(pte_path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    *err = Status::Error(EDGESLM_ERR_NOT_FOUND, pte_path + ": no such file");
    return nullptr;
  }
  auto backend = std::make_unique<ExecuTorchBackend>();
  *err = backend->open(pte_path, threads);
  if (!err->ok()) return nullptr;
  return backend;
}

}  // namespace edgeslm
