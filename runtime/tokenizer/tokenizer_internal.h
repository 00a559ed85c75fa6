// tokenizer_internal.h — C++ glue between the tokenizer's C functions and common/capi.cpp (not public).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeslm.h"

namespace edgeslm {
// Thread-local message of the last failed open (edgeslm_last_error(NULL)); defined in common/capi.cpp.
std::string& open_error_slot();
// nullptr + *err on failure.
edgeslm_tokenizer* tokenizer_open(const std::string& path, std::string* err);
bool tokenizer_encode(edgeslm_tokenizer* t, std::string_view text, bool add_special, std::vector<int64_t>* out);
std::string tokenizer_decode(const edgeslm_tokenizer* t, const int64_t* ids, size_t n, bool skip_special);
}  // namespace edgeslm
