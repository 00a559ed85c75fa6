/*
 * edgeslm_jni.cpp — the JNI bridge of dev.edgeslm.NativeBridge over the C API (runtime/include/edgeslm.h).
 *
 * Built twice from this one file: by the NDK (src/main/cpp/CMakeLists.txt, arm64-v8a, in the Android
 * library) and on a Linux host against the JDK's jni.h (tests/test_android_jvm.py), where the same Kotlin
 * API drives it on the host JVM against the real runtime.
 *
 * Conventions:
 *   - natives are registered in JNI_OnLoad (RegisterNatives: a wrong signature fails at load, not at call);
 *   - a model handle is the edgeslm_model pointer as jlong; one handle is used by one thread at a time
 *     (the Kotlin worker thread), so nothing here locks;
 *   - strings cross as UTF-8 byte arrays (JNI's NewStringUTF takes "modified UTF-8": emoji would break);
 *   - every failing call throws dev.edgeslm.EdgeSlmException(message, status) with edgeslm_last_error;
 *   - generation callbacks call back into the JVM (AttachCurrentThread if the runtime ever calls from a
 *     thread the JVM does not know); the Java sink returns false to stop: the C callback then returns 1,
 *     which is how EdgeSlmModel.stop() ends a generation. An exception thrown by the sink also stops it
 *     and stays pending, so Kotlin sees it when the native method returns.
 */
#include <jni.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "edgeslm.h"

/* EDGESLM_JNI_NO_TEXT: build against a libedgeslm without the text API (edgeslm_generate_text and the
   tokenizer, added in ABI 1's "text" section): text calls then throw EDGESLM_ERR_STATE, ids still work. */
#ifdef EDGESLM_JNI_NO_TEXT
namespace notext {
edgeslm_tokenizer* get_tokenizer(edgeslm_model*) { return nullptr; }
edgeslm_status generate_text(edgeslm_model*, const char*, int, const edgeslm_gen_config*, edgeslm_text_callback,
                             edgeslm_token_callback, void*) { return EDGESLM_ERR_STATE; }
edgeslm_status encode(edgeslm_tokenizer*, const char*, size_t, int, int64_t*, size_t, size_t*) { return EDGESLM_ERR_STATE; }
edgeslm_status decode(edgeslm_tokenizer*, const int64_t*, size_t, int, char*, size_t, size_t*) { return EDGESLM_ERR_STATE; }
const char* last_error(const edgeslm_tokenizer*) { return "runtime built without the text API"; }
}  // namespace notext
#define edgeslm_get_tokenizer notext::get_tokenizer
#define edgeslm_generate_text notext::generate_text
#define edgeslm_tokenizer_encode notext::encode
#define edgeslm_tokenizer_decode notext::decode
#define edgeslm_tokenizer_last_error notext::last_error
#endif

namespace {

JavaVM* g_vm = nullptr;
jclass g_exception = nullptr;      // dev/edgeslm/EdgeSlmException (global ref)
jmethodID g_exception_ctor = nullptr;  // (String, int)
jclass g_string = nullptr;         // java/lang/String (global ref)
jmethodID g_string_ctor = nullptr; // (byte[], String charset)
jmethodID g_sink_token = nullptr;  // TokenSink.onTokenId(long) -> boolean
jmethodID g_sink_text = nullptr;   // TokenSink.onText(byte[]) -> boolean

constexpr const char* kBridge = "dev/edgeslm/NativeBridge";

jstring utf8_string(JNIEnv* env, const char* text, size_t len) {
  jbyteArray bytes = env->NewByteArray(static_cast<jsize>(len));
  if (bytes == nullptr) return nullptr;
  env->SetByteArrayRegion(bytes, 0, static_cast<jsize>(len), reinterpret_cast<const jbyte*>(text));
  jstring charset = env->NewStringUTF("UTF-8");
  auto out = static_cast<jstring>(env->NewObject(g_string, g_string_ctor, bytes, charset));
  env->DeleteLocalRef(bytes);
  env->DeleteLocalRef(charset);
  return out;
}

void throw_edgeslm(JNIEnv* env, const char* message, int status) {
  if (env->ExceptionCheck()) return;  // keep the first pending exception
  jstring msg = utf8_string(env, message, std::strlen(message));
  if (msg == nullptr) return;  // OutOfMemoryError pending
  auto err = static_cast<jthrowable>(env->NewObject(g_exception, g_exception_ctor, msg, status));
  if (err != nullptr) env->Throw(err);
  env->DeleteLocalRef(msg);
}

edgeslm_model* model_of(JNIEnv* env, jlong handle) {
  auto* m = reinterpret_cast<edgeslm_model*>(static_cast<intptr_t>(handle));
  if (m == nullptr) throw_edgeslm(env, "model handle is null (closed?)", EDGESLM_ERR_INVALID_ARGUMENT);
  return m;
}

bool check(JNIEnv* env, edgeslm_model* m, edgeslm_status s) {
  if (s == EDGESLM_OK) return true;
  throw_edgeslm(env, edgeslm_last_error(m), s);
  return false;
}

std::string bytes_to_string(JNIEnv* env, jbyteArray bytes) {
  jsize n = env->GetArrayLength(bytes);
  std::string out(static_cast<size_t>(n), '\0');
  env->GetByteArrayRegion(bytes, 0, n, reinterpret_cast<jbyte*>(&out[0]));
  return out;
}

jbyteArray to_bytes(JNIEnv* env, const char* data, size_t len) {
  jbyteArray out = env->NewByteArray(static_cast<jsize>(len));
  if (out != nullptr) env->SetByteArrayRegion(out, 0, static_cast<jsize>(len), reinterpret_cast<const jbyte*>(data));
  return out;
}

jlongArray to_long_array(JNIEnv* env, const std::vector<int64_t>& v) {
  jlongArray out = env->NewLongArray(static_cast<jsize>(v.size()));
  if (out != nullptr && !v.empty())
    env->SetLongArrayRegion(out, 0, static_cast<jsize>(v.size()), reinterpret_cast<const jlong*>(v.data()));
  return out;
}

std::vector<int64_t> from_long_array(JNIEnv* env, jlongArray a) {
  std::vector<int64_t> v(static_cast<size_t>(env->GetArrayLength(a)));
  env->GetLongArrayRegion(a, 0, static_cast<jsize>(v.size()), reinterpret_cast<jlong*>(v.data()));
  return v;
}

/* A JNIEnv for the current thread: the caller's when the runtime calls back on it (today's runtime does:
   callbacks run inside edgeslm_generate), else attached for the duration of one callback. */
class ThreadEnv {
 public:
  ThreadEnv() {
    if (g_vm->GetEnv(reinterpret_cast<void**>(&env_), JNI_VERSION_1_6) == JNI_EDETACHED) {
#ifdef __ANDROID__
      attached_ = g_vm->AttachCurrentThread(&env_, nullptr) == JNI_OK;
#else
      attached_ = g_vm->AttachCurrentThread(reinterpret_cast<void**>(&env_), nullptr) == JNI_OK;
#endif
      if (!attached_) env_ = nullptr;
    }
  }
  ~ThreadEnv() {
    if (attached_) g_vm->DetachCurrentThread();
  }
  JNIEnv* get() const { return env_; }

 private:
  JNIEnv* env_ = nullptr;
  bool attached_ = false;
};

/* The user pointer of a generation: a global ref to the Java sink, so a callback on any thread may use it. */
struct Sink {
  Sink(JNIEnv* env, jobject local) : env_(env), sink(env->NewGlobalRef(local)) {}
  ~Sink() { env_->DeleteGlobalRef(sink); }
  JNIEnv* env_;
  jobject sink;
};

int on_token(int64_t token, void* user) {
  ThreadEnv te;
  JNIEnv* env = te.get();
  if (env == nullptr) return 1;
  auto* s = static_cast<Sink*>(user);
  jboolean go = env->CallBooleanMethod(s->sink, g_sink_token, static_cast<jlong>(token));
  if (env->ExceptionCheck()) return 1;  // stays pending: rethrown in Kotlin after generate returns
  return go ? 0 : 1;
}

int on_text(const char* text, size_t len, void* user) {
  ThreadEnv te;
  JNIEnv* env = te.get();
  if (env == nullptr) return 1;
  auto* s = static_cast<Sink*>(user);
  jbyteArray piece = to_bytes(env, text, len);
  if (piece == nullptr) return 1;
  jboolean go = env->CallBooleanMethod(s->sink, g_sink_text, piece);
  env->DeleteLocalRef(piece);  // one per token: never let a long generation fill the local ref table
  if (env->ExceptionCheck()) return 1;
  return go ? 0 : 1;
}

edgeslm_gen_config make_config(jint max_new_tokens, jfloat temperature, jfloat top_p, jlong seed,
                               jboolean stop_at_eos) {
  edgeslm_gen_config cfg;
  edgeslm_gen_config_init(&cfg);
  cfg.max_new_tokens = max_new_tokens;
  cfg.temperature = temperature;
  cfg.top_p = top_p;
  cfg.seed = static_cast<uint64_t>(seed);
  cfg.stop_at_eos = stop_at_eos ? 1 : 0;
  return cfg;
}

/* ---- natives of dev.edgeslm.NativeBridge ---- */

jstring native_version(JNIEnv* env, jclass) {
  const char* v = edgeslm_version();
  return utf8_string(env, v, std::strlen(v));
}

jlong native_open(JNIEnv* env, jclass, jbyteArray dir, jint threads) {
  std::string path = bytes_to_string(env, dir);
  edgeslm_options opts;
  edgeslm_options_init(&opts);
  opts.threads = threads;
  edgeslm_model* m = nullptr;
  edgeslm_status s = edgeslm_open(path.c_str(), &opts, &m);
  if (s != EDGESLM_OK) {
    throw_edgeslm(env, edgeslm_last_error(nullptr), s);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(m));
}

void native_close(JNIEnv*, jclass, jlong handle) {
  edgeslm_close(reinterpret_cast<edgeslm_model*>(static_cast<intptr_t>(handle)));
}

jlongArray native_metadata(JNIEnv* env, jclass, jlong handle) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return nullptr;
  jlong meta[4] = {edgeslm_vocab_size(m), edgeslm_max_seq_len(m), edgeslm_bos_id(m),
                   edgeslm_get_tokenizer(m) != nullptr ? 1 : 0};
  jlongArray out = env->NewLongArray(4);
  if (out != nullptr) env->SetLongArrayRegion(out, 0, 4, meta);
  return out;
}

jlongArray native_eos_ids(JNIEnv* env, jclass, jlong handle) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return nullptr;
  std::vector<int64_t> ids(edgeslm_eos_ids(m, nullptr, 0));
  if (!ids.empty()) edgeslm_eos_ids(m, ids.data(), ids.size());
  return to_long_array(env, ids);
}

jdoubleArray native_stats(JNIEnv* env, jclass, jlong handle) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return nullptr;
  edgeslm_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (!check(env, m, edgeslm_get_stats(m, &st))) return nullptr;
  // Layout read by Stats.fromNative: 6 doubles, 6 int64s (exact in a double below 2^53), reason, threads,
  // weights_huge_page_bytes.
  jdouble v[15] = {st.model_load_ms, st.ttft_ms, st.prefill_ms, st.prefill_tokens_per_s, st.decode_ms,
                   st.decode_tokens_per_s, static_cast<double>(st.prompt_tokens),
                   static_cast<double>(st.generated_tokens), static_cast<double>(st.position),
                   static_cast<double>(st.planned_arena_bytes), static_cast<double>(st.peak_rss_bytes),
                   static_cast<double>(st.peak_heap_bytes), static_cast<double>(st.stop_reason),
                   static_cast<double>(st.threads), static_cast<double>(st.weights_huge_page_bytes)};
  jdoubleArray out = env->NewDoubleArray(15);
  if (out != nullptr) env->SetDoubleArrayRegion(out, 0, 15, v);
  return out;
}

void native_reset(JNIEnv* env, jclass, jlong handle) {
  edgeslm_model* m = model_of(env, handle);
  if (m != nullptr) check(env, m, edgeslm_reset(m));
}

void native_generate_ids(JNIEnv* env, jclass, jlong handle, jlongArray prompt, jint max_new_tokens,
                         jfloat temperature, jfloat top_p, jlong seed, jboolean stop_at_eos, jobject sink) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return;
  std::vector<int64_t> ids = from_long_array(env, prompt);
  edgeslm_gen_config cfg = make_config(max_new_tokens, temperature, top_p, seed, stop_at_eos);
  if (!check(env, m, edgeslm_reset(m))) return;   // a fresh sequence, like generate_text
  Sink s(env, sink);
  edgeslm_status st = edgeslm_generate(m, ids.data(), ids.size(), &cfg, on_token, &s);
  if (env->ExceptionCheck()) return;               // the sink threw: let Kotlin see that exception
  check(env, m, st);
}

void native_generate_text(JNIEnv* env, jclass, jlong handle, jbyteArray prompt, jboolean chat,
                          jint max_new_tokens, jfloat temperature, jfloat top_p, jlong seed,
                          jboolean stop_at_eos, jobject sink) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return;
  std::string text = bytes_to_string(env, prompt);
  edgeslm_gen_config cfg = make_config(max_new_tokens, temperature, top_p, seed, stop_at_eos);
  Sink s(env, sink);
  edgeslm_status st = edgeslm_generate_text(m, text.c_str(), chat ? 1 : 0, &cfg, on_text, on_token, &s);
  if (env->ExceptionCheck()) return;
  check(env, m, st);
}

/* The bundle's tokenizer of a handle, or nullptr with an EdgeSlmException pending. */
edgeslm_tokenizer* tokenizer_of(JNIEnv* env, jlong handle) {
  edgeslm_model* m = model_of(env, handle);
  if (m == nullptr) return nullptr;
  edgeslm_tokenizer* tok = edgeslm_get_tokenizer(m);
  if (tok == nullptr) {
    std::string msg = std::string("bundle has no usable tokenizer: ") + edgeslm_last_error(m);
    throw_edgeslm(env, msg.c_str(), EDGESLM_ERR_STATE);
  }
  return tok;
}

jlongArray native_encode(JNIEnv* env, jclass, jlong handle, jbyteArray text, jboolean add_special) {
  edgeslm_tokenizer* tok = tokenizer_of(env, handle);
  if (tok == nullptr) return nullptr;
  std::string s = bytes_to_string(env, text);
  size_t count = 0;  // first call sizes the buffer
  edgeslm_status st = edgeslm_tokenizer_encode(tok, s.data(), s.size(), add_special ? 1 : 0, nullptr, 0, &count);
  std::vector<int64_t> ids(count);
  if (st == EDGESLM_OK && count > 0)
    st = edgeslm_tokenizer_encode(tok, s.data(), s.size(), add_special ? 1 : 0, ids.data(), ids.size(), &count);
  if (st != EDGESLM_OK) {
    throw_edgeslm(env, edgeslm_tokenizer_last_error(tok), st);
    return nullptr;
  }
  return to_long_array(env, ids);
}

jbyteArray native_decode(JNIEnv* env, jclass, jlong handle, jlongArray ids, jboolean skip_special) {
  edgeslm_tokenizer* tok = tokenizer_of(env, handle);
  if (tok == nullptr) return nullptr;
  std::vector<int64_t> v = from_long_array(env, ids);
  size_t size = 0;  // first call sizes the buffer
  edgeslm_status st = edgeslm_tokenizer_decode(tok, v.data(), v.size(), skip_special ? 1 : 0, nullptr, 0, &size);
  std::string text(size + 1, '\0');
  if (st == EDGESLM_OK)
    st = edgeslm_tokenizer_decode(tok, v.data(), v.size(), skip_special ? 1 : 0, &text[0], text.size(), &size);
  if (st != EDGESLM_OK) {
    throw_edgeslm(env, edgeslm_tokenizer_last_error(tok), st);
    return nullptr;
  }
  return to_bytes(env, text.data(), size);
}

const JNINativeMethod kMethods[] = {
    {const_cast<char*>("version"), const_cast<char*>("()Ljava/lang/String;"), reinterpret_cast<void*>(native_version)},
    {const_cast<char*>("open"), const_cast<char*>("([BI)J"), reinterpret_cast<void*>(native_open)},
    {const_cast<char*>("close"), const_cast<char*>("(J)V"), reinterpret_cast<void*>(native_close)},
    {const_cast<char*>("metadata"), const_cast<char*>("(J)[J"), reinterpret_cast<void*>(native_metadata)},
    {const_cast<char*>("eosIds"), const_cast<char*>("(J)[J"), reinterpret_cast<void*>(native_eos_ids)},
    {const_cast<char*>("stats"), const_cast<char*>("(J)[D"), reinterpret_cast<void*>(native_stats)},
    {const_cast<char*>("reset"), const_cast<char*>("(J)V"), reinterpret_cast<void*>(native_reset)},
    {const_cast<char*>("generateIds"), const_cast<char*>("(J[JIFFJZLdev/edgeslm/TokenSink;)V"),
     reinterpret_cast<void*>(native_generate_ids)},
    {const_cast<char*>("generateText"), const_cast<char*>("(J[BZIFFJZLdev/edgeslm/TokenSink;)V"),
     reinterpret_cast<void*>(native_generate_text)},
    {const_cast<char*>("encode"), const_cast<char*>("(J[BZ)[J"), reinterpret_cast<void*>(native_encode)},
    {const_cast<char*>("decode"), const_cast<char*>("(J[JZ)[B"), reinterpret_cast<void*>(native_decode)},
};

jclass global_class(JNIEnv* env, const char* name) {
  jclass local = env->FindClass(name);
  if (local == nullptr) return nullptr;
  auto global = static_cast<jclass>(env->NewGlobalRef(local));
  env->DeleteLocalRef(local);
  return global;
}

}  // namespace

extern "C" JNIEXPORT jint JNI_OnLoad(JavaVM* vm, void*) {
  g_vm = vm;
  JNIEnv* env = nullptr;
  if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  g_exception = global_class(env, "dev/edgeslm/EdgeSlmException");
  g_string = global_class(env, "java/lang/String");
  jclass sink = env->FindClass("dev/edgeslm/TokenSink");
  jclass bridge = env->FindClass(kBridge);
  if (g_exception == nullptr || g_string == nullptr || sink == nullptr || bridge == nullptr) return JNI_ERR;
  g_exception_ctor = env->GetMethodID(g_exception, "<init>", "(Ljava/lang/String;I)V");
  g_string_ctor = env->GetMethodID(g_string, "<init>", "([BLjava/lang/String;)V");
  g_sink_token = env->GetMethodID(sink, "onTokenId", "(J)Z");
  g_sink_text = env->GetMethodID(sink, "onText", "([B)Z");
  if (!g_exception_ctor || !g_string_ctor || !g_sink_token || !g_sink_text) return JNI_ERR;
  if (env->RegisterNatives(bridge, kMethods, sizeof kMethods / sizeof kMethods[0]) != JNI_OK) return JNI_ERR;
  env->DeleteLocalRef(sink);
  env->DeleteLocalRef(bridge);
  return JNI_VERSION_1_6;
}
