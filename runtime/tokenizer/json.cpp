// json.cpp — recursive-descent JSON parser (see json.h). Depth-limited so hostile files cannot
// overflow the stack; numbers via strtod on a bounded copy.
#include "json.h"
#include "unicode.h"

#include <cstdlib>
#include <cstring>

namespace edgeslm::json {

const Value* Value::get(std::string_view key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto& kv : obj)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::string Value::get_string(std::string_view key, const std::string& dflt) const {
  const Value* v = get(key);
  return v != nullptr && v->is_string() ? v->str : dflt;
}

bool Value::get_bool(std::string_view key, bool dflt) const {
  const Value* v = get(key);
  return v != nullptr && v->is_bool() ? v->b : dflt;
}

double Value::get_number(std::string_view key, double dflt) const {
  const Value* v = get(key);
  return v != nullptr && v->is_number() ? v->num : dflt;
}

namespace {

constexpr int kMaxDepth = 256;

struct Parser {
  std::string_view t;
  size_t i = 0;
  std::string err;

  bool fail(const char* what) {
    if (err.empty()) {
      size_t line = 1, col = 1;
      for (size_t k = 0; k < i && k < t.size(); ++k) {
        if (t[k] == '\n') { ++line; col = 1; } else { ++col; }
      }
      err = "line " + std::to_string(line) + " column " + std::to_string(col) + ": " + what;
    }
    return false;
  }
  void ws() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  }
  bool lit(const char* word) {
    size_t n = std::strlen(word);
    if (t.substr(i, n) != word) return fail("invalid literal");
    i += n;
    return true;
  }
  bool hex4(uint32_t* out) {
    if (i + 4 > t.size()) return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = t[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
      else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
      else return fail("bad hex digit in \\u escape");
    }
    *out = v;
    return true;
  }
  bool string(std::string* out) {
    ++i;  // opening quote
    out->clear();
    while (true) {
      size_t start = i;  // copy unescaped runs in one go
      while (i < t.size() && t[i] != '"' && t[i] != '\\' && (unsigned char)t[i] >= 0x20) ++i;
      out->append(t.data() + start, i - start);
      if (i >= t.size()) return fail("unterminated string");
      char c = t[i];
      if (c == '"') { ++i; return true; }
      if ((unsigned char)c < 0x20) return fail("control character in string");
      ++i;  // backslash
      if (i >= t.size()) return fail("unterminated escape");
      char e = t[i++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: expect \uDC00..DFFF
            uint32_t lo = 0;
            if (i + 1 < t.size() && t[i] == '\\' && t[i + 1] == 'u') {
              size_t save = i;
              i += 2;
              if (!hex4(&lo)) return false;
              if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              else { i = save; cp = 0xFFFD; }
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            cp = 0xFFFD;
          }
          uni::append_utf8(*out, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }
  bool number(Value* v) {
    size_t start = i;
    if (t[i] == '-') ++i;
    while (i < t.size() && ((t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == 'e' || t[i] == 'E' ||
                            t[i] == '+' || t[i] == '-'))
      ++i;
    std::string s(t.substr(start, i - start));
    char* end = nullptr;
    v->num = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) return fail("invalid number");
    v->kind = Value::Kind::Number;
    return true;
  }
  bool value(Value* v, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    ws();
    if (i >= t.size()) return fail("unexpected end of input");
    char c = t[i];
    if (c == '{') {
      v->kind = Value::Kind::Object;
      ++i;
      ws();
      if (i < t.size() && t[i] == '}') { ++i; return true; }
      while (true) {
        ws();
        if (i >= t.size() || t[i] != '"') return fail("expected a member name");
        v->obj.emplace_back();
        if (!string(&v->obj.back().first)) return false;
        ws();
        if (i >= t.size() || t[i] != ':') return fail("expected ':'");
        ++i;
        if (!value(&v->obj.back().second, depth + 1)) return false;
        ws();
        if (i < t.size() && t[i] == ',') { ++i; continue; }
        if (i < t.size() && t[i] == '}') { ++i; return true; }
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v->kind = Value::Kind::Array;
      ++i;
      ws();
      if (i < t.size() && t[i] == ']') { ++i; return true; }
      while (true) {
        v->arr.emplace_back();
        if (!value(&v->arr.back(), depth + 1)) return false;
        ws();
        if (i < t.size() && t[i] == ',') { ++i; continue; }
        if (i < t.size() && t[i] == ']') { ++i; return true; }
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') { v->kind = Value::Kind::String; return string(&v->str); }
    if (c == 't') { v->kind = Value::Kind::Bool; v->b = true; return lit("true"); }
    if (c == 'f') { v->kind = Value::Kind::Bool; v->b = false; return lit("false"); }
    if (c == 'n') { v->kind = Value::Kind::Null; return lit("null"); }
    if (c == '-' || (c >= '0' && c <= '9')) return number(v);
    return fail("unexpected character");
  }
};

}  // namespace

bool parse(std::string_view text, Value* out, std::string* err) {
  Parser p{text, 0, std::string()};
  *out = Value();
  if (!p.value(out, 0)) { *err = p.err; return false; }
  p.ws();
  if (p.i != text.size()) { p.fail("trailing characters after the JSON value"); *err = p.err; return false; }
  return true;
}

}  // namespace edgeslm::json
