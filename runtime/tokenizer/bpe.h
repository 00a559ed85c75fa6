// bpe.h — the BPE model of a tokenizer.json: word (one pre-tokenized piece) -> ids.
// Semantics of `tokenizers`' BPE: characters looked up in the vocab, missing ones become byte-fallback
// tokens <0xXX> (byte_fallback) or the unk token (fused when fuse_unk), then the lowest-rank merge
// is applied repeatedly (leftmost first on equal rank). ignore_merges: a word in the vocab is one id.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeslm::tok {

class Bpe {
 public:
  std::unordered_map<std::string, int32_t> vocab;       // token -> id
  std::vector<std::string> id_to_token;                  // id -> token ("" for holes)
  struct Merge { int32_t rank, new_id; };
  std::unordered_map<uint64_t, Merge> merges;           // (left id << 32 | right id) -> merge
  int32_t unk_id = -1;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  int32_t byte_ids[256];                                 // <0xXX> ids for byte_fallback (-1: absent)

  // Appends the ids of `word` to out. A character with no id, no byte fallback and no unk token is
  // dropped, as `tokenizers` does. Returns false (and sets *err) only on internal errors.
  bool encode_word(std::string_view word, std::vector<int32_t>* out, std::string* err);
  void finish_load();  // after vocab/merges are set: fills byte_ids

 private:
  std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word -> ids (bounded)
};

}  // namespace edgeslm::tok
