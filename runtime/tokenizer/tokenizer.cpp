// tokenizer.cpp — encode / decode of a loaded tokenizer.json (pipeline in tokenizer.h).
#include "tokenizer.h"

#include <algorithm>

#include "unicode.h"

namespace edgeslm::tok {

namespace {
void replace_all(std::string* s, const std::string& from, const std::string& to) {
  if (from.empty() || s->find(from) == std::string::npos) return;
  std::string out;
  size_t i = 0;
  for (size_t k; (k = s->find(from, i)) != std::string::npos; i = k + from.size()) {
    out.append(*s, i, k - i);
    out += to;
  }
  out.append(*s, i, std::string::npos);
  s->swap(out);
}

bool prev_is_word(const std::string& s, size_t end) {  // last char of s[0..end) alphanumeric
  if (end == 0) return false;
  size_t k = end - 1;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
  size_t len;
  return uni::is_alnum(uni::decode_one(s, k, &len));
}

bool next_is_word(const std::string& s, size_t start) {
  if (start >= s.size()) return false;
  size_t len;
  return uni::is_alnum(uni::decode_one(s, start, &len));
}
}  // namespace

void Tokenizer::finish_load() {
  normalized_added_.clear();  // normalized added tokens are matched in (and decode to) normalized text
  for (size_t k = 0; k < added.size(); ++k) {
    std::string c = added[k].content;
    if (added[k].normalized) normalize(&c, false);
    normalized_added_.push_back(c);
    added_by_id_.emplace(added[k].id, k);  // first entry wins for a repeated id
    if (added[k].special) special_contents_.insert(added[k].content);
  }
  for (int pass = 0; pass < 2; ++pass) {  // candidates per first byte, longest first (leftmost-longest)
    for (auto& bucket : by_first_byte_[pass]) bucket.clear();
    for (size_t k = 0; k < added.size(); ++k) {
      const std::string& c = pass ? normalized_added_[k] : added[k].content;
      if (added[k].normalized == (pass == 1) && !c.empty()) by_first_byte_[pass][(unsigned char)c[0]].push_back(k);
    }
    for (auto& bucket : by_first_byte_[pass])
      std::stable_sort(bucket.begin(), bucket.end(), [&](size_t x, size_t y) {
        const std::string& cx = pass ? normalized_added_[x] : added[x].content;
        const std::string& cy = pass ? normalized_added_[y] : added[y].content;
        return cx.size() > cy.size();
      });
  }
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : added)
    if (a.content == token) return a.id;
  auto it = bpe.vocab.find(std::string(token));
  return it == bpe.vocab.end() ? -1 : it->second;
}

void Tokenizer::normalize(std::string* s, bool /*first*/) const {
  for (const auto& n : normalizers) {
    switch (n.kind) {
      case Normalizer::Kind::Prepend:
        if (!s->empty()) s->insert(0, n.a);
        break;
      case Normalizer::Kind::Replace:
        replace_all(s, n.a, n.b);
        break;
      case Normalizer::Kind::Nfc: {
        std::vector<uint32_t> cps;
        uni::to_codepoints(*s, &cps);
        uni::nfc(&cps);
        *s = uni::to_utf8(cps.data(), cps.size());
        break;
      }
    }
  }
}

// Splits `text` at added tokens (those with normalized == normalized_pass), leftmost-longest like the
// aho-corasick matcher of tokenizers' AddedVocabulary. out: (segment, id or -1); firsts: segment starts
// at offset 0 of the original input.
void Tokenizer::split_added(const std::string& text, bool normalized_pass, bool first,
                            std::vector<std::pair<std::string, int32_t>>* out, std::vector<bool>* firsts) const {
  size_t start_offset = 0, i = 0;
  auto push = [&](size_t a, size_t b, int32_t id) {
    out->emplace_back(text.substr(a, b - a), id);
    firsts->push_back(first && a == 0);
  };
  while (i < text.size()) {
    const AddedToken* best = nullptr;
    const std::string* best_content = nullptr;
    for (size_t k : by_first_byte_[normalized_pass ? 1 : 0][(unsigned char)text[i]]) {  // longest first
      const std::string& c = normalized_pass ? normalized_added_[k] : added[k].content;
      if (text.compare(i, c.size(), c) == 0) { best = &added[k]; best_content = &c; break; }
    }
    if (best == nullptr) { ++i; continue; }
    size_t start = i, stop = i + best_content->size();
    i = stop;  // a rejected match still consumes its text (non-overlapping find_iter)
    if (best->single_word && (prev_is_word(text, start) || next_is_word(text, stop))) continue;
    if (best->lstrip) {
      size_t k = start;
      while (k > start_offset) {
        size_t b = k - 1;
        while (b > 0 && ((unsigned char)text[b] & 0xC0) == 0x80) --b;
        size_t len;
        if (!uni::is_whitespace(uni::decode_one(text, b, &len))) break;
        k = b;
      }
      start = k;
    }
    if (best->rstrip) {
      while (stop < text.size()) {
        size_t len;
        if (!uni::is_whitespace(uni::decode_one(text, stop, &len))) break;
        stop += len;
      }
      // the search goes on from the match's own end (aho-corasick find_iter), not past the stripped
      // spaces: a following lstrip token can start inside them (its start is clipped to start_offset)
    }
    if (start_offset < start) push(start_offset, start, -1);
    push(std::max(start, start_offset), std::max(stop, start_offset), best->id);
    start_offset = stop;
  }
  if (start_offset < text.size()) push(start_offset, text.size(), -1);
}

bool Tokenizer::encode(std::string_view text_in, bool add_special, std::vector<int32_t>* ids, std::string* err) {
  ids->clear();
  if (add_special) ids->insert(ids->end(), post_prefix.begin(), post_prefix.end());
  const std::string text = uni::lossy(text_in);  // invalid UTF-8 -> U+FFFD, as Python's errors="replace"
  std::vector<std::pair<std::string, int32_t>> raw, segs;
  std::vector<bool> raw_first, seg_first;
  split_added(text, false, true, &raw, &raw_first);
  std::vector<Piece> pieces;
  for (size_t r = 0; r < raw.size(); ++r) {
    if (raw[r].second >= 0) { ids->push_back(raw[r].second); continue; }
    std::string s = raw[r].first;
    normalize(&s, raw_first[r]);
    segs.clear();
    seg_first.clear();
    split_added(s, true, raw_first[r], &segs, &seg_first);
    for (size_t k = 0; k < segs.size(); ++k) {
      if (segs[k].second >= 0) { ids->push_back(segs[k].second); continue; }
      pieces.clear();
      pieces.push_back({segs[k].first, seg_first[k]});
      for (const auto& p : pretokenizers) p.apply(&pieces);
      for (const auto& p : pieces)
        if (!bpe.encode_word(p.text, ids, err)) return false;
    }
  }
  if (add_special) ids->insert(ids->end(), post_suffix.begin(), post_suffix.end());
  return true;
}

const std::string* Tokenizer::token_of(int64_t id, bool* special) const {
  const std::string* tok = nullptr;
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) {
    // a normalized added token reads back as its normalized form (tokenizers' id_to_token does too,
    // e.g. "▁<s>" under Llama 2's Prepend normalizer)
    const size_t k = it->second;
    tok = added[k].normalized ? &normalized_added_[k] : &added[k].content;
  } else if (id >= 0 && (size_t)id < bpe.id_to_token.size() && !bpe.id_to_token[(size_t)id].empty()) {
    tok = &bpe.id_to_token[(size_t)id];
  }
  // "special" is decided on the token string, as tokenizers' is_special_token: so "▁<s>" above is not
  // skipped by skip_special, and a vocab token spelled like a special added token is
  *special = tok != nullptr && special_contents_.count(*tok) > 0;
  return tok;
}

namespace {
void decode_byte_level(std::vector<std::string>* toks) {
  std::string bytes;
  std::vector<uint32_t> cps;
  for (const auto& t : *toks) {
    uni::to_codepoints(t, &cps);
    std::string mapped;
    bool ok = true;
    for (uint32_t c : cps) {
      int b = uni::unicode_to_byte(c);
      if (b < 0) { ok = false; break; }
      mapped += (char)b;
    }
    bytes += ok ? mapped : t;
  }
  toks->assign(1, uni::lossy(bytes));
}

void decode_byte_fallback(std::vector<std::string>* toks) {
  std::vector<std::string> out;
  std::string pending;  // consecutive <0xXX> bytes
  auto flush = [&] {
    if (pending.empty()) return;
    if (uni::lossy(pending) == pending) out.push_back(pending);
    else
      for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
    pending.clear();
  };
  for (auto& t : *toks) {
    auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4])) {
      pending += (char)std::stoi(t.substr(3, 2), nullptr, 16);
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  toks->swap(out);
}
}  // namespace

std::string Tokenizer::decode(const int64_t* ids, size_t n, bool skip_special) const {
  std::vector<std::string> toks;
  toks.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    bool special;
    const std::string* t = token_of(ids[i], &special);
    if (t == nullptr || (skip_special && special)) continue;
    toks.push_back(*t);
  }
  if (!has_decoder) {
    std::string out;
    for (size_t i = 0; i < toks.size(); ++i) out += (i ? " " : "") + toks[i];
    return out;
  }
  for (const auto& d : decoders) {
    switch (d.kind) {
      case Decoder::Kind::ByteLevel: decode_byte_level(&toks); break;
      case Decoder::Kind::ByteFallback: decode_byte_fallback(&toks); break;
      case Decoder::Kind::Replace:
        for (auto& t : toks) replace_all(&t, d.a, d.b);
        break;
      case Decoder::Kind::Fuse: {
        std::string all;
        for (auto& t : toks) all += t;
        toks.assign(1, all);
        break;
      }
      case Decoder::Kind::Metaspace:
        for (size_t i = 0; i < toks.size(); ++i) replace_all(&toks[i], d.a, (i == 0 && d.prepend) ? "" : " ");
        break;
      case Decoder::Kind::Strip:
        for (auto& t : toks) {
          std::vector<uint32_t> cps;
          uni::to_codepoints(t, &cps);
          size_t len;
          const uint32_t c = d.a.empty() ? 0 : uni::decode_one(d.a, 0, &len);
          size_t a = 0, b = cps.size();
          while (a < (size_t)d.start && a < b && cps[a] == c) ++a;
          size_t cut = 0;
          while (cut < (size_t)d.stop && b > a && cps[b - 1] == c) { --b; ++cut; }
          t = uni::to_utf8(cps.data() + a, b - a);
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : toks) out += t;
  return out;
}

}  // namespace edgeslm::tok
