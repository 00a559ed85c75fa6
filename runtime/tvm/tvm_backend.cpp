// tvm_backend.cpp — the TVM backend: load a Relax model library (model.so) into the Relax VM and run it.
//
// Only the tvm-ffi headers are used (the wheel's tvm/runtime headers do not compile on their own, see
// NOTES.md); libtvm_runtime.so provides the VM behind the `vm_load_executable` entry of the library.
// Steps at open: TVM_NUM_THREADS (TVM's pool reads it when it starts) -> Module::LoadFromFile ->
// vm_load_executable -> vm_initialization(cpu, pooled allocator) -> metadata() -> one zeroed K and
// V cache per layer, owned here for the model's lifetime.
// Per forward: tokens [1,T] and input_pos [T] int64 tensors -> decode (T = 1) or prefill(tokens, pos,
// k_0, v_0, ...) ->
// (logits [1,V], caches written in place) -> logits copied out.
// metadata() (compilers/tvm/lower.py): int64 [abi 1, vocab, max_seq_len, bos, layers, kv_heads,
// head_dim, n_eos, eos...]; K cache [kv_heads, head_dim, S], V cache [kv_heads, S, head_dim] float32.
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "../common/backend.h"

namespace edgeslm {
namespace {

namespace ffi = tvm::ffi;

constexpr int kAllocPooled = 2;  // tvm::runtime::memory::AllocatorType::kPooled
constexpr int64_t kMetadataAbi = 1;

// CPU buffers for tensors we allocate (caches, inputs): 64-byte aligned, zeroed.
struct CPUAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = ffi::GetDataSize(*t);
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    t->data = p;
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

ffi::Tensor empty(std::vector<int64_t> shape, DLDataType dtype) {
  return ffi::Tensor::FromNDAlloc(CPUAlloc(), ffi::Shape(shape), dtype, DLDevice{kDLCPU, 0});
}

const DLDataType kInt64{kDLInt, 64, 1};
const DLDataType kFloat32{kDLFloat, 32, 1};

class TVMBackend final : public Backend {
 public:
  const char* name() const override { return "tvm"; }
  const ModelInfo& info() const override { return info_; }
  int threads() const override { return threads_; }

  Status open(const std::string& path, int threads) {
    if (threads > 0) setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), 1);
    const char* env = std::getenv("TVM_NUM_THREADS");
    threads_ = env ? std::atoi(env) : 0;
    try {
      // LoadFromFile resolves a bare name through the loader's search path: make it a path.
      const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
      lib_ = ffi::Module::LoadFromFile(file);
      auto load = (*lib_)->GetFunction("vm_load_executable");
      if (!load) return Status::Error(EDGESLM_ERR_LOAD, path + ": not a Relax VM library (no vm_load_executable)");
      vm_ = (*load)().cast<ffi::Module>();
      auto init = (*vm_)->GetFunction("vm_initialization");
      if (!init) return Status::Error(EDGESLM_ERR_LOAD, path + ": VM has no vm_initialization");
      (*init)((int)kDLCPU, 0, kAllocPooled, (int)kDLCPU, 0, kAllocPooled);
      auto prefill = (*vm_)->GetFunction("prefill");
      auto decode = (*vm_)->GetFunction("decode");
      auto meta = (*vm_)->GetFunction("metadata");
      if (!prefill || !decode || !meta)
        return Status::Error(EDGESLM_ERR_LOAD, path + ": library lacks prefill(), decode() or metadata()");
      prefill_ = *prefill;
      decode_ = *decode;
      Status st = read_metadata((*meta)().cast<ffi::Tensor>(), path);
      if (!st.ok()) return st;
      if (threads_ <= 0) {
        auto num = ffi::Function::GetGlobal("runtime.NumThreads");
        threads_ = num ? (*num)().cast<int>() : 1;
      }
    } catch (const std::exception& e) {
      return Status::Error(EDGESLM_ERR_LOAD, path + ": " + first_line(e.what()));
    }
    return Status::Ok();
  }

  Status forward(const int64_t* ids, size_t n, int64_t start_pos, const float** logits_out) override {
    try {
      ffi::Tensor tokens = empty({1, (int64_t)n}, kInt64);
      ffi::Tensor pos = empty({(int64_t)n}, kInt64);
      auto* t = static_cast<int64_t*>(tokens.data_ptr());
      auto* p = static_cast<int64_t*>(pos.data_ptr());
      for (size_t i = 0; i < n; ++i) {
        t[i] = ids[i];
        p[i] = start_pos + (int64_t)i;
      }
      std::vector<ffi::AnyView> args;
      args.reserve(2 + caches_.size());
      args.emplace_back(tokens);
      args.emplace_back(pos);
      for (const auto& c : caches_) args.emplace_back(c);
      ffi::Any result;
      (n == 1 ? *decode_ : *prefill_).CallPacked(args.data(), (int32_t)args.size(), &result);
      auto outputs = result.cast<ffi::Array<ffi::Any>>();
      ffi::Tensor logits = outputs[0].cast<ffi::Tensor>();
      if (logits.dtype().code != kDLFloat || logits.dtype().bits != 32)
        return Status::Error(EDGESLM_ERR_RUNTIME, "main returned non-float32 logits");
      if (logits.size(logits.ndim() - 1) != info_.vocab_size)
        return Status::Error(EDGESLM_ERR_RUNTIME, "logits last dimension != vocab size");
      logits_.resize((size_t)info_.vocab_size);   // a copy: the result tensor dies with `outputs`
      std::memcpy(logits_.data(), logits.data_ptr(), logits_.size() * sizeof(float));
      *logits_out = logits_.data();
    } catch (const std::exception& e) {
      return Status::Error(EDGESLM_ERR_RUNTIME, std::string("tvm forward: ") + first_line(e.what()));
    }
    return Status::Ok();
  }

 private:
  static std::string first_line(const char* what) {
    std::string s(what ? what : "unknown error");
    size_t nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
  }

  Status read_metadata(const ffi::Tensor& m, const std::string& path) {
    if (m.dtype().code != kDLInt || m.dtype().bits != 64 || m.ndim() != 1 || m.size(0) < 8)
      return Status::Error(EDGESLM_ERR_LOAD, path + ": bad metadata() tensor");
    const auto* v = static_cast<const int64_t*>(m.data_ptr());
    if (v[0] != kMetadataAbi)
      return Status::Error(EDGESLM_ERR_LOAD, path + ": metadata ABI " + std::to_string(v[0]) + ", runtime reads 1");
    info_.vocab_size = v[1];
    info_.max_seq_len = v[2];
    info_.bos_id = v[3];
    const int64_t layers = v[4], kv_heads = v[5], head_dim = v[6], n_eos = v[7];
    if (m.size(0) < 8 + n_eos || info_.vocab_size <= 0 || info_.max_seq_len <= 0 || layers <= 0)
      return Status::Error(EDGESLM_ERR_LOAD, path + ": inconsistent metadata()");
    for (int64_t i = 0; i < n_eos; ++i) info_.eos_ids.push_back(v[8 + i]);
    const int64_t s = info_.max_seq_len;
    for (int64_t l = 0; l < layers; ++l) {
      caches_.push_back(empty({kv_heads, head_dim, s}, kFloat32));  // K, transposed
      caches_.push_back(empty({kv_heads, s, head_dim}, kFloat32));  // V
    }
    info_.planned_arena_bytes = 2 * layers * kv_heads * head_dim * s * (int64_t)sizeof(float);
    return Status::Ok();
  }

  std::optional<ffi::Module> lib_, vm_;   // set by open(); the VM keeps the library alive
  std::optional<ffi::Function> prefill_, decode_;   // T symbolic / T = 1 (static shapes, GEMV schedules)
  std::vector<ffi::Tensor> caches_;
  std::vector<float> logits_;             // [V] the last forward's logits (forward points the caller here)
  ModelInfo info_;
  int threads_ = 1;
};

}  // namespace

std::unique_ptr<Backend> open_tvm(const std::string& so_path, int threads, Status* err) {
  struct stat sb;
  if (stat(so_path.c_str(), &sb) != 0) {
    *err = Status::Error(EDGESLM_ERR_NOT_FOUND, so_path + ": no such file");
    return nullptr;
  }
  auto backend = std::make_unique<TVMBackend>();
  *err = backend->open(so_path, threads);
  if (!err->ok()) return nullptr;
  return backend;
}

}  // namespace edgeslm
