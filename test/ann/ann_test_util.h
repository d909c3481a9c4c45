#pragma once
// Helpers for the ann tests: synthetic vectors and recall.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "ann/ann.h"

namespace pgraph::ann::testing {

inline void Normalize(float* v, std::uint32_t d) {
  double s = 0;
  for (std::uint32_t j = 0; j < d; ++j) s += double{v[j]} * v[j];
  const float inv = s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.0f;
  for (std::uint32_t j = 0; j < d; ++j) v[j] *= inv;
}

// n unit vectors in `clusters` groups: normalize(center + spread * z / sqrt(d)).
inline std::vector<float> Clustered(std::uint64_t n, std::uint32_t d, std::uint32_t clusters,
                                    float spread, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> centers(std::size_t{clusters} * d);
  for (auto& x : centers) x = normal(rng);
  for (std::uint32_t c = 0; c < clusters; ++c) Normalize(&centers[std::size_t{c} * d], d);
  std::vector<float> out(n * d);
  const float scale = spread / std::sqrt(static_cast<float>(d));
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t c = rng() % clusters;
    for (std::uint32_t j = 0; j < d; ++j) out[i * d + j] = centers[c * d + j] + scale * normal(rng);
    Normalize(&out[i * d], d);
  }
  return out;
}

// n unit vectors with planted neighbourhoods (as tools/bench/ann_bench.cc): item =
// normalize(mu_c + sub_spread * nu_cs + noise * z / sqrt(d)) for a community c and one of
// its `subclusters` sub-clusters s; an item's top-10 are mostly its sub-cluster mates.
inline std::vector<float> Planted(std::uint64_t n, std::uint32_t d, std::uint32_t communities,
                                  std::uint32_t subclusters, float noise, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  auto units = [&](std::uint64_t count) {
    std::vector<float> v(count * d);
    for (auto& x : v) x = normal(rng);
    for (std::uint64_t i = 0; i < count; ++i) Normalize(&v[i * d], d);
    return v;
  };
  const auto mu = units(communities);
  const auto nu = units(std::uint64_t{communities} * subclusters);
  const float scale = noise / std::sqrt(static_cast<float>(d));
  std::vector<float> out(n * d);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t c = rng() % communities;
    const std::uint64_t s = c * subclusters + rng() % subclusters;
    for (std::uint32_t j = 0; j < d; ++j) {
      out[i * d + j] = mu[c * d + j] + 0.6f * nu[s * d + j] + scale * normal(rng);
    }
    Normalize(&out[i * d], d);
  }
  return out;
}

inline std::vector<float> Gaussian(std::uint64_t n, std::uint32_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> out(n * d);
  for (auto& x : out) x = normal(rng);
  return out;
}

// |found ∩ truth| / |truth|, by id.
inline double Recall(const std::vector<Neighbor>& found, const std::vector<Neighbor>& truth) {
  std::set<NodeId> t;
  for (const auto& n : truth) t.insert(n.id);
  std::size_t hit = 0;
  for (const auto& n : found) hit += t.count(n.id);
  return truth.empty() ? 1.0 : static_cast<double>(hit) / truth.size();
}

}  // namespace pgraph::ann::testing
