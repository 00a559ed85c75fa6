// pretokenize.h — the pre-tokenizers of tokenizer.json over pieces of text.
//
// The Split regexes of GPT-2 / Llama 3 / Qwen2 (and ByteLevel's built-in one) are fixed strings, so each is
// a hand-written matcher with Oniguruma's semantics (ordered alternation, greedy quantifiers with
// backtracking, \s = White_Space, \p{L} / \p{N} general categories). A pattern string not in kPatterns is
// refused at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgeslm::tok {

enum class Pattern { Gpt2, Llama3, Qwen2 };
// Which Pattern a tokenizer.json regex string is; false if it is none of the known ones.
bool pattern_from_regex(const std::string& regex, Pattern* out);

// One piece of text on its way to the model. `first`: it starts at offset 0 of the original input
// (Metaspace prepend_scheme "first" looks at that).
struct Piece {
  std::string text;  // UTF-8
  bool first = false;
};

struct PreTokenizer {
  enum class Kind { Split, ByteLevel, Digits, Metaspace } kind;
  Pattern pattern = Pattern::Gpt2;   // Split; ByteLevel with use_regex
  bool removed = false;              // Split behavior "Removed" (else "Isolated")
  bool add_prefix_space = false;     // ByteLevel
  bool use_regex = true;             // ByteLevel
  bool individual_digits = false;    // Digits
  std::string replacement = "\xE2\x96\x81";  // Metaspace: U+2581
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;
  bool split = true;                 // Metaspace

  void apply(std::vector<Piece>* pieces) const;
};

// Match length (in code points) of `pattern` at cps[i] (0: no match). Exposed for tests.
size_t match_at(Pattern pattern, const uint32_t* cps, size_t n, size_t i);

}  // namespace edgeslm::tok
