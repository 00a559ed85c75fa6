// tokenizer_load.cpp — tokenizer.json -> Tokenizer (see tokenizer.h): reads the file, parses JSON, then
// each section (model, added_tokens, normalizer, pre_tokenizer, post_processor, decoder), refusing
// what the C++ side does not implement with a reason naming the section.
#include <fstream>
#include <sstream>

#include "json.h"
#include "tokenizer.h"

namespace edgeslm::tok {

namespace {
using json::Value;

struct LoadError {
  std::string what;
};
[[noreturn]] void refuse(const std::string& what) { throw LoadError{what}; }

std::string type_of(const Value& v) { return v.get_string("type"); }

void load_model(const Value& m, Bpe* bpe) {
  const std::string type = m.get_string("type", "BPE");
  if (type != "BPE") refuse("model type " + type + " is not supported (only BPE)");
  if (m.get("dropout") && m.get("dropout")->is_number() && m.get("dropout")->num > 0)
    refuse("BPE dropout is not supported");
  if (!m.get_string("continuing_subword_prefix").empty() || !m.get_string("end_of_word_suffix").empty())
    refuse("BPE continuing_subword_prefix / end_of_word_suffix are not supported");
  const Value* vocab = m.get("vocab");
  if (vocab == nullptr || !vocab->is_object()) refuse("model.vocab is missing");
  int32_t max_id = -1;
  bpe->vocab.reserve(vocab->obj.size() * 2);
  for (const auto& kv : vocab->obj) {
    if (!kv.second.is_number()) refuse("model.vocab has a non-numeric id");
    const int32_t id = (int32_t)kv.second.num;
    bpe->vocab[kv.first] = id;
    if (id > max_id) max_id = id;
  }
  bpe->id_to_token.assign((size_t)max_id + 1, std::string());
  for (const auto& kv : bpe->vocab) bpe->id_to_token[(size_t)kv.second] = kv.first;
  const Value* merges = m.get("merges");
  int32_t rank = 0;
  if (merges != nullptr && merges->is_array()) {
    bpe->merges.reserve(merges->arr.size() * 2);
    for (const auto& mv : merges->arr) {
      std::string a, b;
      if (mv.is_string()) {  // "a b"
        size_t sp = mv.str.find(' ');
        if (sp == std::string::npos || mv.str.find(' ', sp + 1) != std::string::npos)
          refuse("merge \"" + mv.str + "\" is not two tokens");
        a = mv.str.substr(0, sp);
        b = mv.str.substr(sp + 1);
      } else if (mv.is_array() && mv.arr.size() == 2 && mv.arr[0].is_string() && mv.arr[1].is_string()) {
        a = mv.arr[0].str;
        b = mv.arr[1].str;
      } else {
        refuse("a merge is neither \"a b\" nor [a, b]");
      }
      auto ia = bpe->vocab.find(a), ib = bpe->vocab.find(b), ic = bpe->vocab.find(a + b);
      if (ia == bpe->vocab.end() || ib == bpe->vocab.end() || ic == bpe->vocab.end())
        refuse("merge \"" + a + " " + b + "\" uses a token missing from the vocab");
      const uint64_t k = ((uint64_t)(uint32_t)ia->second << 32) | (uint32_t)ib->second;
      bpe->merges.emplace(k, Bpe::Merge{rank++, ic->second});  // first occurrence wins
    }
  }
  bpe->byte_fallback = m.get_bool("byte_fallback");
  bpe->fuse_unk = m.get_bool("fuse_unk");
  bpe->ignore_merges = m.get_bool("ignore_merges");
  const Value* unk = m.get("unk_token");
  if (unk != nullptr && unk->is_string()) {
    auto it = bpe->vocab.find(unk->str);
    if (it == bpe->vocab.end()) refuse("unk_token \"" + unk->str + "\" is not in the vocab");
    bpe->unk_id = it->second;
  }
  bpe->finish_load();
}

std::string pattern_string(const Value& p, const char* where) {
  const Value* pat = p.get("pattern");
  if (pat != nullptr && pat->get("String")) return pat->get("String")->str;
  refuse(std::string(where) + " with a regex pattern is not supported");
}

void load_normalizer(const Value& n, std::vector<Normalizer>* out) {
  if (n.is_null()) return;
  const std::string type = type_of(n);
  if (type == "Sequence") {
    const Value* list = n.get("normalizers");
    if (list == nullptr || !list->is_array()) refuse("normalizer Sequence without a list");
    for (const auto& sub : list->arr) load_normalizer(sub, out);
  } else if (type == "Prepend") {
    out->push_back({Normalizer::Kind::Prepend, n.get_string("prepend"), ""});
  } else if (type == "Replace") {
    out->push_back({Normalizer::Kind::Replace, pattern_string(n, "normalizer Replace"), n.get_string("content")});
  } else if (type == "NFC") {
    out->push_back({Normalizer::Kind::Nfc, "", ""});
  } else {
    refuse("normalizer " + type + " is not supported (Prepend, Replace, NFC, Sequence are)");
  }
}

PreTokenizer::Prepend prepend_scheme(const Value& p) {
  std::string s = p.get_string("prepend_scheme", "");
  if (s.empty()) s = p.get_bool("add_prefix_space", true) ? "always" : "never";
  if (s == "always") return PreTokenizer::Prepend::Always;
  if (s == "first") return PreTokenizer::Prepend::First;
  if (s == "never") return PreTokenizer::Prepend::Never;
  refuse("Metaspace prepend_scheme " + s + " is not supported");
}

void load_pretokenizer(const Value& p, std::vector<PreTokenizer>* out) {
  if (p.is_null()) return;
  const std::string type = type_of(p);
  PreTokenizer t{};
  if (type == "Sequence") {
    const Value* list = p.get("pretokenizers");
    if (list == nullptr || !list->is_array()) refuse("pre_tokenizer Sequence without a list");
    for (const auto& sub : list->arr) load_pretokenizer(sub, out);
    return;
  } else if (type == "ByteLevel") {
    t.kind = PreTokenizer::Kind::ByteLevel;
    t.add_prefix_space = p.get_bool("add_prefix_space", true);
    t.use_regex = p.get_bool("use_regex", true);
  } else if (type == "Split") {
    t.kind = PreTokenizer::Kind::Split;
    const Value* pat = p.get("pattern");
    const Value* re = pat != nullptr ? pat->get("Regex") : nullptr;
    if (re == nullptr || !re->is_string()) refuse("pre_tokenizer Split without a Regex pattern is not supported");
    if (!pattern_from_regex(re->str, &t.pattern))
      refuse("pre_tokenizer Split regex " + re->str.substr(0, 60) + " is not one of the known GPT-2 / Llama 3 / Qwen2 patterns");
    const std::string behavior = p.get_string("behavior", "Isolated");
    if (behavior != "Isolated" && behavior != "Removed") refuse("pre_tokenizer Split behavior " + behavior + " is not supported");
    t.removed = behavior == "Removed";
    if (p.get_bool("invert")) refuse("pre_tokenizer Split invert=true is not supported");
  } else if (type == "Digits") {
    t.kind = PreTokenizer::Kind::Digits;
    t.individual_digits = p.get_bool("individual_digits");
  } else if (type == "Metaspace") {
    t.kind = PreTokenizer::Kind::Metaspace;
    t.replacement = p.get_string("replacement", "\xE2\x96\x81");
    t.prepend = prepend_scheme(p);
    t.split = p.get_bool("split", true);
  } else {
    refuse("pre_tokenizer " + type + " is not supported (ByteLevel, Split, Digits, Metaspace, Sequence are)");
  }
  out->push_back(t);
}

void load_decoder(const Value& d, std::vector<Decoder>* out) {
  const std::string type = type_of(d);
  Decoder x{};
  if (type == "Sequence") {
    const Value* list = d.get("decoders");
    if (list == nullptr || !list->is_array()) refuse("decoder Sequence without a list");
    for (const auto& sub : list->arr) load_decoder(sub, out);
    return;
  } else if (type == "ByteLevel") {
    x.kind = Decoder::Kind::ByteLevel;
  } else if (type == "Metaspace") {
    x.kind = Decoder::Kind::Metaspace;
    x.a = d.get_string("replacement", "\xE2\x96\x81");
    x.prepend = prepend_scheme(d) != PreTokenizer::Prepend::Never;
  } else if (type == "Replace") {
    x.kind = Decoder::Kind::Replace;
    x.a = pattern_string(d, "decoder Replace");
    x.b = d.get_string("content");
  } else if (type == "ByteFallback") {
    x.kind = Decoder::Kind::ByteFallback;
  } else if (type == "Fuse") {
    x.kind = Decoder::Kind::Fuse;
  } else if (type == "Strip") {
    x.kind = Decoder::Kind::Strip;
    x.a = d.get_string("content", " ");
    x.start = (int)d.get_number("start");
    x.stop = (int)d.get_number("stop");
  } else {
    refuse("decoder " + type + " is not supported");
  }
  out->push_back(x);
}

int32_t special_id(const Value& pp, const Value& pair, const char* what) {
  if (!pair.is_array() || pair.arr.size() != 2 || !pair.arr[1].is_number())
    refuse(std::string("post_processor ") + what + " is malformed");
  return (int32_t)pair.arr[1].num;
}

void load_post(const Value& p, Tokenizer* t) {
  if (p.is_null()) return;
  const std::string type = type_of(p);
  if (type == "Sequence") {
    const Value* list = p.get("processors");
    if (list == nullptr || !list->is_array()) refuse("post_processor Sequence without a list");
    for (const auto& sub : list->arr) load_post(sub, t);
  } else if (type == "ByteLevel") {
    // offsets only: ids unchanged
  } else if (type == "TemplateProcessing") {
    const Value* single = p.get("single");
    const Value* specials = p.get("special_tokens");
    if (single == nullptr || !single->is_array()) refuse("post_processor TemplateProcessing without 'single'");
    bool seen_a = false;
    for (const auto& piece : single->arr) {
      if (piece.get("Sequence")) {
        if (piece.get("Sequence")->get_string("id") != "A") refuse("TemplateProcessing single uses $B");
        seen_a = true;
      } else if (const Value* sp = piece.get("SpecialToken")) {
        const Value* entry = specials != nullptr ? specials->get(sp->get_string("id")) : nullptr;
        const Value* ids = entry != nullptr ? entry->get("ids") : nullptr;
        if (ids == nullptr || !ids->is_array()) refuse("TemplateProcessing special token " + sp->get_string("id") + " has no ids");
        for (const auto& id : ids->arr) (seen_a ? t->post_suffix : t->post_prefix).push_back((int32_t)id.num);
      } else {
        refuse("TemplateProcessing piece is neither Sequence nor SpecialToken");
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    t->post_prefix.push_back(special_id(p, *p.get("cls"), "cls"));
    t->post_suffix.push_back(special_id(p, *p.get("sep"), "sep"));
  } else {
    refuse("post_processor " + type + " is not supported");
  }
}
}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = path + ": cannot read the file (export the bundle with its tokenizer.json)";
    return nullptr;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  Value root;
  std::string perr;
  if (!json::parse(text, &root, &perr)) {
    *err = path + ": not valid JSON (" + perr + ")";
    return nullptr;
  }
  auto t = std::make_unique<Tokenizer>();
  try {
    if (!root.is_object()) refuse("the top level is not an object");
    if (root.get("truncation") && !root.get("truncation")->is_null()) refuse("truncation is set (not supported)");
    if (root.get("padding") && !root.get("padding")->is_null()) refuse("padding is set (not supported)");
    const Value* model = root.get("model");
    if (model == nullptr || !model->is_object()) refuse("no model section");
    load_model(*model, &t->bpe);
    if (const Value* added = root.get("added_tokens"); added != nullptr && added->is_array()) {
      for (const auto& a : added->arr) {
        AddedToken tok{a.get_string("content"), (int32_t)a.get_number("id", -1), a.get_bool("special"),
                       a.get_bool("single_word"), a.get_bool("lstrip"), a.get_bool("rstrip"),
                       a.get_bool("normalized", true)};
        if (tok.id < 0 || tok.content.empty()) refuse("an added token has no id or content");
        t->added.push_back(tok);
      }
    }
    if (const Value* n = root.get("normalizer")) load_normalizer(*n, &t->normalizers);
    if (const Value* p = root.get("pre_tokenizer")) load_pretokenizer(*p, &t->pretokenizers);
    if (const Value* p = root.get("post_processor")) load_post(*p, t.get());
    if (const Value* d = root.get("decoder"); d != nullptr && !d->is_null()) {
      load_decoder(*d, &t->decoders);
      t->has_decoder = true;
    }
  } catch (const LoadError& e) {
    *err = path + ": " + e.what + " by the edgeslm C++ tokenizer";
    return nullptr;
  }
  t->finish_load();
  // vocab size as tokenizers' get_vocab_size(with_added_tokens=True): distinct token strings
  size_t extra = 0;
  for (size_t i = 0; i < t->added.size(); ++i) {
    bool dup = t->bpe.vocab.count(t->added[i].content) > 0;
    for (size_t j = 0; j < i && !dup; ++j) dup = t->added[j].content == t->added[i].content;
    if (!dup) ++extra;
  }
  t->vocab_size_ = (int64_t)(t->bpe.vocab.size() + extra);
  return t;
}

}  // namespace edgeslm::tok
