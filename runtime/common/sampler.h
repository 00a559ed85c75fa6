// sampler.h — next-token choice from last-position logits [V] float32: greedy, temperature, top-p.
// Deterministic for a seed on every platform: own RNG (splitmix64), no <random> distributions
// (their output is implementation-defined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgeslm {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  void seed(uint64_t s) { state_ = s; }
  uint64_t next_u64();
  double uniform();  // [0, 1), 53 random bits
 private:
  uint64_t state_;
};

class Sampler {
 public:
  // temperature <= 0 -> argmax (lowest index on ties). top_p in (0, 1]; >= 1 disables nucleus cut.
  int64_t sample(const float* logits, size_t vocab, float temperature, float top_p, Rng& rng);
  static int64_t argmax(const float* logits, size_t vocab);

 private:
  std::vector<float> probs_;            // [V] softmax(logits / temperature)
  std::vector<uint32_t> candidates_;    // indices kept for the nucleus (sorted by prob, descending)
};

}  // namespace edgeslm
