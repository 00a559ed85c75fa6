/* test_capi.c — C API tests through the public header only (plain C99, runs under ctest).
 *
 *   test_capi                      error paths that need no model: bad arguments, missing dir,
 *                                  missing model.pte, garbage model.pte
 *   test_capi BUNDLE|- [SCRATCH]   ("-": bundle from $EDGESLM_TEST_BUNDLE, exit 77 = skip if unset)
 *                                  + a real bundle: metadata, state errors, prompt too long,
 *                                  stepwise == generate, seeded sampling, context end, truncated
 *                                  and corrupted copies of BUNDLE/model.pte (must fail, not crash)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgeslm.h"

static int g_failures = 0;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      ++g_failures;                                                              \
    }                                                                            \
  } while (0)
#define CHECK_STATUS(expr, want)                                                             \
  do {                                                                                       \
    edgeslm_status got_ = (expr);                                                            \
    if (got_ != (want)) {                                                                    \
      fprintf(stderr, "%s:%d: %s -> %s, want %s\n", __FILE__, __LINE__, #expr,              \
              edgeslm_status_string(got_), edgeslm_status_string(want));                     \
      ++g_failures;                                                                          \
    }                                                                                        \
  } while (0)

static void write_file(const char* path, const void* data, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) { perror(path); exit(2); }
  fwrite(data, 1, n, f);
  fclose(f);
}

static unsigned char* read_file(const char* path, size_t* n) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* buf = malloc(*n);
  if (fread(buf, 1, *n, f) != *n) { free(buf); buf = NULL; }
  fclose(f);
  return buf;
}

/* Opens `dir` expecting failure `want`: *out must stay NULL and a message must be set. */
static void expect_open_fails(const char* dir, edgeslm_status want) {
  edgeslm_model* m = (edgeslm_model*)0x1;
  CHECK_STATUS(edgeslm_open(dir, NULL, &m), want);
  CHECK(m == NULL);
  CHECK(strlen(edgeslm_last_error(NULL)) > 0);
  printf("  open(%s) -> %s: %s\n", dir ? dir : "NULL", edgeslm_status_string(want), edgeslm_last_error(NULL));
}

static void test_errors_without_model(const char* scratch) {
  char dir[1024], pte[1100];
  edgeslm_model* m = NULL;
  printf("errors without a model\n");
  CHECK(strcmp(edgeslm_status_string(EDGESLM_ERR_LOAD), "EDGESLM_ERR_LOAD") == 0);
  CHECK(edgeslm_version()[0] != '\0');
  CHECK_STATUS(edgeslm_open("x", NULL, NULL), EDGESLM_ERR_INVALID_ARGUMENT);
  expect_open_fails(NULL, EDGESLM_ERR_INVALID_ARGUMENT);
  expect_open_fails("", EDGESLM_ERR_INVALID_ARGUMENT);
  expect_open_fails("/nonexistent/edgeslm/bundle", EDGESLM_ERR_NOT_FOUND);

  snprintf(dir, sizeof dir, "%s/empty", scratch);         /* a dir without model.pte */
  mkdir(dir, 0755);
  expect_open_fails(dir, EDGESLM_ERR_NOT_FOUND);

  snprintf(dir, sizeof dir, "%s/garbage", scratch);       /* model.pte that is not a program */
  mkdir(dir, 0755);
  snprintf(pte, sizeof pte, "%s/model.pte", dir);
  write_file(pte, "this is not a flatbuffer, just text that is long enough to read a header", 72);
  expect_open_fails(dir, EDGESLM_ERR_LOAD);
  write_file(pte, "", 0);                                 /* empty file */
  expect_open_fails(dir, EDGESLM_ERR_LOAD);

  /* NULL model: every call returns an error or a neutral value, nothing crashes. */
  CHECK_STATUS(edgeslm_prefill(NULL, NULL, 0), EDGESLM_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(edgeslm_reset(NULL), EDGESLM_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(edgeslm_get_stats(NULL, NULL), EDGESLM_ERR_INVALID_ARGUMENT);
  CHECK(edgeslm_vocab_size(NULL) == -1);
  CHECK(edgeslm_eos_ids(NULL, NULL, 0) == 0);
  edgeslm_close(NULL);
  (void)m;
}

typedef struct { int64_t tokens[512]; int n; int stop_after; } collected;
static int collect(int64_t token, void* user) {
  collected* c = (collected*)user;
  if (c->n < 512) c->tokens[c->n] = token;
  c->n++;
  return c->stop_after > 0 && c->n >= c->stop_after;
}

static void test_with_bundle(const char* bundle) {
  edgeslm_model* m = NULL;
  edgeslm_options opts;
  edgeslm_options_init(&opts);
  opts.threads = 1;
  printf("bundle %s\n", bundle);
  CHECK_STATUS(edgeslm_open(bundle, &opts, &m), EDGESLM_OK);
  if (!m) { fprintf(stderr, "open failed: %s\n", edgeslm_last_error(NULL)); ++g_failures; return; }
  const int64_t vocab = edgeslm_vocab_size(m), ctx = edgeslm_max_seq_len(m);
  int64_t eos[8];
  size_t n_eos = edgeslm_eos_ids(m, eos, 8);
  printf("  vocab %lld, max_seq_len %lld, bos %lld, %zu eos, backend %s\n", (long long)vocab,
         (long long)ctx, (long long)edgeslm_bos_id(m), n_eos, edgeslm_backend_name(m));
  CHECK(vocab > 0 && ctx > 4);
  CHECK(strcmp(edgeslm_backend_name(m), "executorch") == 0);

  /* state and argument errors */
  int64_t tok = -1;
  const float* logits = NULL;
  size_t nv = 0;
  CHECK_STATUS(edgeslm_sample(m, NULL, &tok), EDGESLM_ERR_STATE);
  CHECK_STATUS(edgeslm_get_logits(m, &logits, &nv), EDGESLM_ERR_STATE);
  CHECK(strlen(edgeslm_last_error(m)) > 0);
  CHECK_STATUS(edgeslm_prefill(m, NULL, 3), EDGESLM_ERR_INVALID_ARGUMENT);
  int64_t prompt[4] = {1, 5, 7, 9};
  CHECK_STATUS(edgeslm_prefill(m, prompt, 0), EDGESLM_ERR_INVALID_ARGUMENT);
  int64_t bad[2] = {1, vocab};
  CHECK_STATUS(edgeslm_prefill(m, bad, 2), EDGESLM_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(edgeslm_decode_step(m, -3, NULL, NULL), EDGESLM_ERR_INVALID_ARGUMENT);
  edgeslm_gen_config cfg;
  edgeslm_gen_config_init(&cfg);
  cfg.max_new_tokens = -1;
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, NULL, NULL), EDGESLM_ERR_INVALID_ARGUMENT);

  /* prompt longer than the context: error, message, and the model stays usable */
  int64_t* longp = calloc((size_t)ctx + 1, sizeof(int64_t));
  CHECK_STATUS(edgeslm_prefill(m, longp, (size_t)ctx + 1), EDGESLM_ERR_CONTEXT_FULL);
  printf("  prefill(ctx+1) -> %s\n", edgeslm_last_error(m));
  edgeslm_gen_config_init(&cfg);
  CHECK_STATUS(edgeslm_generate(m, longp, (size_t)ctx + 1, &cfg, NULL, NULL), EDGESLM_ERR_CONTEXT_FULL);
  free(longp);

  /* stepwise greedy == generate greedy */
  int64_t steps[8];
  CHECK_STATUS(edgeslm_reset(m), EDGESLM_OK);
  CHECK_STATUS(edgeslm_prefill(m, prompt, 4), EDGESLM_OK);
  CHECK_STATUS(edgeslm_get_logits(m, &logits, &nv), EDGESLM_OK);
  CHECK(nv == (size_t)vocab && logits != NULL);
  CHECK_STATUS(edgeslm_sample(m, NULL, &steps[0]), EDGESLM_OK);
  for (int i = 1; i < 8; ++i) CHECK_STATUS(edgeslm_decode_step(m, steps[i - 1], NULL, &steps[i]), EDGESLM_OK);
  collected c = {{0}, 0, 0};
  edgeslm_gen_config_init(&cfg);
  cfg.max_new_tokens = 8;
  cfg.stop_at_eos = 0;
  CHECK_STATUS(edgeslm_reset(m), EDGESLM_OK);
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, collect, &c), EDGESLM_OK);
  CHECK(c.n == 8);
  for (int i = 0; i < 8 && i < c.n; ++i) CHECK(c.tokens[i] == steps[i]);
  edgeslm_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  CHECK_STATUS(edgeslm_get_stats(m, &st), EDGESLM_OK);
  printf("  load %.1f ms, ttft %.2f ms, prefill %.0f tok/s, decode %.0f tok/s, arena %lld B, rss %lld B, heap %lld B\n",
         st.model_load_ms, st.ttft_ms, st.prefill_tokens_per_s, st.decode_tokens_per_s,
         (long long)st.planned_arena_bytes, (long long)st.peak_rss_bytes, (long long)st.peak_heap_bytes);
  CHECK(st.model_load_ms > 0 && st.ttft_ms > 0 && st.decode_tokens_per_s > 0);
  CHECK(st.planned_arena_bytes > 0 && st.peak_rss_bytes > 0);
  CHECK(st.prompt_tokens == 4 && st.generated_tokens == 8 && st.position == 4 + 7);
  CHECK(st.stop_reason == EDGESLM_STOP_MAX_TOKENS);

  /* seeded sampling repeats; the callback can stop generation */
  collected a = {{0}, 0, 0}, b = {{0}, 0, 0};
  cfg.temperature = 1.5f; cfg.top_p = 0.9f; cfg.seed = 42;
  edgeslm_reset(m);
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, collect, &a), EDGESLM_OK);
  edgeslm_reset(m);
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, collect, &b), EDGESLM_OK);
  CHECK(a.n == b.n && memcmp(a.tokens, b.tokens, sizeof(int64_t) * (size_t)a.n) == 0);
  collected s = {{0}, 0, 2};
  edgeslm_reset(m);
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, collect, &s), EDGESLM_OK);
  edgeslm_get_stats(m, &st);
  CHECK(s.n == 2 && st.stop_reason == EDGESLM_STOP_CALLBACK);

  /* generation runs into the end of the context: OK, stop_reason CONTEXT */
  collected f = {{0}, 0, 0};
  edgeslm_gen_config_init(&cfg);
  cfg.max_new_tokens = (int32_t)ctx + 10;
  cfg.stop_at_eos = 0;
  edgeslm_reset(m);
  CHECK_STATUS(edgeslm_generate(m, prompt, 4, &cfg, collect, &f), EDGESLM_OK);
  edgeslm_get_stats(m, &st);
  CHECK(st.stop_reason == EDGESLM_STOP_CONTEXT && st.position == ctx);
  CHECK(f.n == ctx - 4 + 1);
  CHECK_STATUS(edgeslm_decode_step(m, 1, NULL, NULL), EDGESLM_ERR_CONTEXT_FULL);
  edgeslm_close(m);
}

/* Truncated and bit-flipped copies of a good model.pte must fail to open (or open), never crash. */
static void test_corrupt_copies(const char* bundle, const char* scratch) {
  char src[1100], dir[1024], pte[1100];
  size_t n = 0;
  snprintf(src, sizeof src, "%s/model.pte", bundle);
  unsigned char* data = read_file(src, &n);
  CHECK(data != NULL && n > 64);
  if (!data) return;
  printf("corrupt copies of %s (%zu bytes)\n", src, n);
  snprintf(dir, sizeof dir, "%s/corrupt", scratch);
  mkdir(dir, 0755);
  snprintf(pte, sizeof pte, "%s/model.pte", dir);
  const size_t cuts[3] = {16, n / 3, n - 8};
  for (int i = 0; i < 3; ++i) {
    write_file(pte, data, cuts[i]);
    expect_open_fails(dir, EDGESLM_ERR_LOAD);
  }
  memcpy(data + 4, "XXXX", 4);                    /* bad flatbuffer identifier */
  write_file(pte, data, n);
  expect_open_fails(dir, EDGESLM_ERR_LOAD);
  free(data);
}

int main(int argc, char** argv) {
  char tmpl[] = "/tmp/edgeslm-capi-XXXXXX";
  const char* scratch = argc > 2 ? argv[2] : mkdtemp(tmpl);
  mkdir(scratch, 0755);
  test_errors_without_model(scratch);
  /* The bundle comes from argv[1] or $EDGESLM_TEST_BUNDLE; "-" = required but absent -> skip (77). */
  const char* bundle = argc > 1 ? argv[1] : NULL;
  if (bundle && strcmp(bundle, "-") == 0) {
    bundle = getenv("EDGESLM_TEST_BUNDLE");
    if (!bundle || !*bundle) { printf("SKIP: set EDGESLM_TEST_BUNDLE to a bundle dir\n"); return 77; }
  }
  if (bundle) {
    test_with_bundle(bundle);
    test_corrupt_copies(bundle, scratch);
  }
  printf("%s (%d failures)\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
