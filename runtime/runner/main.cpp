// edgeslm-runner — run a bundle through the C API and print ONE JSON object of metrics on stdout.
//
//   edgeslm-runner BUNDLE --tokens 1,2,3 [--max-new-tokens N] [--reps R] [--warmup W] [--threads N]
//                  [--temperature T] [--top-p P] [--seed S] [--ignore-eos]
//   edgeslm-runner BUNDLE --prompt TEXT [--chat] [same options]
//     text in: the bundle's tokenizer.json through the runtime's C++ tokenizer (edgeslm_generate_text;
//     --chat wraps TEXT in the bundle's chat prompt, as `edgeslm run --chat`); the JSON gains "text".
//
// Each rep: reset -> generate(prompt) (prefill in one forward, then one forward per new token).
// Output (schema "edgeslm.runner/1"): model_load_ms, ttft_ms / prefill_tokens_per_s /
// decode_tokens_per_s as {mean, std, median, min, max, samples[R]}, peak_rss_bytes (getrusage; qemu's
// own under qemu-user), peak_heap_bytes (guest mallinfo2), planned_arena_bytes, weights_huge_page_bytes
// (model bytes in transparent huge pages; EDGESLM_WEIGHT_PAGES=huge|mmap|auto), prompt_tokens,
// generated_tokens + generated (ids of the first rep), stop_reason, backend, threads, ...
// Errors: stdout {"error": "...", "status": "EDGESLM_ERR_..."}, the message on one stderr line, and
// exit code 2 for a bad command line, 1 for a model / runtime error. Exit 0 only with metrics.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "edgeslm.h"

namespace {

const char* kUsage =
    "usage: edgeslm-runner BUNDLE (--tokens 1,2,3 | --prompt TEXT [--chat]) [--max-new-tokens N] [--reps R]\n"
    "                      [--warmup W] [--threads N] [--temperature T] [--top-p P] [--seed S] [--ignore-eos]";

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (ch < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", ch); o += b; }
        else o += (char)ch;
    }
  }
  return o + "\"";
}

int die(int code, const std::string& status, const std::string& msg) {
  std::printf("{\"error\": %s, \"status\": %s}\n", json_str(msg).c_str(), json_str(status).c_str());
  std::fprintf(stderr, "edgeslm-runner: %s%s\n", msg.c_str(), code == 2 ? " (see --help)" : "");
  return code;
}

// Summary of per-rep samples: {"mean", "std" (population), "median", "min", "max", "samples"}.
std::string summary(std::vector<double> xs) {
  std::string samples = "[";
  double sum = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    char b[64]; std::snprintf(b, sizeof b, "%s%.6g", i ? ", " : "", xs[i]);
    samples += b; sum += xs[i];
  }
  samples += "]";
  const double n = (double)xs.size(), mean = xs.empty() ? 0 : sum / n;
  double var = 0;
  for (double x : xs) var += (x - mean) * (x - mean);
  std::sort(xs.begin(), xs.end());
  const double median = xs.empty() ? 0 : (xs.size() % 2 ? xs[xs.size() / 2]
                                                         : 0.5 * (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]));
  char b[256];
  std::snprintf(b, sizeof b, "{\"mean\": %.6g, \"std\": %.6g, \"median\": %.6g, \"min\": %.6g, \"max\": %.6g, ",
                mean, xs.empty() ? 0 : std::sqrt(var / n), median, xs.empty() ? 0 : xs.front(),
                xs.empty() ? 0 : xs.back());
  return std::string(b) + "\"samples\": " + samples + "}";
}

bool parse_i64(const char* s, long long* out) {
  char* end = nullptr;
  *out = std::strtoll(s, &end, 10);
  return end != s && *end == '\0';
}

bool parse_f(const char* s, float* out) {
  char* end = nullptr;
  *out = std::strtof(s, &end);
  return end != s && *end == '\0';
}

const char* stop_name(int32_t r) {
  static const char* names[] = {"none", "max_tokens", "eos", "callback", "context"};
  return r >= 0 && r <= 4 ? names[r] : "unknown";
}

struct Collect {
  std::vector<int64_t>* out;
  std::string* text;
};
int on_text(const char* piece, size_t len, void* user) {
  auto* c = static_cast<Collect*>(user);
  if (c->text) c->text->append(piece, len);
  return 0;
}
int on_token(int64_t token, void* user) {
  auto* c = static_cast<Collect*>(user);
  if (c->out) c->out->push_back(token);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* bundle = nullptr;
  const char* text_prompt = nullptr;  // --prompt: text through the C++ tokenizer
  bool chat = false;
  std::vector<int64_t> prompt;
  long long max_new = 32, reps = 1, warmup = 0, threads = 0, seed = 0;
  edgeslm_gen_config cfg;
  edgeslm_gen_config_init(&cfg);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char** v) { return i + 1 < argc ? (*v = argv[++i], true) : false; };
    const char* v = nullptr;
    if (a == "-h" || a == "--help") { std::puts(kUsage); return 0; }
    if (a == "--ignore-eos") { cfg.stop_at_eos = 0; continue; }
    if (a == "--chat") { chat = true; continue; }
    if (a.rfind("--", 0) == 0 && !value(&v)) return die(2, "usage", a + " needs a value");
    bool ok = true;
    if (a == "--tokens") {
      std::string list = v;
      size_t start = 0;
      while (ok && start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        long long t;
        ok = parse_i64(item.c_str(), &t);
        if (ok) prompt.push_back(t);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a == "--prompt") text_prompt = v;
    else if (a == "--max-new-tokens") ok = parse_i64(v, &max_new) && max_new >= 0 && max_new < (1 << 30);
    else if (a == "--reps") ok = parse_i64(v, &reps) && reps >= 1;
    else if (a == "--warmup") ok = parse_i64(v, &warmup) && warmup >= 0;
    else if (a == "--threads") ok = parse_i64(v, &threads) && threads >= 0;
    else if (a == "--seed") ok = parse_i64(v, &seed);
    else if (a == "--temperature") ok = parse_f(v, &cfg.temperature) && cfg.temperature >= 0;
    else if (a == "--top-p") ok = parse_f(v, &cfg.top_p) && cfg.top_p > 0 && cfg.top_p <= 1;
    else if (a.rfind("--", 0) == 0) return die(2, "usage", "unknown option " + a);
    else if (bundle == nullptr) bundle = argv[i];
    else return die(2, "usage", "unexpected argument " + a);
    if (!ok) return die(2, "usage", "bad value for " + a + ": " + v);
  }
  if (bundle == nullptr) return die(2, "usage", "no bundle given");
  if (prompt.empty() == (text_prompt == nullptr))
    return die(2, "usage", "give either --tokens (comma-separated token ids) or --prompt TEXT");
  if (chat && text_prompt == nullptr) return die(2, "usage", "--chat needs --prompt TEXT");
  cfg.max_new_tokens = (int32_t)max_new;
  cfg.seed = (uint64_t)seed;

  edgeslm_options opts;
  edgeslm_options_init(&opts);
  opts.threads = (int32_t)threads;
  edgeslm_model* model = nullptr;
  edgeslm_status s = edgeslm_open(bundle, &opts, &model);
  if (s != EDGESLM_OK) return die(1, edgeslm_status_string(s), edgeslm_last_error(nullptr));

  edgeslm_stats st{};
  st.struct_size = sizeof st;
  edgeslm_get_stats(model, &st);
  const double load_ms = st.model_load_ms;

  std::vector<double> ttft, prefill, decode;
  std::vector<int64_t> first_tokens;
  std::string first_text;
  int64_t prompt_tokens = (int64_t)prompt.size();
  int64_t first_generated = 0;
  int32_t first_stop = 0;
  for (long long r = 0; r < warmup + reps; ++r) {
    Collect collect{r == warmup ? &first_tokens : nullptr, r == warmup ? &first_text : nullptr};
    edgeslm_reset(model);
    if (text_prompt != nullptr)
      s = edgeslm_generate_text(model, text_prompt, chat ? 1 : 0, &cfg, on_text, on_token, &collect);
    else
      s = edgeslm_generate(model, prompt.data(), prompt.size(), &cfg, on_token, &collect);
    if (s != EDGESLM_OK) {
      std::string msg = edgeslm_last_error(model);
      edgeslm_close(model);
      return die(1, edgeslm_status_string(s), msg);
    }
    if (r < warmup) continue;
    edgeslm_get_stats(model, &st);
    ttft.push_back(st.ttft_ms);
    prefill.push_back(st.prefill_tokens_per_s);
    decode.push_back(st.decode_tokens_per_s);
    if (r == warmup) { first_generated = st.generated_tokens; first_stop = st.stop_reason; prompt_tokens = st.prompt_tokens; }
  }
  edgeslm_get_stats(model, &st);

  std::string gen = "[";
  for (size_t i = 0; i < first_tokens.size(); ++i) gen += (i ? ", " : "") + std::to_string(first_tokens[i]);
  gen += "]";
  std::printf("{\"schema\": \"edgeslm.runner/1\", \"edgeslm_version\": %s, \"backend\": %s, \"threads\": %d,\n",
              json_str(edgeslm_version()).c_str(), json_str(edgeslm_backend_name(model)).c_str(), st.threads);
  std::printf(" \"bundle\": %s, \"vocab_size\": %lld, \"max_seq_len\": %lld,\n", json_str(bundle).c_str(),
              (long long)edgeslm_vocab_size(model), (long long)edgeslm_max_seq_len(model));
  std::printf(" \"reps\": %lld, \"warmup\": %lld, \"temperature\": %g, \"top_p\": %g, \"seed\": %lld,\n", reps,
              warmup, cfg.temperature, cfg.top_p, seed);
  std::printf(" \"model_load_ms\": %.6g,\n \"ttft_ms\": %s,\n", load_ms, summary(ttft).c_str());
  std::printf(" \"prefill_tokens_per_s\": %s,\n \"decode_tokens_per_s\": %s,\n", summary(prefill).c_str(),
              summary(decode).c_str());
  std::printf(" \"peak_rss_bytes\": %lld, \"peak_heap_bytes\": %lld, \"planned_arena_bytes\": %lld,\n",
              (long long)st.peak_rss_bytes, (long long)st.peak_heap_bytes, (long long)st.planned_arena_bytes);
  std::printf(" \"weights_huge_page_bytes\": %lld,\n", (long long)st.weights_huge_page_bytes);
  std::printf(" \"prompt_tokens\": %lld, \"max_new_tokens\": %lld, \"generated_tokens\": %lld, \"stop_reason\": %s,\n",
              (long long)prompt_tokens, max_new, (long long)first_generated, json_str(stop_name(first_stop)).c_str());
  if (text_prompt != nullptr) std::printf(" \"text\": %s,\n", json_str(first_text).c_str());
  std::printf(" \"generated\": %s}\n", gen.c_str());
  edgeslm_close(model);
  return 0;
}
