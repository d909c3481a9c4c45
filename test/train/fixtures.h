#pragma once
// Small generated graphs for the train tests: items in planted communities, importance
// neighbourhoods mostly inside the community, weak features (a community centroid buried in
// noise) and related pairs drawn from the neighbourhoods.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "storage/ids.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace pgraph::train::testing {

struct PlantedGraph {
  std::uint32_t num_items = 0, width = 0, feature_dim = 0, communities = 0;
  std::vector<NodeId> neighbors;  // num_items * width, kInvalidNode padded
  std::vector<float> weights;     // num_items * width, rows sum to 1
  std::vector<float> features;    // num_items * feature_dim
  std::vector<std::pair<NodeId, NodeId>> train_pairs, heldout_pairs;
  std::uint32_t Community(NodeId u) const { return u % communities; }
};

struct PlantedOptions {
  std::uint32_t num_items = 600, communities = 20, width = 8, feature_dim = 16;
  double p_in = 0.9;           // a neighbour is in the same community with this chance
  double signal = 0.6;         // centroid scale against unit noise
  std::uint32_t pairs_per_item = 6;
  double heldout = 0.1;        // share of pairs held out
  double padded = 0.1;         // share of items with fewer than `width` neighbours
  std::uint64_t seed = 7;
};

inline PlantedGraph MakePlantedGraph(const PlantedOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> uni(0, 1);
  std::normal_distribution<float> gauss(0, 1);
  PlantedGraph g;
  g.num_items = o.num_items;
  g.width = o.width;
  g.feature_dim = o.feature_dim;
  g.communities = o.communities;
  const std::uint32_t per = o.num_items / o.communities;
  std::vector<float> centroid(o.communities * o.feature_dim);
  for (float& c : centroid) c = gauss(rng);
  g.features.resize(std::size_t{o.num_items} * o.feature_dim);
  for (NodeId u = 0; u < o.num_items; ++u) {
    for (std::uint32_t f = 0; f < o.feature_dim; ++f) {
      g.features[u * o.feature_dim + f] =
          static_cast<float>(o.signal * centroid[g.Community(u) * o.feature_dim + f]) +
          gauss(rng);
    }
  }
  g.neighbors.assign(std::size_t{o.num_items} * o.width, kInvalidNode);
  g.weights.assign(std::size_t{o.num_items} * o.width, 0.0f);
  for (NodeId u = 0; u < o.num_items; ++u) {
    std::uint32_t count = o.width;
    if (uni(rng) < o.padded) count = static_cast<std::uint32_t>(rng() % o.width);
    double sum = 0;
    std::vector<double> w(count);
    for (std::uint32_t t = 0; t < count; ++t) {
      NodeId v;
      do {
        if (uni(rng) < o.p_in) {
          v = static_cast<NodeId>((rng() % per) * o.communities + g.Community(u));
        } else {
          v = static_cast<NodeId>(rng() % o.num_items);
        }
      } while (v == u || v >= o.num_items);
      g.neighbors[u * o.width + t] = v;
      w[t] = 0.1 + uni(rng);
      sum += w[t];
    }
    std::sort(w.begin(), w.end(), std::greater<double>());
    for (std::uint32_t t = 0; t < count; ++t) {
      g.weights[u * o.width + t] = static_cast<float>(w[t] / sum);
    }
  }
  // Pairs: q and a same-community item (a co-engagement stand-in).
  for (NodeId q = 0; q < o.num_items; ++q) {
    for (std::uint32_t j = 0; j < o.pairs_per_item; ++j) {
      NodeId i;
      do {
        i = static_cast<NodeId>((rng() % per) * o.communities + g.Community(q));
      } while (i == q);
      (uni(rng) < o.heldout ? g.heldout_pairs : g.train_pairs).emplace_back(q, i);
    }
  }
  return g;
}

// A planted graph with in-memory sources over it, and the TrainData that wires them.
struct PlantedSources {
  explicit PlantedSources(const PlantedOptions& o = {}) : g(MakePlantedGraph(o)) {}
  PlantedGraph g;
  InMemoryFeatures features{g.feature_dim, g.features};
  InMemoryNeighborhoods nbrs{g.width, g.neighbors, g.weights};
  TrainData Data(CheckpointSink* checkpoints = nullptr) const {
    TrainData d;
    d.checkpoints = checkpoints;
    d.features = &features;
    d.neighborhoods = &nbrs;
    d.train_pairs = g.train_pairs;
    d.heldout_pairs = g.heldout_pairs;
    return d;
  }
};

// The largest elementwise difference of two arrays of the same shape.
inline double MaxAbsDiff(const NamedArray& a, const NamedArray& b) {
  REQUIRE(a.shape == b.shape);
  double m = 0;
  for (std::size_t j = 0; j < a.data.size(); ++j) {
    m = std::max(m, static_cast<double>(std::fabs(a.data[j] - b.data[j])));
  }
  return m;
}

// The newest checkpoint a sink holds, parsed; fails the test if there is none.
inline CheckpointData LatestCheckpoint(InMemoryCheckpoints& sink) {
  auto blob = sink.LoadLatest();
  REQUIRE(blob.ok());
  REQUIRE(blob->has_value());
  auto c = ParseCheckpoint(**blob);
  REQUIRE(c.ok());
  return std::move(c).value();
}

}  // namespace pgraph::train::testing
