// tokenizer_capi.cpp — the edgeslm_tokenizer_* functions of include/edgeslm.h over tok::Tokenizer.
// Nothing throws across the C ABI; open failures go to edgeslm_last_error(NULL) (open_error_slot(),
// defined in common/capi.cpp next to edgeslm_open's).
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "edgeslm.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

struct edgeslm_tokenizer {
  std::unique_ptr<edgeslm::tok::Tokenizer> impl;
  std::string error;
  std::vector<int32_t> ids;  // scratch
};

namespace edgeslm {

edgeslm_tokenizer* tokenizer_open(const std::string& path, std::string* err) {
  try {
    auto impl = tok::Tokenizer::load(path, err);
    if (!impl) return nullptr;
    auto* t = new edgeslm_tokenizer();
    t->impl = std::move(impl);
    return t;
  } catch (const std::bad_alloc&) {
    *err = path + ": out of memory while loading the tokenizer";
  } catch (const std::exception& e) {
    *err = path + ": internal error while loading the tokenizer: " + e.what();
  }
  return nullptr;
}

bool tokenizer_encode(edgeslm_tokenizer* t, std::string_view text, bool add_special, std::vector<int64_t>* out) {
  t->error.clear();
  if (!t->impl->encode(text, add_special, &t->ids, &t->error)) return false;
  out->assign(t->ids.begin(), t->ids.end());
  return true;
}

std::string tokenizer_decode(const edgeslm_tokenizer* t, const int64_t* ids, size_t n, bool skip_special) {
  return t->impl->decode(ids, n, skip_special);
}

}  // namespace edgeslm

extern "C" {

edgeslm_status edgeslm_tokenizer_open(const char* path, edgeslm_tokenizer** out) {
  std::string& err = edgeslm::open_error_slot();
  err.clear();
  if (out == nullptr) return err = "edgeslm_tokenizer_open: out is NULL", EDGESLM_ERR_INVALID_ARGUMENT;
  *out = nullptr;
  if (path == nullptr || *path == '\0') return err = "edgeslm_tokenizer_open: path is empty", EDGESLM_ERR_INVALID_ARGUMENT;
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return err = std::string(path) + ": tokenizer.json not found", EDGESLM_ERR_NOT_FOUND;
  std::fclose(f);
  *out = edgeslm::tokenizer_open(path, &err);
  return *out != nullptr ? EDGESLM_OK : EDGESLM_ERR_LOAD;
}

void edgeslm_tokenizer_close(edgeslm_tokenizer* t) { delete t; }

const char* edgeslm_tokenizer_last_error(const edgeslm_tokenizer* t) { return t ? t->error.c_str() : ""; }

edgeslm_status edgeslm_tokenizer_encode(edgeslm_tokenizer* t, const char* text, size_t len, int add_special,
                                        int64_t* ids, size_t cap, size_t* n_ids) {
  if (t == nullptr) return EDGESLM_ERR_INVALID_ARGUMENT;
  t->error.clear();
  if (n_ids == nullptr || (text == nullptr && len > 0) || (ids == nullptr && cap > 0))
    return t->error = "edgeslm_tokenizer_encode: NULL argument", EDGESLM_ERR_INVALID_ARGUMENT;
  try {
    if (!t->impl->encode(std::string_view(text ? text : "", len), add_special != 0, &t->ids, &t->error))
      return EDGESLM_ERR_RUNTIME;
    for (size_t i = 0; i < t->ids.size() && i < cap; ++i) ids[i] = t->ids[i];
    *n_ids = t->ids.size();
    return EDGESLM_OK;
  } catch (const std::bad_alloc&) {
    return t->error = "out of memory", EDGESLM_ERR_NO_MEMORY;
  } catch (const std::exception& e) {
    return t->error = std::string("internal error: ") + e.what(), EDGESLM_ERR_RUNTIME;
  }
}

edgeslm_status edgeslm_tokenizer_decode(edgeslm_tokenizer* t, const int64_t* ids, size_t n, int skip_special,
                                        char* text, size_t cap, size_t* n_bytes) {
  if (t == nullptr) return EDGESLM_ERR_INVALID_ARGUMENT;
  t->error.clear();
  if (n_bytes == nullptr || (ids == nullptr && n > 0) || (text == nullptr && cap > 0))
    return t->error = "edgeslm_tokenizer_decode: NULL argument", EDGESLM_ERR_INVALID_ARGUMENT;
  try {
    const std::string s = t->impl->decode(ids, n, skip_special != 0);
    const size_t k = s.size() < cap ? s.size() : cap;
    if (k > 0) std::memcpy(text, s.data(), k);
    if (k < cap) text[k] = '\0';
    *n_bytes = s.size();
    return EDGESLM_OK;
  } catch (const std::bad_alloc&) {
    return t->error = "out of memory", EDGESLM_ERR_NO_MEMORY;
  } catch (const std::exception& e) {
    return t->error = std::string("internal error: ") + e.what(), EDGESLM_ERR_RUNTIME;
  }
}

int64_t edgeslm_tokenizer_vocab_size(const edgeslm_tokenizer* t) { return t ? t->impl->vocab_size() : -1; }

}  // extern "C"
