// capi.cpp — the C API (include/edgeslm.h) over a Backend: positions, sampling, generation loop, stats.
// Identical for every backend; only open_<backend>() differs (picked by the artifact in the bundle).
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "backend.h"
#include "edgeslm.h"
#include "sampler.h"
#include "stats.h"
#include "text.h"

#ifndef EDGESLM_VERSION
#define EDGESLM_VERSION "0.1.0"
#endif

using edgeslm::Backend;
using edgeslm::Status;

struct edgeslm_model {
  std::unique_ptr<Backend> backend;
  const float* logits = nullptr;  // [vocab] last-position logits of the last successful forward (backend-owned)
  size_t vocab = 0;
  bool has_logits = false;
  int64_t position = 0;       // tokens in the KV cache; next forward writes here
  int64_t last_token = -1;    // last token generate sampled (not yet in the cache)
  edgeslm::Rng rng;
  edgeslm::Sampler sampler;
  edgeslm_stats stats{};
  std::string error;          // last error message ("" after a successful call)
  edgeslm::TextConfig text;   // <bundle>/tokenizer.json + manifest.json "tokenizer" (text.h)
  bool text_eos = false;      // inside generate_text: also stop at text.eos_ids (as `edgeslm run`)
  ~edgeslm_model() { edgeslm_tokenizer_close(text.tokenizer); }
};

namespace {

thread_local std::string g_open_error;  // edgeslm_last_error(NULL)

// Which artifact in a bundle selects which backend (first match wins).
struct BackendEntry {
  const char* artifact;
  std::unique_ptr<Backend> (*open)(const std::string& path, int threads, Status* err);
};
const BackendEntry kBackends[] = {
    {"model.pte", edgeslm::open_executorch},
#ifdef EDGESLM_WITH_TVM
    {"model.so", edgeslm::open_tvm},
#endif
};

edgeslm_status fail(edgeslm_model* m, edgeslm_status code, std::string msg) {
  m->error = std::move(msg);
  return code;
}

// Runs `body` with the error cleared; C++ exceptions become status codes (nothing crosses the C ABI).
template <typename F>
edgeslm_status guarded(edgeslm_model* m, F body) {
  if (m == nullptr) return EDGESLM_ERR_INVALID_ARGUMENT;
  m->error.clear();
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(m, EDGESLM_ERR_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(m, EDGESLM_ERR_RUNTIME, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(m, EDGESLM_ERR_RUNTIME, "internal error");
  }
}

void sample_heap(edgeslm_model* m) {
  int64_t heap = edgeslm::heap_in_use_bytes();
  if (heap > m->stats.peak_heap_bytes) m->stats.peak_heap_bytes = heap;
}

// One forward of ids[0..n) at the current position; advances the position on success.
edgeslm_status run_forward(edgeslm_model* m, const int64_t* ids, size_t n) {
  const auto& info = m->backend->info();
  if (ids == nullptr || n == 0) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "no tokens given");
  if ((int64_t)n > info.max_seq_len - m->position)
    return fail(m, EDGESLM_ERR_CONTEXT_FULL,
                std::to_string(n) + " tokens at position " + std::to_string(m->position) +
                    " exceed the context of " + std::to_string(info.max_seq_len) + " tokens");
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= info.vocab_size)
      return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "token id " + std::to_string(ids[i]) + " at index " +
                                                       std::to_string(i) + " outside [0, " +
                                                       std::to_string(info.vocab_size) + ")");
  m->has_logits = false;
  Status st = m->backend->forward(ids, n, m->position, &m->logits);
  if (!st.ok()) return fail(m, st.code, st.message);
  m->position += (int64_t)n;
  m->has_logits = true;
  return EDGESLM_OK;
}

edgeslm_gen_config config_or_greedy(const edgeslm_gen_config* cfg) {
  edgeslm_gen_config c;
  edgeslm_gen_config_init(&c);
  if (cfg != nullptr) std::memcpy(&c, cfg, std::min<size_t>(cfg->struct_size ? cfg->struct_size : sizeof c, sizeof c));
  c.struct_size = sizeof c;
  return c;
}

edgeslm_status sample_into(edgeslm_model* m, const edgeslm_gen_config& c, int64_t* token) {
  if (token == nullptr) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "token output is NULL");
  if (!m->has_logits) return fail(m, EDGESLM_ERR_STATE, "no logits: run prefill or decode_step first");
  *token = m->sampler.sample(m->logits, m->vocab, c.temperature, c.top_p, m->rng);
  return EDGESLM_OK;
}

bool is_eos(const edgeslm_model* m, int64_t token) {
  for (int64_t e : m->backend->info().eos_ids)
    if (e == token) return true;
  if (m->text_eos)
    for (int64_t e : m->text.eos_ids)
      if (e == token) return true;
  return false;
}

}  // namespace

namespace edgeslm {
std::string& open_error_slot() { return g_open_error; }
}  // namespace edgeslm

extern "C" {

const char* edgeslm_version(void) { return EDGESLM_VERSION; }

const char* edgeslm_status_string(edgeslm_status s) {
  switch (s) {
    case EDGESLM_OK: return "EDGESLM_OK";
    case EDGESLM_ERR_INVALID_ARGUMENT: return "EDGESLM_ERR_INVALID_ARGUMENT";
    case EDGESLM_ERR_NOT_FOUND: return "EDGESLM_ERR_NOT_FOUND";
    case EDGESLM_ERR_LOAD: return "EDGESLM_ERR_LOAD";
    case EDGESLM_ERR_CONTEXT_FULL: return "EDGESLM_ERR_CONTEXT_FULL";
    case EDGESLM_ERR_RUNTIME: return "EDGESLM_ERR_RUNTIME";
    case EDGESLM_ERR_STATE: return "EDGESLM_ERR_STATE";
    case EDGESLM_ERR_NO_MEMORY: return "EDGESLM_ERR_NO_MEMORY";
  }
  return "EDGESLM_ERR_UNKNOWN";
}

void edgeslm_options_init(edgeslm_options* o) {
  if (o == nullptr) return;
  std::memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->threads = 0;
}

void edgeslm_gen_config_init(edgeslm_gen_config* c) {
  if (c == nullptr) return;
  std::memset(c, 0, sizeof *c);
  c->struct_size = sizeof *c;
  c->max_new_tokens = 128;
  c->temperature = 0.0f;
  c->top_p = 1.0f;
  c->seed = 0;
  c->stop_at_eos = 1;
}

edgeslm_status edgeslm_open(const char* bundle_dir, const edgeslm_options* opts, edgeslm_model** out) {
  g_open_error.clear();
  if (out == nullptr) return g_open_error = "edgeslm_open: out is NULL", EDGESLM_ERR_INVALID_ARGUMENT;
  *out = nullptr;
  if (bundle_dir == nullptr || *bundle_dir == '\0')
    return g_open_error = "edgeslm_open: bundle_dir is empty", EDGESLM_ERR_INVALID_ARGUMENT;
  if (opts != nullptr && opts->struct_size != 0 && opts->struct_size < sizeof(uint32_t) + sizeof(int32_t))
    return g_open_error = "edgeslm_open: options.struct_size too small", EDGESLM_ERR_INVALID_ARGUMENT;
  const int threads = opts != nullptr ? opts->threads : 0;
  struct stat sb;
  if (stat(bundle_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return g_open_error = std::string(bundle_dir) + ": bundle directory not found", EDGESLM_ERR_NOT_FOUND;
  try {
    const double t0 = edgeslm::now_ms();
    for (const auto& entry : kBackends) {
      const std::string path = std::string(bundle_dir) + "/" + entry.artifact;
      if (stat(path.c_str(), &sb) != 0) continue;
      Status st;
      auto backend = entry.open(path, threads, &st);
      if (!backend) return g_open_error = st.message, st.code;
      auto* m = new edgeslm_model();
      m->backend = std::move(backend);
      m->vocab = (size_t)m->backend->info().vocab_size;
      m->stats.struct_size = sizeof m->stats;
      m->stats.model_load_ms = edgeslm::now_ms() - t0;
      m->stats.planned_arena_bytes = m->backend->info().planned_arena_bytes;
      m->stats.weights_huge_page_bytes = m->backend->info().weights_huge_page_bytes;
      m->stats.threads = m->backend->threads();
      m->stats.peak_heap_bytes = -1;
      m->text = edgeslm::load_text_config(bundle_dir);   // tokenizer.json is optional
      if (!m->text.error.empty()) m->error = m->text.error;
      sample_heap(m);
      *out = m;
      return EDGESLM_OK;
    }
  } catch (const std::bad_alloc&) {
    return g_open_error = "out of memory while loading the model", EDGESLM_ERR_NO_MEMORY;
  } catch (const std::exception& e) {
    return g_open_error = std::string("internal error: ") + e.what(), EDGESLM_ERR_LOAD;
  }
  return g_open_error = std::string(bundle_dir) + ": no model artifact (expected model.pte)",
         EDGESLM_ERR_NOT_FOUND;
}

void edgeslm_close(edgeslm_model* m) { delete m; }

const char* edgeslm_last_error(const edgeslm_model* m) {
  return m == nullptr ? g_open_error.c_str() : m->error.c_str();
}

int64_t edgeslm_vocab_size(const edgeslm_model* m) { return m ? m->backend->info().vocab_size : -1; }
int64_t edgeslm_max_seq_len(const edgeslm_model* m) { return m ? m->backend->info().max_seq_len : -1; }
int64_t edgeslm_bos_id(const edgeslm_model* m) { return m ? m->backend->info().bos_id : -1; }
const char* edgeslm_backend_name(const edgeslm_model* m) { return m ? m->backend->name() : ""; }

size_t edgeslm_eos_ids(const edgeslm_model* m, int64_t* ids, size_t cap) {
  if (m == nullptr) return 0;
  const auto& eos = m->backend->info().eos_ids;
  for (size_t i = 0; i < eos.size() && i < cap && ids != nullptr; ++i) ids[i] = eos[i];
  return eos.size();
}

edgeslm_status edgeslm_prefill(edgeslm_model* m, const int64_t* ids, size_t n) {
  return guarded(m, [&] {
    edgeslm_status s = run_forward(m, ids, n);
    sample_heap(m);
    return s;
  });
}

edgeslm_status edgeslm_decode_step(edgeslm_model* m, int64_t token, const edgeslm_gen_config* cfg,
                                   int64_t* next_token) {
  return guarded(m, [&] {
    edgeslm_status s = run_forward(m, &token, 1);
    if (s != EDGESLM_OK || next_token == nullptr) return s;
    return sample_into(m, config_or_greedy(cfg), next_token);
  });
}

edgeslm_status edgeslm_sample(edgeslm_model* m, const edgeslm_gen_config* cfg, int64_t* token) {
  return guarded(m, [&] { return sample_into(m, config_or_greedy(cfg), token); });
}

edgeslm_status edgeslm_get_logits(edgeslm_model* m, const float** logits, size_t* vocab) {
  return guarded(m, [&] {
    if (logits == nullptr || vocab == nullptr) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "NULL output");
    if (!m->has_logits) return fail(m, EDGESLM_ERR_STATE, "no logits: run prefill or decode_step first");
    *logits = m->logits;
    *vocab = m->vocab;
    return EDGESLM_OK;
  });
}

edgeslm_status edgeslm_reset(edgeslm_model* m) {
  return guarded(m, [&] {
    m->position = 0;
    m->has_logits = false;
    return EDGESLM_OK;
  });
}

edgeslm_status edgeslm_generate(edgeslm_model* m, const int64_t* prompt, size_t n,
                                const edgeslm_gen_config* cfg, edgeslm_token_callback cb, void* user) {
  return guarded(m, [&] {
    const edgeslm_gen_config c = config_or_greedy(cfg);
    if (c.max_new_tokens < 0) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "max_new_tokens < 0");
    if (n == 0 && !m->has_logits) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "empty prompt");
    auto& st = m->stats;
    st.ttft_ms = st.prefill_ms = st.prefill_tokens_per_s = st.decode_ms = st.decode_tokens_per_s = 0.0;
    st.prompt_tokens = (int64_t)n;
    st.generated_tokens = 0;
    st.stop_reason = EDGESLM_STOP_MAX_TOKENS;
    m->rng.seed(c.seed);

    const double t0 = edgeslm::now_ms();
    if (n > 0) {
      edgeslm_status s = run_forward(m, prompt, n);   // prefill: one call over the whole prompt
      if (s != EDGESLM_OK) return s;
    }
    st.prefill_ms = edgeslm::now_ms() - t0;
    if (n > 0 && st.prefill_ms > 0) st.prefill_tokens_per_s = (double)n * 1e3 / st.prefill_ms;
    sample_heap(m);

    // Loop: sample -> report -> (stop?) -> feed the token back (one decode forward) -> sample ...
    double decode_ms = 0.0;
    int64_t decode_steps = 0;
    for (int32_t i = 0; i < c.max_new_tokens; ++i) {
      int64_t token = 0;
      if (i > 0) {
        if (m->position >= m->backend->info().max_seq_len) { st.stop_reason = EDGESLM_STOP_CONTEXT; break; }
        const int64_t prev = m->last_token;
        const double t = edgeslm::now_ms();
        edgeslm_status s = run_forward(m, &prev, 1);
        if (s == EDGESLM_OK) s = sample_into(m, c, &token);
        decode_ms += edgeslm::now_ms() - t;
        if (s != EDGESLM_OK) return s;
        ++decode_steps;
      } else {
        edgeslm_status s = sample_into(m, c, &token);
        if (s != EDGESLM_OK) return s;
        st.ttft_ms = edgeslm::now_ms() - t0;  // prompt in -> first new token out
      }
      m->last_token = token;
      ++st.generated_tokens;
      if (cb != nullptr && cb(token, user) != 0) { st.stop_reason = EDGESLM_STOP_CALLBACK; break; }
      if (c.stop_at_eos && is_eos(m, token)) { st.stop_reason = EDGESLM_STOP_EOS; break; }
    }
    st.decode_ms = decode_ms;
    if (decode_steps > 0 && decode_ms > 0) st.decode_tokens_per_s = (double)decode_steps * 1e3 / decode_ms;
    sample_heap(m);
    return EDGESLM_OK;
  });
}

edgeslm_tokenizer* edgeslm_get_tokenizer(edgeslm_model* m) {
  if (m == nullptr) return nullptr;
  if (m->text.tokenizer == nullptr)
    m->error = m->text.error.empty() ? "the bundle has no tokenizer.json" : m->text.error;
  return m->text.tokenizer;
}

edgeslm_status edgeslm_generate_text(edgeslm_model* m, const char* prompt, int chat, const edgeslm_gen_config* cfg,
                                     edgeslm_text_callback cb, edgeslm_token_callback tokens, void* user) {
  edgeslm::TextStream stream;
  edgeslm_status s = guarded(m, [&] {
    if (prompt == nullptr) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "prompt is NULL");
    if (m->text.tokenizer == nullptr)
      return fail(m, EDGESLM_ERR_STATE, m->text.error.empty() ? "the bundle has no tokenizer.json" : m->text.error);
    std::vector<int64_t> ids;
    std::string err;
    if (!edgeslm::encode_prompt(m->text, prompt, chat != 0, &ids, &err)) return fail(m, EDGESLM_ERR_STATE, err);
    if (ids.empty()) return fail(m, EDGESLM_ERR_INVALID_ARGUMENT, "the prompt encodes to no tokens");
    m->position = 0;
    m->has_logits = false;
    stream = edgeslm::TextStream(&m->text, cb, tokens, user);
    stream.prompt = std::move(ids);
    stream.skip = m->backend->info().eos_ids;   // eos is not text (as `edgeslm run`'s result.text)
    stream.skip.insert(stream.skip.end(), m->text.eos_ids.begin(), m->text.eos_ids.end());
    return EDGESLM_OK;
  });
  if (s != EDGESLM_OK) return s;
  m->text_eos = true;
  s = edgeslm_generate(m, stream.prompt.data(), stream.prompt.size(), cfg, edgeslm::TextStream::on_token, &stream);
  m->text_eos = false;
  if (s == EDGESLM_OK) {
    try {
      stream.flush();
    } catch (const std::exception& e) {
      return fail(m, EDGESLM_ERR_RUNTIME, std::string("internal error: ") + e.what());
    }
  }
  return s;
}

edgeslm_status edgeslm_get_stats(const edgeslm_model* m, edgeslm_stats* out) {
  if (m == nullptr || out == nullptr) return EDGESLM_ERR_INVALID_ARGUMENT;
  edgeslm_stats s = m->stats;
  s.position = m->position;
  s.peak_rss_bytes = edgeslm::peak_rss_bytes();
  const size_t size = out->struct_size == 0 ? sizeof s : std::min<size_t>(out->struct_size, sizeof s);
  s.struct_size = (uint32_t)size;
  std::memcpy(out, &s, size);
  return EDGESLM_OK;
}

}  // extern "C"
