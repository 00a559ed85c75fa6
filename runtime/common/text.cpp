// text.cpp — see text.h.
#include "text.h"

#include <fstream>
#include <sstream>

#include "json.h"
#include "tokenizer_internal.h"

namespace edgeslm {

namespace {
std::vector<int64_t> id_list(const json::Value* v) {
  std::vector<int64_t> out;
  if (v != nullptr && v->is_array())
    for (const auto& x : v->arr)
      if (x.is_number()) out.push_back((int64_t)x.num);
  return out;
}

PromptRecipe read_recipe(const json::Value* v) {
  PromptRecipe r;
  if (v == nullptr || !v->is_object()) return r;
  r.add_special = v->get_bool("add_special", true);
  r.prepend = id_list(v->get("prepend"));
  r.append = id_list(v->get("append"));
  const json::Value* sb = v->get("strip_bos");
  r.strip_bos = sb != nullptr && sb->is_number() ? (int64_t)sb->num : -1;
  return r;
}
}  // namespace

TextConfig load_text_config(const std::string& dir) {
  TextConfig t;
  const std::string tok_path = dir + "/tokenizer.json";
  if (std::ifstream(tok_path).good()) {
    std::string err;
    t.tokenizer = tokenizer_open(tok_path, &err);
    if (t.tokenizer == nullptr) t.error = err;
  } else {
    t.error = dir + ": the bundle has no tokenizer.json (text generation needs it; token ids still work)";
  }
  std::ifstream in(dir + "/manifest.json", std::ios::binary);
  if (!in) return t;
  std::stringstream buf;
  buf << in.rdbuf();
  json::Value root;
  std::string err;
  if (!json::parse(buf.str(), &root, &err)) return t;
  const json::Value* tok = root.get("tokenizer");
  if (tok == nullptr || !tok->is_object()) return t;
  t.has_recipe = true;
  t.plain = read_recipe(tok->get("plain"));
  t.chat = read_recipe(tok->get("chat"));
  if (const json::Value* cp = tok->get("chat_prompt"); cp != nullptr && cp->is_object()) {
    t.has_chat = true;
    t.chat_prefix = cp->get_string("prefix");
    t.chat_suffix = cp->get_string("suffix");
  }
  t.eos_ids = id_list(tok->get("eos_ids"));
  return t;
}

bool encode_prompt(const TextConfig& t, const std::string& prompt, bool chat, std::vector<int64_t>* ids,
                   std::string* err) {
  if (chat && !t.has_chat) {
    *err = t.has_recipe ? "the model has no chat template: call with chat = 0"
                        : "manifest.json has no chat prompt (exported before edgeslm_generate_text existed): "
                          "re-export the bundle";
    return false;
  }
  const PromptRecipe& r = chat ? t.chat : t.plain;
  const std::string text = chat ? t.chat_prefix + prompt + t.chat_suffix : prompt;
  std::vector<int64_t> body;
  if (!tokenizer_encode(t.tokenizer, text, r.add_special, &body)) {
    *err = std::string("tokenizer: ") + edgeslm_tokenizer_last_error(t.tokenizer);
    return false;
  }
  if (r.add_special && r.strip_bos >= 0 && !body.empty() && body[0] == r.strip_bos) {
    // drop the post-processor's BOS only (not a BOS the text itself spells), like Tokenizer.encode
    std::vector<int64_t> raw;
    if (!tokenizer_encode(t.tokenizer, text, false, &raw)) return false;
    if (body.size() > raw.size() && std::equal(raw.begin(), raw.end(), body.begin() + 1)) body.erase(body.begin());
  }
  ids->assign(r.prepend.begin(), r.prepend.end());
  ids->insert(ids->end(), body.begin(), body.end());
  ids->insert(ids->end(), r.append.begin(), r.append.end());
  return true;
}

int TextStream::on_token(int64_t token, void* self) {
  auto* s = static_cast<TextStream*>(self);
  if (s->tokens_ != nullptr && s->tokens_(token, s->user_) != 0) return 1;
  for (int64_t e : s->skip)
    if (e == token) return 0;
  s->ids_.push_back(token);
  return s->emit(false);
}

int TextStream::emit(bool final) {
  std::string text = tokenizer_decode(text_->tokenizer, ids_.data(), ids_.size(), false);
  if (!final) {
    static const std::string kFffd = "\xEF\xBF\xBD";
    while (text.size() >= 3 && text.compare(text.size() - 3, 3, kFffd) == 0) text.resize(text.size() - 3);
  }
  if (text.size() <= emitted_.size() || text.compare(0, emitted_.size(), emitted_) != 0) return 0;
  std::string piece = text.substr(emitted_.size());
  emitted_ = std::move(text);
  return cb_ != nullptr ? cb_(piece.data(), piece.size(), user_) : 0;
}

void TextStream::flush() {
  if (text_ != nullptr) emit(true);
}

}  // namespace edgeslm
