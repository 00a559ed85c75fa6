/*
 * edgeslm.h — the one C API of the edgeslm native runtime (C99, stable ABI).
 *
 * Runs an edgeslm bundle (a folder holding model.pte, tokenizer.json, manifest.json) on the CPU.
 * Token ids in, token ids out (edgeslm_generate), or text in, text out (edgeslm_generate_text) with the
 * bundle's tokenizer.json run by the runtime's own C++ tokenizer.
 *
 * Typical use:
 *   edgeslm_model* m = NULL;
 *   if (edgeslm_open("out/bundle", NULL, &m) != EDGESLM_OK) { puts(edgeslm_last_error(NULL)); ... }
 *   edgeslm_gen_config cfg; edgeslm_gen_config_init(&cfg); cfg.max_new_tokens = 32;
 *   edgeslm_generate(m, prompt, n, &cfg, on_token, user);   // on_token(id, user) per new token
 *   edgeslm_stats st; edgeslm_get_stats(m, &st);
 *   edgeslm_close(m);
 *
 * Ownership and lifetime rules:
 *   - edgeslm_open allocates the model; only edgeslm_close frees it. On failure *out is set to NULL.
 *   - Every pointer argument is borrowed for the duration of the call only; nothing is retained.
 *   - Strings returned (edgeslm_last_error, edgeslm_status_string, edgeslm_backend_name, edgeslm_version)
 *     are owned by the library: do not free them. edgeslm_last_error(m) stays valid until the next call
 *     on m; edgeslm_last_error(NULL) (the last edgeslm_open failure on this thread) until the next
 *     edgeslm_open on this thread.
 *   - edgeslm_get_logits returns a borrowed pointer into the model, valid until the next call that
 *     runs the model (prefill, decode_step, generate, reset) or close.
 *   - A model is not thread-safe: use one model from one thread at a time. Distinct models are
 *     independent, but the ExecuTorch backend shares one CPU thread pool per process: options.threads
 *     resizes it only when no other edgeslm model is open (otherwise the current size is kept;
 *     edgeslm_stats.threads reports the real count). In a process where other code also runs
 *     ExecuTorch programs (e.g. the Python runtime), pass threads = 0: resizing the pool under a
 *     loaded XNNPACK program is unsafe.
 *
 * Errors never abort the process: every fallible call returns an edgeslm_status and leaves a one-line
 * message in edgeslm_last_error. A model whose forward failed stays usable after edgeslm_reset.
 *
 * Positions: the model keeps a write position (tokens already in its KV cache). prefill and
 * decode_step append at that position; reset sets it to 0. Context = get_max_seq_len tokens.
 */
#ifndef EDGESLM_H
#define EDGESLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EDGESLM_API __attribute__((visibility("default")))
#else
#define EDGESLM_API
#endif

#define EDGESLM_ABI_VERSION 1

typedef enum edgeslm_status {
  EDGESLM_OK = 0,
  EDGESLM_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, n == 0, token id outside [0, vocab) ... */
  EDGESLM_ERR_NOT_FOUND = 2,        /* bundle dir or <dir>/model.pte missing / unreadable */
  EDGESLM_ERR_LOAD = 3,             /* corrupt .pte, missing kernels / backends, bad metadata */
  EDGESLM_ERR_CONTEXT_FULL = 4,     /* position + tokens would exceed max_seq_len */
  EDGESLM_ERR_RUNTIME = 5,          /* the forward call failed */
  EDGESLM_ERR_STATE = 6,            /* e.g. sampling before any forward produced logits */
  EDGESLM_ERR_NO_MEMORY = 7
} edgeslm_status;

/* Why edgeslm_generate stopped (edgeslm_stats.stop_reason). */
typedef enum edgeslm_stop_reason {
  EDGESLM_STOP_NONE = 0,       /* no generate call yet */
  EDGESLM_STOP_MAX_TOKENS = 1, /* max_new_tokens reached */
  EDGESLM_STOP_EOS = 2,        /* sampled one of the model's eos ids (it is still passed to the callback) */
  EDGESLM_STOP_CALLBACK = 3,   /* the callback returned nonzero */
  EDGESLM_STOP_CONTEXT = 4     /* the context is full */
} edgeslm_stop_reason;

typedef struct edgeslm_model edgeslm_model; /* opaque */

/* Open options. Initialize with edgeslm_options_init, then set fields. */
typedef struct edgeslm_options {
  uint32_t struct_size; /* = sizeof(edgeslm_options); set by edgeslm_options_init */
  int32_t threads;      /* CPU threads; <= 0: keep the process's pool (default: performant cores) */
} edgeslm_options;

/* Sampling / generation settings. Initialize with edgeslm_gen_config_init (greedy, 128 tokens). */
typedef struct edgeslm_gen_config {
  uint32_t struct_size;   /* = sizeof(edgeslm_gen_config); set by edgeslm_gen_config_init */
  int32_t max_new_tokens; /* tokens to generate (>= 0) */
  float temperature;      /* <= 0: greedy (argmax, first index on ties) */
  float top_p;            /* nucleus mass in (0, 1]; 1 = full distribution */
  uint64_t seed;          /* RNG seed; edgeslm_generate reseeds the model's RNG with it */
  int32_t stop_at_eos;    /* nonzero: stop after an eos id; 0: ignore eos (benchmarks, golden tests) */
} edgeslm_gen_config;

/* Measurements of the last generate call (and of the last open). Times in ms, rates in tokens/s. */
typedef struct edgeslm_stats {
  uint32_t struct_size;           /* caller sets sizeof(edgeslm_stats) (or 0 = current size) */
  double model_load_ms;           /* edgeslm_open: program load + forward method load */
  double ttft_ms;                 /* generate: start -> first new token sampled (prefill + sample) */
  double prefill_ms;              /* generate: prefill forward of the prompt */
  double prefill_tokens_per_s;    /* prompt_tokens / prefill time */
  double decode_ms;               /* generate: all decode forwards (tokens after the first) */
  double decode_tokens_per_s;     /* decode forwards per second (0 if fewer than 2 new tokens) */
  int64_t prompt_tokens;          /* prompt length of the last generate */
  int64_t generated_tokens;       /* new tokens of the last generate (including a final eos) */
  int64_t position;               /* tokens currently in the KV cache */
  int64_t planned_arena_bytes;    /* forward's memory-planned buffers (activations + KV cache) */
  int64_t peak_rss_bytes;         /* process peak RSS (getrusage); under qemu-user this is qemu's own */
  int64_t peak_heap_bytes;        /* largest malloc heap in use (mallinfo2 uordblks + hblkhd) sampled
                                     after open, prefill and generate; -1 without glibc. Under qemu-user
                                     this is the guest's own heap, the number to trust there. */
  int32_t stop_reason;            /* edgeslm_stop_reason */
  int32_t threads;                /* backend threads in use */
  int64_t weights_huge_page_bytes; /* bytes of the model file held in (transparent) huge pages: ExecuTorch
                                     on Linux with THP (EDGESLM_WEIGHT_PAGES=huge|mmap|auto); 0 = the
                                     file's 4 KB mapping */
} edgeslm_stats;

/* Called once per new token. Return 0 to continue, nonzero to stop generation. */
typedef int (*edgeslm_token_callback)(int64_t token, void* user);

/* ---- library ---- */
EDGESLM_API const char* edgeslm_version(void);                /* e.g. "0.1.0" */
EDGESLM_API const char* edgeslm_status_string(edgeslm_status s); /* "EDGESLM_ERR_LOAD" ... */
EDGESLM_API void edgeslm_options_init(edgeslm_options* opts);
EDGESLM_API void edgeslm_gen_config_init(edgeslm_gen_config* cfg);

/* ---- lifetime ---- */
/* Loads <bundle_dir>/model.pte (mmap) and its metadata methods. opts may be NULL (defaults). */
EDGESLM_API edgeslm_status edgeslm_open(const char* bundle_dir, const edgeslm_options* opts,
                                        edgeslm_model** out);
EDGESLM_API void edgeslm_close(edgeslm_model* model); /* NULL is a no-op */
/* Last error message of `model`, or of the last failed edgeslm_open on this thread if model is NULL.
   "" when there was none. Never NULL. */
EDGESLM_API const char* edgeslm_last_error(const edgeslm_model* model);

/* ---- metadata (read from the .pte's constant methods at open) ---- */
EDGESLM_API int64_t edgeslm_vocab_size(const edgeslm_model* model);
EDGESLM_API int64_t edgeslm_max_seq_len(const edgeslm_model* model);
EDGESLM_API int64_t edgeslm_bos_id(const edgeslm_model* model); /* -1 if the model has none */
/* Copies up to `cap` eos ids into ids (ids may be NULL when cap == 0); returns how many the model has. */
EDGESLM_API size_t edgeslm_eos_ids(const edgeslm_model* model, int64_t* ids, size_t cap);
EDGESLM_API const char* edgeslm_backend_name(const edgeslm_model* model); /* "executorch" */

/* ---- stepwise ---- */
/* Runs ids[0..n) at positions [position, position+n): one forward; last-position logits kept. */
EDGESLM_API edgeslm_status edgeslm_prefill(edgeslm_model* model, const int64_t* ids, size_t n);
/* Runs one token at `position`. If next_token is not NULL, samples the next token from the new logits
   with cfg (NULL = greedy) into *next_token. */
EDGESLM_API edgeslm_status edgeslm_decode_step(edgeslm_model* model, int64_t token,
                                               const edgeslm_gen_config* cfg, int64_t* next_token);
/* Samples from the current logits (after prefill / decode_step) with cfg (NULL = greedy). */
EDGESLM_API edgeslm_status edgeslm_sample(edgeslm_model* model, const edgeslm_gen_config* cfg,
                                          int64_t* token);
/* Borrowed pointer to the last-position logits [vocab] float32 of the last forward. */
EDGESLM_API edgeslm_status edgeslm_get_logits(edgeslm_model* model, const float** logits,
                                              size_t* vocab);
/* Forgets the sequence: position = 0 (the cache is overwritten as new tokens arrive). */
EDGESLM_API edgeslm_status edgeslm_reset(edgeslm_model* model);

/* ---- whole generation ---- */
/* Appends prompt[0..n) at the current position (call edgeslm_reset first for a fresh sequence),
   then samples up to cfg->max_new_tokens tokens, calling cb(token, user) for each (cb may be NULL).
   Stops early at eos (if cfg->stop_at_eos), when cb returns nonzero, or when the context is full
   (all EDGESLM_OK; see stats.stop_reason). A prompt that does not fit -> EDGESLM_ERR_CONTEXT_FULL.
   n may be 0 only if a previous forward left logits (continue sampling from them).
   The last new token is NOT in the cache yet: to continue a conversation, put it first in the next
   prompt. Fills the timing fields of edgeslm_get_stats. */
EDGESLM_API edgeslm_status edgeslm_generate(edgeslm_model* model, const int64_t* prompt, size_t n,
                                            const edgeslm_gen_config* cfg, edgeslm_token_callback cb,
                                            void* user);
EDGESLM_API edgeslm_status edgeslm_get_stats(const edgeslm_model* model, edgeslm_stats* stats);


/* ---- text: the C++ tokenizer over a Hugging Face tokenizer.json ----
 * Supported: byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM pre-tokenizers) and SentencePiece-style BPE
 * with metaspace / byte fallback (Llama 2, TinyLlama), added and special tokens (matched in text, like
 * `tokenizers` does). Any other model type fails at open with EDGESLM_ERR_LOAD (never wrong ids).
 * Ids and text equal the `tokenizers` library's for the same tokenizer.json. */
typedef struct edgeslm_tokenizer edgeslm_tokenizer; /* opaque; not thread-safe */

/* Loads tokenizer.json. On failure *out = NULL and edgeslm_last_error(NULL) names the file and the fix. */
EDGESLM_API edgeslm_status edgeslm_tokenizer_open(const char* tokenizer_json_path, edgeslm_tokenizer** out);
EDGESLM_API void edgeslm_tokenizer_close(edgeslm_tokenizer* tok); /* NULL is a no-op */
EDGESLM_API const char* edgeslm_tokenizer_last_error(const edgeslm_tokenizer* tok); /* "" if none */
/* text[0..len) (UTF-8; invalid bytes handled as `tokenizers` handles them) -> ids. add_special != 0 runs
   the post-processor (bos/eos) like encode(add_special_tokens=True). Writes min(count, cap) ids (ids may
   be NULL when cap == 0) and sets *n_ids = count: call with cap = 0 to size the buffer. */
EDGESLM_API edgeslm_status edgeslm_tokenizer_encode(edgeslm_tokenizer* tok, const char* text, size_t len,
                                                    int add_special, int64_t* ids, size_t cap, size_t* n_ids);
/* ids -> UTF-8 text like decode(ids, skip_special_tokens=skip_special). Writes min(size, cap) bytes plus a
   NUL when room is left, sets *n_bytes = size (without the NUL). */
EDGESLM_API edgeslm_status edgeslm_tokenizer_decode(edgeslm_tokenizer* tok, const int64_t* ids, size_t n,
                                                    int skip_special, char* text, size_t cap, size_t* n_bytes);
EDGESLM_API int64_t edgeslm_tokenizer_vocab_size(const edgeslm_tokenizer* tok);

/* The bundle's tokenizer (<bundle_dir>/tokenizer.json), opened by edgeslm_open and owned by the model;
   NULL if the bundle has none or it could not be opened (edgeslm_last_error(model) says why). */
EDGESLM_API edgeslm_tokenizer* edgeslm_get_tokenizer(edgeslm_model* model);

/* Called with each new piece of generated text: complete UTF-8 characters only (a character split across
   tokens is held back until it is complete). Return 0 to continue, nonzero to stop. */
typedef int (*edgeslm_text_callback)(const char* text, size_t len, void* user);

/* Text in, text out: resets the model, encodes `prompt` (NUL-terminated UTF-8) with the bundle's tokenizer
   (chat != 0: wrapped first in the bundle's chat prompt from manifest.json, as `edgeslm run --chat`),
   generates like edgeslm_generate and streams decoded text to cb (may be NULL). If `tokens` is not NULL,
   the new token ids are also passed to it. Fills edgeslm_get_stats. */
EDGESLM_API edgeslm_status edgeslm_generate_text(edgeslm_model* model, const char* prompt, int chat,
                                                 const edgeslm_gen_config* cfg, edgeslm_text_callback cb,
                                                 edgeslm_token_callback tokens, void* user);

#ifdef __cplusplus
} /* extern "C" */
#endif
#endif /* EDGESLM_H */
