/* test_tokenizer.c — the C++ tokenizer through the public header (plain C99, runs under ctest).
 *
 *   test_tokenizer SCRATCH_DIR
 *     writes a small byte-level BPE tokenizer.json (256 byte symbols + a few merges + two special
 *     tokens, post-processor "<s> $A") into SCRATCH_DIR and checks golden ids computed with the
 *     `tokenizers` library for the same file, decode round trips (with / without specials), invalid
 *     UTF-8 (-> U+FFFD like errors="replace"), the size query (cap = 0), and the errors: missing
 *     file, bad JSON, unsupported model type (WordPiece) -> EDGESLM_ERR_LOAD naming tokenizer.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgeslm.h"

static int g_failures = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

static void put_utf8(FILE* f, unsigned cp) {
  if (cp < 0x80) fputc((int)cp, f);
  else if (cp < 0x800) { fputc((int)(0xC0 | (cp >> 6)), f); fputc((int)(0x80 | (cp & 0x3F)), f); }
  else { fputc((int)(0xE0 | (cp >> 12)), f); fputc((int)(0x80 | ((cp >> 6) & 0x3F)), f); fputc((int)(0x80 | (cp & 0x3F)), f); }
}

/* GPT-2 bytes_to_unicode. */
static unsigned byte_cp(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    int printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
    if (x == b) return printable ? (unsigned)x : (unsigned)(256 + n);
    if (!printable) ++n;
  }
  return 0;
}

/* vocab: byte b -> id b; then merges (256..264); specials <s> = 265, </s> = 266 */
static void write_byte_level(const char* path) {
  static const char* merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or", "\xC4\xA0wor l",
                                 "\xC4\xA0worl d"};
  static const char* merged[] = {"he", "ll", "hell", "hello", "\xC4\xA0w", "or", "\xC4\xA0wor", "\xC4\xA0worl",
                                 "\xC4\xA0world"};
  FILE* f = fopen(path, "wb");
  if (!f) { perror(path); exit(2); }
  fputs("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
        "{\"id\":265,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":266,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[265],\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
        "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{", f);
  for (int b = 0; b < 256; ++b) {
    unsigned cp = byte_cp(b);
    fputc('"', f);
    if (cp == '"' || cp == '\\') fputc('\\', f);
    put_utf8(f, cp);
    fprintf(f, "\":%d,", b);
  }
  size_t n = sizeof merges / sizeof merges[0];
  for (size_t i = 0; i < n; ++i) fprintf(f, "\"%s\":%d%s", merged[i], 256 + (int)i, i + 1 < n ? "," : "");
  fputs("},\"merges\":[", f);
  for (size_t i = 0; i < n; ++i) fprintf(f, "\"%s\"%s", merges[i], i + 1 < n ? "," : "");
  fputs("]}}", f);
  fclose(f);
}

static void write_text(const char* path, const char* text) {
  FILE* f = fopen(path, "wb");
  if (!f) { perror(path); exit(2); }
  fputs(text, f);
  fclose(f);
}

static size_t encode(edgeslm_tokenizer* t, const char* text, size_t len, int add_special, int64_t* ids, size_t cap) {
  size_t n = 0;
  edgeslm_status s = edgeslm_tokenizer_encode(t, text, len, add_special, ids, cap, &n);
  if (s != EDGESLM_OK) fprintf(stderr, "encode: %s\n", edgeslm_tokenizer_last_error(t));
  CHECK(s == EDGESLM_OK);
  return n;
}

static int same(const int64_t* a, size_t n, const int64_t* b, size_t m) {
  if (n != m) return 0;
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return 0;
  return 1;
}

int main(int argc, char** argv) {
  const char* scratch = argc > 1 ? argv[1] : "test-scratch";
  mkdir(scratch, 0755);
  char path[4096], bad[4096], wp[4096];
  snprintf(path, sizeof path, "%s/tokenizer.json", scratch);
  snprintf(bad, sizeof bad, "%s/bad-tokenizer.json", scratch);
  snprintf(wp, sizeof wp, "%s/wordpiece-tokenizer.json", scratch);
  write_byte_level(path);

  edgeslm_tokenizer* t = NULL;
  if (edgeslm_tokenizer_open(path, &t) != EDGESLM_OK) {
    fprintf(stderr, "open: %s\n", edgeslm_last_error(NULL));
    return 1;
  }
  CHECK(edgeslm_tokenizer_vocab_size(t) == 267);
  /* golden ids: tokenizers.Tokenizer.from_file(path).encode(text, add_special_tokens=...).ids */
  int64_t ids[64];
  const char* hello = "hello world</s> it's\xF0\x9F\x98\x80 \xE2\x82";  /* emoji, then a truncated character */
  static const int64_t want[] = {265, 259, 264, 266, 32, 105, 116, 39, 115, 240, 159, 152, 128, 32, 239, 191, 189};
  size_t n = encode(t, hello, strlen(hello), 1, ids, 64);
  CHECK(same(ids, n, want, sizeof want / sizeof want[0]));
  /* size query: cap = 0 gives the count without writing */
  CHECK(encode(t, hello, strlen(hello), 0, NULL, 0) == n - 1);
  /* decode: specials kept or skipped; the truncated character comes back as U+FFFD */
  char text[256];
  size_t nb = 0;
  CHECK(edgeslm_tokenizer_decode(t, ids, n, 0, text, sizeof text, &nb) == EDGESLM_OK);
  CHECK(strcmp(text, "<s>hello world</s> it's\xF0\x9F\x98\x80 \xEF\xBF\xBD") == 0 && nb == strlen(text));
  CHECK(edgeslm_tokenizer_decode(t, ids, n, 1, text, sizeof text, &nb) == EDGESLM_OK);
  CHECK(strcmp(text, "hello world it's\xF0\x9F\x98\x80 \xEF\xBF\xBD") == 0);
  /* a too-small buffer: truncated copy, full size reported */
  CHECK(edgeslm_tokenizer_decode(t, ids, n, 1, text, 4, &nb) == EDGESLM_OK && nb > 4);
  /* empty text -> no ids (just <s> with add_special) */
  CHECK(encode(t, "", 0, 0, ids, 64) == 0);
  CHECK(encode(t, "", 0, 1, ids, 64) == 1 && ids[0] == 265);
  CHECK(edgeslm_tokenizer_encode(t, "x", 1, 0, NULL, 0, NULL) == EDGESLM_ERR_INVALID_ARGUMENT);
  CHECK(strlen(edgeslm_tokenizer_last_error(t)) > 0);
  edgeslm_tokenizer_close(t);
  edgeslm_tokenizer_close(NULL);

  /* errors at open: never a half-open tokenizer */
  edgeslm_tokenizer* none = (edgeslm_tokenizer*)0x1;
  CHECK(edgeslm_tokenizer_open("/nonexistent/tokenizer.json", &none) == EDGESLM_ERR_NOT_FOUND && none == NULL);
  write_text(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}");
  CHECK(edgeslm_tokenizer_open(bad, &none) == EDGESLM_ERR_LOAD && none == NULL);
  CHECK(strstr(edgeslm_last_error(NULL), "bad-tokenizer.json") != NULL);
  write_text(wp, "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":null,"
                 "\"post_processor\":null,\"decoder\":null,\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\","
                 "\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,\"vocab\":{\"[UNK]\":0}}}");
  CHECK(edgeslm_tokenizer_open(wp, &none) == EDGESLM_ERR_LOAD && none == NULL);
  CHECK(strstr(edgeslm_last_error(NULL), "WordPiece") != NULL);
  CHECK(strstr(edgeslm_last_error(NULL), "wordpiece-tokenizer.json") != NULL);

  if (g_failures) fprintf(stderr, "%d check(s) failed\n", g_failures);
  else printf("tokenizer: all checks passed\n");
  return g_failures ? 1 : 0;
}
