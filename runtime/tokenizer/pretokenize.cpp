// pretokenize.cpp — see pretokenize.h. Every op maps a list of pieces to a finer list, as
// `tokenizers`' PreTokenizedString::split does.
#include "pretokenize.h"

#include "unicode.h"

namespace edgeslm::tok {

namespace {
const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

inline bool L(uint32_t c) { return uni::is_letter(c); }
inline bool N(uint32_t c) { return uni::is_number(c); }
inline bool S(uint32_t c) { return uni::is_whitespace(c); }
inline bool other(uint32_t c) { return !S(c) && !L(c) && !N(c); }
inline bool nl(uint32_t c) { return c == '\r' || c == '\n'; }

// 's 't 're 've 'm 'll 'd at c[i] (c[i] == '\''); fold: case-insensitive as Oniguruma's (?i) (ſ folds to s).
size_t contraction(const uint32_t* c, size_t n, size_t i, bool fold) {
  if (i + 1 >= n) return 0;
  auto f = [fold](uint32_t x) -> uint32_t {
    if (!fold) return x;
    if (x >= 'A' && x <= 'Z') return x + 32;
    if (x == 0x17F) return 's';
    return x;
  };
  const uint32_t a = f(c[i + 1]);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < n) {
    const uint32_t b = f(c[i + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// \s+(?!\S)|\s+ at a whitespace run starting at i.
size_t trailing_space(const uint32_t* c, size_t n, size_t i) {
  size_t r = i;
  while (r < n && S(c[r])) ++r;
  if (r == n || r - i < 2) return r - i;
  return r - i - 1;  // leave the last space to prefix the next word
}

size_t match_gpt2(const uint32_t* c, size_t n, size_t i) {
  if (c[i] == '\'') {
    size_t k = contraction(c, n, i, false);
    if (k) return k;
  }
  size_t j = c[i] == ' ' ? i + 1 : i;
  if (j < n) {
    bool (*cls)(uint32_t) = L(c[j]) ? L : N(c[j]) ? N : other(c[j]) ? other : nullptr;
    if (cls != nullptr) {  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
      while (j < n && cls(c[j])) ++j;
      return j - i;
    }
  }
  if (S(c[i])) return trailing_space(c, n, i);
  return 0;
}

size_t match_llama(const uint32_t* c, size_t n, size_t i, size_t max_digits) {
  if (c[i] == '\'') {
    size_t k = contraction(c, n, i, true);
    if (k) return k;
  }
  {  // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t j = (!L(c[i]) && !N(c[i]) && !nl(c[i])) ? i + 1 : i;
    if (j < n && L(c[j])) {
      while (j < n && L(c[j])) ++j;
      return j - i;
    }
  }
  if (N(c[i])) {  // \p{N}{1,max}
    size_t j = i;
    while (j < n && j - i < max_digits && N(c[j])) ++j;
    return j - i;
  }
  {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t j = c[i] == ' ' ? i + 1 : i;
    if (j < n && other(c[j])) {
      while (j < n && other(c[j])) ++j;
      while (j < n && nl(c[j])) ++j;
      return j - i;
    }
  }
  if (S(c[i])) {
    size_t r = i;
    while (r < n && S(c[r])) ++r;
    for (size_t k = r; k > i; --k)  // \s*[\r\n]+ : up to the last newline of the run
      if (nl(c[k - 1])) return k - i;
    return trailing_space(c, n, i);
  }
  return 0;
}

// Splits each piece's text at the pattern's matches (Isolated: matches and gaps become pieces;
// Removed: matches are dropped).
void split_regex(Pattern p, bool removed, std::vector<Piece>* pieces) {
  std::vector<Piece> out;
  std::vector<uint32_t> cps;
  for (auto& piece : *pieces) {
    uni::to_codepoints(piece.text, &cps);
    const size_t n = cps.size();
    size_t gap = 0, i = 0;
    bool first = piece.first;
    auto emit = [&](size_t a, size_t b) {
      if (b > a) out.push_back({uni::to_utf8(cps.data() + a, b - a), first && a == 0});
    };
    while (i < n) {
      size_t len = match_at(p, cps.data(), n, i);
      if (len == 0) { ++i; continue; }
      emit(gap, i);
      if (!removed) emit(i, i + len);
      i += len;
      gap = i;
    }
    emit(gap, n);
  }
  pieces->swap(out);
}

template <typename Pred>
void split_chars(std::vector<Piece>* pieces, Pred is_delim, bool isolate_each) {
  // isolate_each: every delimiter char is its own piece (Digits individual); else runs of delimiters
  // are one piece (Digits contiguous).
  std::vector<Piece> out;
  for (auto& piece : *pieces) {
    const std::string& s = piece.text;
    size_t start = 0, i = 0;
    int prev = -1;  // class of the current run: 1 delimiter, 0 other
    while (i < s.size()) {
      size_t len;
      uint32_t cp = uni::decode_one(s, i, &len);
      int cls = is_delim(cp) ? 1 : 0;
      if (prev >= 0 && (cls != prev || (cls == 1 && isolate_each))) {
        out.push_back({s.substr(start, i - start), piece.first && start == 0});
        start = i;
      }
      prev = cls;
      i += len;
    }
    if (i > start) out.push_back({s.substr(start, i - start), piece.first && start == 0});
  }
  pieces->swap(out);
}

void replace_all(std::string* s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    size_t k = s->find(from, i);
    if (k == std::string::npos) break;
    out.append(*s, i, k - i);
    out += to;
    i = k + from.size();
  }
  out.append(*s, i, std::string::npos);
  s->swap(out);
}
}  // namespace

bool pattern_from_regex(const std::string& regex, Pattern* out) {
  if (regex == kGpt2) *out = Pattern::Gpt2;
  else if (regex == kLlama3) *out = Pattern::Llama3;
  else if (regex == kQwen2) *out = Pattern::Qwen2;
  else return false;
  return true;
}

size_t match_at(Pattern p, const uint32_t* c, size_t n, size_t i) {
  switch (p) {
    case Pattern::Gpt2: return match_gpt2(c, n, i);
    case Pattern::Llama3: return match_llama(c, n, i, 3);
    case Pattern::Qwen2: return match_llama(c, n, i, 1);
  }
  return 0;
}

void PreTokenizer::apply(std::vector<Piece>* pieces) const {
  switch (kind) {
    case Kind::Split:
      split_regex(pattern, removed, pieces);
      return;
    case Kind::Digits:
      split_chars(pieces, uni::is_number, individual_digits);
      return;
    case Kind::ByteLevel: {
      if (add_prefix_space)
        for (auto& p : *pieces)
          if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
      if (use_regex) split_regex(Pattern::Gpt2, false, pieces);
      for (auto& p : *pieces) {  // bytes -> GPT-2's printable code points
        std::string mapped;
        mapped.reserve(p.text.size() * 2);
        for (unsigned char b : p.text) uni::append_utf8(mapped, uni::byte_to_unicode(b));
        p.text.swap(mapped);
      }
      return;
    }
    case Kind::Metaspace: {
      std::vector<Piece> out;
      for (auto& p : *pieces) {
        replace_all(&p.text, " ", replacement);
        const bool starts = p.text.compare(0, replacement.size(), replacement) == 0;
        if (!starts && (prepend == Prepend::Always || (prepend == Prepend::First && p.first)))
          p.text.insert(0, replacement);
        if (!split) { out.push_back(p); continue; }
        // MergedWithNext: each replacement char starts a new piece
        size_t start = 0;
        for (size_t k = p.text.find(replacement, 1); k != std::string::npos; k = p.text.find(replacement, k + 1)) {
          out.push_back({p.text.substr(start, k - start), p.first && start == 0});
          start = k;
        }
        if (start < p.text.size()) out.push_back({p.text.substr(start), p.first && start == 0});
      }
      pieces->swap(out);
      return;
    }
  }
}

}  // namespace edgeslm::tok
