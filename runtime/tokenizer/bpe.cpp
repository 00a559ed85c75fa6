// bpe.cpp — see bpe.h. Merging uses a min-heap of candidate pairs over a doubly linked symbol list,
// like `tokenizers`' Word::merge_all: O(n log n) per word, so long whitespace runs stay cheap.
#include "bpe.h"

#include <cstdio>
#include <queue>

#include "unicode.h"

namespace edgeslm::tok {

void Bpe::finish_load() {
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab.find(name);
    byte_ids[b] = it == vocab.end() ? -1 : it->second;
  }
}

namespace {
struct Sym {
  int32_t id;
  int prev, next;  // -1: none
  bool alive;
};
struct Cand {
  int32_t rank;
  int pos;  // left symbol index
  int32_t new_id;
  bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};
inline uint64_t key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
}  // namespace

bool Bpe::encode_word(std::string_view word, std::vector<int32_t>* out, std::string* err) {
  if (word.empty()) return true;
  if (ignore_merges) {
    auto it = vocab.find(std::string(word));
    if (it != vocab.end()) { out->push_back(it->second); return true; }
  }
  std::string w(word);
  auto hit = cache_.find(w);
  if (hit != cache_.end()) {
    out->insert(out->end(), hit->second.begin(), hit->second.end());
    return true;
  }
  // 1. characters -> initial symbols
  std::vector<Sym> syms;
  syms.reserve(word.size());
  bool pending_unk = false;
  auto push = [&](int32_t id) { syms.push_back({id, (int)syms.size() - 1, -1, true}); };
  for (size_t i = 0; i < word.size();) {
    size_t n;
    uni::decode_one(word, i, &n);
    std::string ch(word.substr(i, n));
    auto it = vocab.find(ch);
    if (it != vocab.end()) {
      if (pending_unk) { push(unk_id); pending_unk = false; }
      push(it->second);
    } else {
      bool done = false;
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : ch) all = all && byte_ids[b] >= 0;
        if (all) {
          for (unsigned char b : ch) push(byte_ids[b]);
          done = true;
        }
      }
      if (!done) {
        if (unk_id < 0) { i += n; continue; }  // no unk token: `tokenizers` drops the character
        if (pending_unk && !fuse_unk) push(unk_id);
        pending_unk = true;
      }
    }
    i += n;
  }
  if (pending_unk) push(unk_id);
  for (size_t i = 0; i + 1 < syms.size(); ++i) syms[i].next = (int)i + 1;
  // 2. merges: lowest rank first, leftmost on ties
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i + 1 < syms.size(); ++i) {
    auto m = merges.find(key(syms[i].id, syms[i + 1].id));
    if (m != merges.end()) heap.push({m->second.rank, (int)i, m->second.new_id});
  }
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& left = syms[(size_t)c.pos];
    if (!left.alive || left.next < 0) continue;
    Sym& right = syms[(size_t)left.next];
    auto m = merges.find(key(left.id, right.id));
    if (m == merges.end() || m->second.rank != c.rank || m->second.new_id != c.new_id) continue;  // stale
    left.id = c.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) syms[(size_t)right.next].prev = c.pos;
    if (left.prev >= 0) {
      auto pm = merges.find(key(syms[(size_t)left.prev].id, left.id));
      if (pm != merges.end()) heap.push({pm->second.rank, left.prev, pm->second.new_id});
    }
    if (left.next >= 0) {
      auto nm = merges.find(key(left.id, syms[(size_t)left.next].id));
      if (nm != merges.end()) heap.push({nm->second.rank, c.pos, nm->second.new_id});
    }
  }
  std::vector<int32_t> ids;
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[(size_t)i].next) ids.push_back(syms[(size_t)i].id);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cache_.size() > 65536) cache_.clear();  // bounded: forget everything rather than track LRU
  cache_.emplace(std::move(w), std::move(ids));
  return true;
}

}  // namespace edgeslm::tok
