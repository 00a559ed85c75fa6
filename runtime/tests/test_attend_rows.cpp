// runtime/kernels/attend_row.h against a double-precision reference: head sizes that exercise the
// 32-, 16-, 8- and 1-component paths, 1..4 rows per call, lengths around the 8- and 16-key blocks,
// sliding-window bands with -inf holes (starting inside a key tile), soft-capping; float32, float16 and
// int8 caches (a scale per key and value row in the rows' extra bytes; integer scores with the query rows
// quantized, each dot product variant the CPU has); K key-tiled and transposed; one span and split spans (not on tile boundaries) merged
// (merge_spans). Also vec8.h's float16 conversion for all 65536 bit patterns. Prints "all checks passed"
// (run by tests/test_sdpa_kernel.py).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels/attend_row.h"

using namespace edgeslm_kernels;

namespace {

// IEEE binary16 bits -> double, from the definition (the reference for half_to_float / load8).
double half_reference(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(man, -24) : exp == 31 ? (man ? NAN : INFINITY) : std::ldexp(1024 + man, exp - 25);
  return sign ? -v : v;
}

// float -> nearest binary16 bits (normal range; what the test's caches hold)
uint16_t to_half(float x) {
  uint16_t best = 0;
  double err = INFINITY;
  const int sign = x < 0;
  for (int e = 1; e < 31; ++e) {      // coarse: exponent from the value, then the two nearest mantissas
    const double lo = std::ldexp(1024, e - 25), hi = std::ldexp(2047, e - 25);
    const double a = std::fabs(x);
    if (a < lo && e > 1) continue;
    if (a > hi && e < 30) continue;
    const double man = std::nearbyint(a / std::ldexp(1.0, e - 25)) - 1024;
    for (double mm : {std::floor(man), std::ceil(man)}) {
      if (mm < 0 || mm > 1023) continue;
      const uint16_t h = static_cast<uint16_t>((sign << 15) | (e << 10) | static_cast<int>(mm));
      const double d = std::fabs(half_reference(h) - x);
      if (d < err) { err = d; best = h; }
    }
    break;
  }
  return best;
}

#if defined(EDGESLM_X86_AVX2)
// F16C instruction; stores (an AVX function must not return a v8f to a baseline caller: ABI)
EDGESLM_X86_AVX2 void load8_f16c(const uint16_t* p, float* out) { store8(out, load8_kv<true>(p)); }
#endif

bool check_half_conversion() {
  for (uint32_t h = 0; h < 65536; h += 8) {
    uint16_t bits[8];
    for (int i = 0; i < 8; ++i) bits[i] = static_cast<uint16_t>(h + i);
    const v8f v = load8_kv<false>(bits);
    float hw[8];
    store8(hw, v);
#if defined(EDGESLM_X86_AVX2)
    if (cpu_has_avx2()) load8_f16c(bits, hw);
#endif
    for (int i = 0; i < 8; ++i) {
      const double want = half_reference(bits[i]);
      const float got1 = half_to_float(bits[i]), got8 = v[i], goth = hw[i];
      const bool nan = std::isnan(want);
      if (nan ? !(std::isnan(got1) && std::isnan(got8) && std::isnan(goth))
              : !(got1 == want && got8 == want && goth == want)) {
        std::printf("FAIL half 0x%04x: scalar %g vector %g f16c %g want %g\n", bits[i], got1, got8, goth, want);
        return false;
      }
    }
  }
  return true;
}

template <typename KV>
using SpanFn = void (*)(const float* const*, float* const*, int, const KV*, const KV*, const float*, int64_t,
                        int64_t, int64_t, int64_t, float, float*, SpanStats*, bool);

// Runs m rows over [0, L) as `spans` spans (1: attend_rows), returns the worst error vs double or -1. span:
// a variant of attend_span to call instead of the run-time choice (int8: each score dot product variant).
template <typename KV>
double run_case(int64_t D, int64_t L, int m, int variant, int spans, bool tiled, std::mt19937& gen,
                SpanFn<KV> span = nullptr, const char* name = "") {
  std::normal_distribution<float> normal;
  const int64_t S = (L + kKeyTile + 15) / 16 * 16;   // cache slots: a multiple of 16 past L (tiles past L are read)
  const float softcap = variant == 2 ? 5.0f : 0.0f;
  std::vector<float> q(m * D), k(D * S), v(S * D), mask(S), out(m * D, 7.0f),
      scratch(kScratchRows * (S + kScratchPad));
  for (auto& x : q) x = normal(gen) / 4;
  if constexpr (sizeof(KV) == 1) {                 // int8 caches quantize the query rows: the reference sees them so
    int8_t q8[kMaxInt8HeadDim];
    for (int i = 0; i < m; ++i) {
      const float qs = quantize_query(q.data() + i * D, D, q8);
      for (int64_t d = 0; d < D; ++d) q[i * D + d] = q8[d] * qs;
    }
  }
  for (auto& x : k) x = normal(gen);
  for (auto& x : v) x = normal(gen);
  constexpr int64_t P = CacheRows<KV>::kScale;   // int8: 4 scale bytes per key and value row
  std::vector<KV> kc((D + P) * S), vc(S * (D + P));   // k [D, S] as the reference reads it -> kc in the kernel's layout
  for (int64_t j = 0; j < S && P > 0; ++j) {     // int8: key j and value row j quantized with their own scale
    float ka = 0.0f, va = 0.0f;
    for (int64_t d = 0; d < D; ++d) {
      ka = std::max(ka, std::fabs(k[d * S + j]));
      va = std::max(va, std::fabs(v[j * D + d]));
    }
    const float ks = ka / 127, vs = va / 127;
    KV* tile = kc.data() + (j / kKeyTile) * kKeyTile * (D + P);
    for (int64_t d = 0; d < D; ++d) {
      const auto qk = static_cast<int8_t>(std::nearbyint(k[d * S + j] / ks));
      const auto qv = static_cast<int8_t>(std::nearbyint(v[j * D + d] / vs));
      tile[int8_k_offset(d, j % kKeyTile)] = static_cast<KV>(qk);
      vc[j * (D + P) + d] = static_cast<KV>(qv);
      k[d * S + j] = qk * ks;                                // the reference sees the stored values
      v[j * D + d] = qv * vs;
    }
    std::memcpy(tile + D * kKeyTile + 4 * (j % kKeyTile), &ks, sizeof ks);
    std::memcpy(vc.data() + j * (D + P) + D, &vs, sizeof vs);
  }
  for (size_t i = 0; i < k.size() && P == 0; ++i) {
    const int64_t d = static_cast<int64_t>(i) / S, j = static_cast<int64_t>(i) % S;
    KV& kx = kc[k_offset(d, j, D, S, tiled)];
    if constexpr (sizeof(KV) == 2) {
      kx = to_half(k[i]);
      vc[i] = to_half(v[i]);
      k[i] = static_cast<float>(half_reference(kx));        // the reference sees the stored values
      v[i] = static_cast<float>(half_reference(vc[i]));
    } else {
      kx = k[i];
      vc[i] = v[i];
    }
  }
  for (int64_t j = 0; j < S; ++j) {
    bool visible = j < L;
    if (variant == 1) visible = visible && j > L - 6 && j != L - 3;   // band [L-5, L-1] minus a hole
    mask[j] = visible ? 0.0f : -INFINITY;
  }
  const float* qs[4];
  float* os[4];
  for (int i = 0; i < m; ++i) {
    qs[i] = q.data() + i * D;
    os[i] = out.data() + i * D;
  }
  if (spans == 1 && !span) {
    attend_rows(qs, os, m, kc.data(), vc.data(), mask.data(), D, S, L, softcap, scratch.data(), tiled);
  } else {                                          // the kernel's split-K path: spans, then merge
    std::vector<float> part(spans * m * D);
    std::vector<SpanStats> st(spans * m);
    for (int c = 0; c < spans; ++c) {
      float* acc[4];
      for (int i = 0; i < m; ++i) acc[i] = part.data() + (c * m + i) * D;
      (span ? span : attend_span<KV>)(qs, acc, m, kc.data(), vc.data(), mask.data(), D, S, L * c / spans,
                                      L * (c + 1) / spans, softcap, scratch.data(), st.data() + c * m, tiled);
    }
    for (int i = 0; i < m; ++i) {
      const float* accs[8];
      SpanStats sti[8];
      for (int c = 0; c < spans; ++c) {
        accs[c] = part.data() + (c * m + i) * D;
        sti[c] = st[c * m + i];
      }
      merge_spans(accs, sti, spans, D, os[i]);
    }
  }
  double worst = 0.0;
  for (int i = 0; i < m; ++i) {
    std::vector<double> p(L, 0.0);
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < L; ++j) {
      if (mask[j] != 0.0f) continue;
      double s = 0.0;
      for (int64_t d = 0; d < D; ++d) s += (double)q[i * D + d] * k[d * S + j];
      if (softcap > 0) s = std::tanh(s / softcap) * softcap;
      p[j] = s;
      mx = std::max(mx, s);
    }
    for (int64_t j = 0; j < L; ++j) {
      p[j] = mask[j] == 0.0f ? std::exp(p[j] - mx) : 0.0;
      sum += p[j];
    }
    for (int64_t d = 0; d < D; ++d) {
      double want = 0.0;
      for (int64_t j = 0; j < L; ++j) want += p[j] / sum * v[j * D + d];
      const double err = std::fabs(want - out[i * D + d]);
      worst = std::max(worst, err);
      if (!(err < 2e-5)) {
        std::printf("FAIL %s%s %s D=%ld L=%ld m=%d variant=%d spans=%d row=%d d=%ld: got %.7f want %.7f\n",
                    sizeof(KV) == 2 ? "f16" : sizeof(KV) == 1 ? "int8" : "f32", name, tiled ? "tiled" : "transposed",
                    (long)D, (long)L, m, variant,
                    spans, i, (long)d,
                    out[i * D + d], want);
        return -1.0;
      }
    }
  }
  return worst;
}

}  // namespace

int main() {
  if (!check_half_conversion()) return 1;
  // int8 caches: the run-time choice, then every score dot product variant this CPU can run (attend_int8.h)
  std::vector<std::pair<SpanFn<int8_t>, const char*>> int8_spans = {{nullptr, ""}, {attend_span_base<int8_t>, " scalar"}};
#if defined(EDGESLM_X86_AVX2)
  if (cpu_has_avx2()) int8_spans.push_back({attend_span_avx2<int8_t>, " avx2"});
  if (cpu_has_avx512vnni()) int8_spans.push_back({attend_span_vnni<int8_t>, " vnni"});
#endif
#if defined(EDGESLM_QL_ARM)
  if (cpu_has_dotprod()) int8_spans.push_back({attend_span_sdot<int8_t>, " sdot"});
#endif
  std::mt19937 gen(1);
  double worst = 0.0;
  int cases = 0;
  for (int layout = 0; layout < 5; ++layout) {   // float32/float16 x transposed/tiled K; 4: int8 tiled
    const bool half = layout & 1, tiled = layout & 2 || layout == 4;
    for (int64_t D : {16, 40, 64, 80, 128}) {
      for (int64_t L : {1, 7, 8, 9, 17, 148, 600}) {
        for (int m = 1; m <= 4; ++m) {
          for (int variant = 0; variant < 3; ++variant) {   // 0 causal prefix, 1 window band + hole, 2 softcap
            for (int spans : {1, 3, 8}) {
              if (spans > L) continue;
              for (const auto& [span, name] : int8_spans) {
                if (layout != 4 && span) break;
                const double w = layout == 4 ? run_case<int8_t>(D, L, m, variant, spans, tiled, gen, span, name)
                                 : half ? run_case<uint16_t>(D, L, m, variant, spans, tiled, gen)
                                        : run_case<float>(D, L, m, variant, spans, tiled, gen);
                if (w < 0) return 1;
                worst = std::max(worst, w);
                ++cases;
              }
            }
          }
        }
      }
    }
  }
  std::printf("int8 score variants:");
  for (const auto& [span, name] : int8_spans) std::printf("%s", span ? name : " run-time choice");
  std::printf("\n65536 float16 patterns, %d attention cases, worst abs error %.3g\nall checks passed\n", cases, worst);
  return 0;
}
