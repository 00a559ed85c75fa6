// text.h — text in / text out on top of the token C API: the bundle's tokenizer and prompt recipe, and
// the UTF-8-safe stream of generated text (used by edgeslm_generate_text in capi.cpp).
//
// manifest.json "tokenizer" (written at export by edgeslm.bundle.tokenizer_manifest):
//   {"plain": Recipe, "chat": Recipe, "chat_prompt": {"prefix": str, "suffix": str}, "eos_ids": [int]}
//   Recipe = {"add_special": bool, "prepend": [ids], "append": [ids], "strip_bos": id | null}
// so that encode_prompt(prompt) = prepend + encode(prefix + prompt + suffix, add_special) (minus a
// post-processor BOS when strip_bos) + append, which is exactly the ids `edgeslm run [--chat]` feeds
// the model (edgeslm.text.Tokenizer.encode with tokenizer_config's add_bos_token / add_eos_token).
// Without the field (bundles exported before it): plain = encode(prompt, add_special = true), chat refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgeslm.h"

namespace edgeslm {

struct PromptRecipe {
  bool add_special = true;
  std::vector<int64_t> prepend, append;
  int64_t strip_bos = -1;
};

struct TextConfig {
  edgeslm_tokenizer* tokenizer = nullptr;  // owned (closed by ~edgeslm_model)
  std::string error;                       // why tokenizer is NULL / why the recipe is missing
  bool has_recipe = false;                 // manifest.json had "tokenizer"
  bool has_chat = false;
  PromptRecipe plain, chat;
  std::string chat_prefix, chat_suffix;
  std::vector<int64_t> eos_ids;            // the tokenizer's eos ids (edgeslm run stops on them too)
};

// Opens <bundle_dir>/tokenizer.json (if present) and reads manifest.json's "tokenizer" field.
TextConfig load_text_config(const std::string& bundle_dir);
bool encode_prompt(const TextConfig& text, const std::string& prompt, bool chat, std::vector<int64_t>* ids,
                   std::string* err);

// Token ids in, complete UTF-8 text pieces out. Re-decodes all generated ids per token and emits the new
// suffix; a trailing U+FFFD (a character split across tokens) is held back until it completes.
class TextStream {
 public:
  TextStream() = default;
  TextStream(const TextConfig* text, edgeslm_text_callback cb, edgeslm_token_callback tokens, void* user)
      : text_(text), cb_(cb), tokens_(tokens), user_(user) {}
  std::vector<int64_t> prompt;
  std::vector<int64_t> skip;  // ids left out of the text (eos)
  static int on_token(int64_t token, void* self);  // edgeslm_token_callback
  void flush();                                     // emit what was held back (a final U+FFFD)

 private:
  int emit(bool final);
  const TextConfig* text_ = nullptr;
  edgeslm_text_callback cb_ = nullptr;
  edgeslm_token_callback tokens_ = nullptr;
  void* user_ = nullptr;
  std::vector<int64_t> ids_;
  std::string emitted_;
};

}  // namespace edgeslm
