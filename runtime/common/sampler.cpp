// sampler.cpp — see sampler.h. Cost: greedy O(V); temperature O(V) exp; top-p O(V + k log k) where k
// are the tokens above a cutoff (llama2.c's trick: tokens below (1 - p) / (V - 1) can't be in the nucleus).
#include "sampler.h"

#include <algorithm>
#include <cmath>

namespace edgeslm {

uint64_t Rng::next_u64() {  // splitmix64
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

// The first index of the largest logit, as the plain scan `if (x[i] > x[best]) best = i` gives it (NaNs never
// win; a NaN at 0 keeps 0). It runs between two decode steps (49152 logits for SmolLM2): blocks of 64 are
// reduced in 8 independent lanes (x > m ? x : m, which compilers vectorise as max) and rescanned only when
// they hold something larger than the best so far.
int64_t Sampler::argmax(const float* logits, size_t vocab) {
  if (vocab == 0) return 0;
  size_t best = 0;
  float bv = logits[0];
  if (bv != bv) return 0;                                   // NaN first: nothing compares greater
  size_t i = 1;
  for (; i + 64 <= vocab; i += 64) {
    float m[8];
    for (int k = 0; k < 8; ++k) m[k] = bv;                  // lanes start at the best: NaNs never enter
    for (size_t j = 0; j < 64; j += 8)
      for (int k = 0; k < 8; ++k) {
        const float x = logits[i + j + k];
        m[k] = x > m[k] ? x : m[k];
      }
    float bm = bv;
    for (int k = 0; k < 8; ++k) bm = m[k] > bm ? m[k] : bm;
    if (bm > bv)
      for (size_t j = i; j < i + 64; ++j)
        if (logits[j] > bv) {
          bv = logits[j];
          best = j;
        }
  }
  for (; i < vocab; ++i)
    if (logits[i] > bv) {
      bv = logits[i];
      best = i;
    }
  return (int64_t)best;
}

int64_t Sampler::sample(const float* logits, size_t vocab, float temperature, float top_p, Rng& rng) {
  if (!(temperature > 0.0f) || vocab == 0) return argmax(logits, vocab);
  probs_.resize(vocab);
  const float max_logit = logits[argmax(logits, vocab)];
  double sum = 0.0;
  for (size_t i = 0; i < vocab; ++i) {
    probs_[i] = std::exp((logits[i] - max_logit) / temperature);
    sum += probs_[i];
  }
  const double inv = 1.0 / sum;
  for (size_t i = 0; i < vocab; ++i) probs_[i] = (float)(probs_[i] * inv);

  const double r = rng.uniform();
  if (!(top_p > 0.0f) || top_p >= 1.0f) {  // plain multinomial over the whole vocabulary
    double cdf = 0.0;
    for (size_t i = 0; i < vocab; ++i) {
      cdf += probs_[i];
      if (r < cdf) return (int64_t)i;
    }
    return (int64_t)(vocab - 1);  // rounding: fall back to the last index
  }
  // Nucleus: smallest prefix (by descending prob) whose mass reaches top_p, then sample inside it.
  const float cutoff = vocab > 1 ? (1.0f - top_p) / (float)(vocab - 1) : 0.0f;
  candidates_.clear();
  for (size_t i = 0; i < vocab; ++i)
    if (probs_[i] >= cutoff) candidates_.push_back((uint32_t)i);
  std::sort(candidates_.begin(), candidates_.end(), [&](uint32_t a, uint32_t b) {
    return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
  });
  double mass = 0.0;
  size_t last = candidates_.size() - 1;
  for (size_t k = 0; k < candidates_.size(); ++k) {
    mass += probs_[candidates_[k]];
    if (mass >= top_p) { last = k; break; }
  }
  const double target = r * mass;
  double cdf = 0.0;
  for (size_t k = 0; k <= last; ++k) {
    cdf += probs_[candidates_[k]];
    if (target < cdf) return (int64_t)candidates_[k];
  }
  return (int64_t)candidates_[last];
}

}  // namespace edgeslm
