// tokenizer.h — a Hugging Face tokenizer.json in C++17 (standard library only; builds with the NDK).
//
// encode(text):
//   1. added tokens: split the raw text at non-normalized added tokens (leftmost-longest, with
//      single_word / lstrip / rstrip), like tokenizers' AddedVocabulary
//   2. normalizer (Prepend, Replace, NFC, Sequence) on each remaining segment, then split at the
//      normalized added tokens
//   3. pre-tokenizers (Split with the GPT-2 / Llama 3 / Qwen2 regexes, ByteLevel, Digits, Metaspace, Sequence)
//   4. BPE model per piece (bpe.h)
//   5. post-processor when add_special (TemplateProcessing, Roberta/Bert CLS-SEP, ByteLevel = no-op)
// decode(ids): id -> token (added tokens first), skip specials, decoders (ByteLevel, Metaspace, Replace,
//   ByteFallback, Fuse, Strip, Sequence), invalid UTF-8 -> U+FFFD; no decoder: tokens joined by " ".
// Anything else in the file (WordPiece / Unigram / WordLevel models, unknown normalizers, pre-tokenizers,
// decoders or regexes, dropout, truncation/padding) is refused by load() with a one-line reason.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bpe.h"
#include "pretokenize.h"

namespace edgeslm::tok {

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, single_word, lstrip, rstrip, normalized;
};

struct Normalizer {
  enum class Kind { Prepend, Replace, Nfc } kind;
  std::string a, b;  // Prepend: a = text; Replace: a -> b
};

struct Decoder {
  enum class Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip } kind;
  std::string a, b;        // Replace: a -> b; Metaspace: a = replacement; Strip: a = content char
  int start = 0, stop = 0;  // Strip
  bool prepend = true;     // Metaspace: prepend_scheme != never
};

class Tokenizer {
 public:
  // Reads and checks tokenizer.json; nullptr + *err (one line: what is unsupported or malformed).
  static std::unique_ptr<Tokenizer> load(const std::string& path, std::string* err);

  bool encode(std::string_view text, bool add_special, std::vector<int32_t>* ids, std::string* err);
  std::string decode(const int64_t* ids, size_t n, bool skip_special) const;
  int64_t vocab_size() const { return vocab_size_; }
  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  void finish_load();  // after the fields below are set (tokenizer_load.cpp)

  // Loaded configuration (filled by tokenizer_load.cpp).
  Bpe bpe;
  std::vector<AddedToken> added;
  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pretokenizers;
  std::vector<Decoder> decoders;
  bool has_decoder = false;
  std::vector<int32_t> post_prefix, post_suffix;  // ids around $A when add_special
  int64_t vocab_size_ = 0;

 private:
  void normalize(std::string* s, bool first) const;
  void split_added(const std::string& text, bool normalized_pass, bool first,
                   std::vector<std::pair<std::string, int32_t>>* out, std::vector<bool>* firsts) const;
  const std::string* token_of(int64_t id, bool* special) const;
  std::vector<std::string> normalized_added_;
  std::unordered_map<int64_t, size_t> added_by_id_;      // id -> index in added
  std::unordered_set<std::string> special_contents_;     // contents of special added tokens
  std::vector<size_t> by_first_byte_[2][256];            // [normalized pass][first byte] -> added indices  // added[i].content after the normalizer (normalized ones)
};

}  // namespace edgeslm::tok
