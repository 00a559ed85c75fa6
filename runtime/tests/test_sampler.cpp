// Sampler::argmax (runtime/common/sampler.cpp: 8-lane blocks of 64, rescanned only when they beat the best)
// against the plain scan it replaces: random logits with ties, NaNs, infinities, the maximum at the start,
// inside a block, on a block edge and in the tail, for vocabularies around the 64-wide blocks and SmolLM2's.
// Prints "all checks passed" (tests/test_sampler.py runs it on the host and under qemu-aarch64).
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "../common/sampler.h"

static int64_t plain_argmax(const float* x, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return (int64_t)best;
}

int main() {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  int checks = 0, failures = 0;
  for (size_t vocab : {1, 2, 63, 64, 65, 66, 127, 128, 129, 200, 1000, 49152}) {
    for (int trial = 0; trial < 60; ++trial) {
      std::vector<float> x(vocab);
      for (auto& v : x) v = normal(gen);
      const int kind = trial % 10;
      if (kind == 1) for (auto& v : x) v = std::round(v);                 // many ties
      if (kind == 2 && vocab > 3) x[gen() % vocab] = nan, x[gen() % vocab] = nan;
      if (kind == 3) x[0] = nan;                                           // NaN first: stays 0
      if (kind == 4) x[vocab - 1] = 100.0f;                                // maximum in the tail
      if (kind == 5) x[0] = 100.0f;                                        // maximum first
      if (kind == 6 && vocab > 65) x[64] = 100.0f, x[65] = 100.0f;         // tie across a block edge
      if (kind == 7 && vocab > 2) x[gen() % vocab] = inf, x[gen() % vocab] = -inf;
      if (kind == 8) for (auto& v : x) v = -inf;                           // nothing beats the first
      if (kind == 9 && vocab > 130) x[129] = 50.0f, x[1] = 49.0f;          // earlier block lower
      if (kind == 0 && vocab > 65) x[0] = 50.0f, x[1] = nan, x[9] = 100.0f;  // a NaN in the larger one's lane
      const int64_t got = edgeslm::Sampler::argmax(x.data(), vocab), want = plain_argmax(x.data(), vocab);
      ++checks;
      if (got != want) {
        if (++failures <= 10) std::printf("vocab %zu trial %d: argmax %lld, plain scan %lld\n", vocab, trial,
                                          (long long)got, (long long)want);
      }
    }
  }
  if (failures) {
    std::printf("%d of %d checks failed\n", failures, checks);
    return 1;
  }
  std::printf("argmax: %d checks, all checks passed\n", checks);
  return 0;
}
