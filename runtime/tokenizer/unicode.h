// unicode.h — what the tokenizer needs from Unicode: UTF-8 <-> code points (lossy like Rust's
// String::from_utf8_lossy / Python's errors="replace"), the character classes of the pre-tokenizer
// regexes (\p{L}, \p{N}, \s), GPT-2's byte <-> unicode map, and NFC.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgeslm::uni {

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes one character at s[i]; returns its code point and sets *len to the bytes it used. An invalid or
// truncated sequence yields U+FFFD and *len = the length of its maximal valid prefix (>= 1), which is
// what WHATWG / Python / Rust do, so each maximal invalid subpart becomes one U+FFFD.
uint32_t decode_one(std::string_view s, size_t i, size_t* len);
// Whole string to code points (lossy as above).
void to_codepoints(std::string_view s, std::vector<uint32_t>* out);
void append_utf8(std::string& out, uint32_t cp);
std::string to_utf8(const uint32_t* cps, size_t n);
// Re-encodes bytes as valid UTF-8 (invalid subparts -> U+FFFD).
std::string lossy(std::string_view bytes);
// Length of the longest prefix of s that ends on a complete character (for streaming).
size_t complete_prefix(std::string_view s);

bool is_letter(uint32_t cp);      // general category L*
bool is_number(uint32_t cp);      // general category N* (Rust char::is_numeric)
bool is_whitespace(uint32_t cp);  // White_Space property (Oniguruma \s, Rust char::is_whitespace)
inline bool is_alnum(uint32_t cp) { return is_letter(cp) || is_number(cp); }

// GPT-2 bytes_to_unicode: byte b -> a printable code point; and back (-1 if cp is not in the map).
uint32_t byte_to_unicode(uint8_t b);
int unicode_to_byte(uint32_t cp);

// Unicode NFC (canonical decomposition, canonical ordering, canonical composition incl. Hangul).
void nfc(std::vector<uint32_t>* cps);
const char* unicode_version();

}  // namespace edgeslm::uni
