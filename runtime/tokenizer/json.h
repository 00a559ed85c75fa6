// json.h — a small JSON reader for tokenizer.json (RFC 8259; no third-party code, builds with the NDK).
// Values are a tagged tree; objects keep their member order (tokenizer.json order matters for merges
// and added tokens). Strings are UTF-8 (\uXXXX escapes, surrogate pairs decoded; a lone surrogate
// becomes U+FFFD like serde_json's lossy readers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeslm::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool b = false;
  double num = 0.0;
  std::string str;
  std::vector<Value> arr;
  std::vector<std::pair<std::string, Value>> obj;  // member order as in the file

  bool is_null() const { return kind == Kind::Null; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_bool() const { return kind == Kind::Bool; }
  // Member lookup (linear; objects here are small except vocab, which is iterated, not looked up).
  // Returns nullptr when absent or when this is not an object.
  const Value* get(std::string_view key) const;
  // Convenience readers with defaults for absent / null members.
  std::string get_string(std::string_view key, const std::string& dflt = "") const;
  bool get_bool(std::string_view key, bool dflt = false) const;
  double get_number(std::string_view key, double dflt = 0.0) const;
};

// Parses `text`; on error returns false and sets *err to "line L column C: what".
bool parse(std::string_view text, Value* out, std::string* err);

}  // namespace edgeslm::json
