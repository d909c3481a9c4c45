#pragma once
// Stores for the infer tests: ingested from a generated edge list and features (so item ids
// are real external ids), random importance neighbourhoods written as walk.* columns, and a
// checkpoint of a randomly initialised model (train/checkpoint.h) with the wanted config.

#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "infer/infer.h"
#include "storage/store.h"
#include "test/support/temp_dir.h"
#include "train/checkpoint.h"
#include "train/model.h"

// Torch pulls in glog, whose CHECK (abort on failure) replaces Catch's: restore Catch's.
#undef CHECK
#define CHECK(...) \
  INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

namespace pgraph::infer::testing {

struct GraphSpec {
  std::uint32_t items = 300, feature_dim = 8, width = 6;
  double padded = 0.2;  // share of items with fewer than `width` neighbours (some with none)
  std::uint64_t seed = 5;
};

// Deterministic data of item i (so two stores can share items).
struct GraphData {
  std::uint32_t items = 0, feature_dim = 0, width = 0;
  std::vector<float> features;     // items x F
  std::vector<NodeId> neighbors;   // items x T
  std::vector<float> weights;      // items x T
};

inline GraphData MakeGraph(const GraphSpec& s) {
  GraphData g;
  g.items = s.items;
  g.feature_dim = s.feature_dim;
  g.width = s.width;
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> gauss(0, 1);
  std::uniform_real_distribution<double> uni(0, 1);
  g.features.resize(std::size_t{s.items} * s.feature_dim);
  for (float& f : g.features) f = gauss(rng);
  g.neighbors.assign(std::size_t{s.items} * s.width, kInvalidNode);
  g.weights.assign(std::size_t{s.items} * s.width, 0.0f);
  for (std::uint32_t u = 0; u < s.items; ++u) {
    std::uint32_t count = s.width;
    if (uni(rng) < s.padded) count = static_cast<std::uint32_t>(rng() % s.width);
    std::vector<double> w(count);
    double sum = 0;
    for (std::uint32_t t = 0; t < count; ++t) {
      g.neighbors[std::size_t{u} * s.width + t] = static_cast<NodeId>(rng() % s.items);
      w[t] = 0.05 + uni(rng);
      sum += w[t];
    }
    for (std::uint32_t t = 0; t < count; ++t) {
      g.weights[std::size_t{u} * s.width + t] = static_cast<float>(w[t] / sum);
    }
  }
  return g;
}

inline std::string ItemName(std::uint32_t i) { return "item" + std::to_string(i); }

// Item i's number of contexts in the stores WriteStore builds (varied, for the degree
// feature).
inline std::uint32_t ItemDegree(std::uint32_t i) { return 1 + i % 3; }

// Ingests items 0..g.items-1 (ids "item<i>", dense id i) with g's features, then writes
// g's neighbourhoods as walk.* columns.
inline void WriteStore(const std::string& dir, const GraphData& g, const std::string& tmp,
                       bool features_f16 = false,
                       storage::Backend backend = storage::Backend::kLmdb,
                       storage::Codec codec = storage::Codec::kZstd) {
  const std::string edges = tmp + "/edges.tsv", feats = tmp + "/features.tsv";
  {
    std::FILE* e = std::fopen(edges.c_str(), "w");
    std::FILE* f = std::fopen(feats.c_str(), "w");
    REQUIRE(e != nullptr);
    REQUIRE(f != nullptr);
    for (std::uint32_t i = 0; i < g.items; ++i) {
      for (std::uint32_t j = 0; j < ItemDegree(i); ++j) {
        std::fprintf(e, "%s\tctx%u\n", ItemName(i).c_str(), (i + 5 * j) % 17);
      }
      std::fprintf(f, "%s\t", ItemName(i).c_str());
      for (std::uint32_t j = 0; j < g.feature_dim; ++j) {
        std::fprintf(f, "%s%.9g", j ? " " : "", g.features[std::size_t{i} * g.feature_dim + j]);
      }
      std::fprintf(f, "\n");
    }
    std::fclose(e);
    std::fclose(f);
  }
  storage::IngestOptions io;
  io.store_dir = dir;
  io.edges_path = edges;
  io.features_path = feats;
  io.header = 0;
  io.overwrite = true;
  io.features_f16 = features_f16;
  io.store.backend = backend;
  io.store.codec = codec;
  io.progress = false;
  io.threads = 1;
  auto r = storage::Ingest(io);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  auto store = storage::Store::Open(dir, {});
  REQUIRE(store.ok());
  auto update = (*store)->BeginUpdate();
  REQUIRE(update.ok());
  storage::ColumnSpec ns{storage::columns::kWalkNeighbors, storage::DType::kU32, g.width, 0, -1};
  storage::ColumnSpec ws{storage::columns::kWalkWeights, storage::DType::kF32, g.width, 0, -1};
  auto nw = (*update)->AddColumn(ns);
  auto ww = (*update)->AddColumn(ws);
  REQUIRE(nw.ok());
  REQUIRE(ww.ok());
  REQUIRE((*nw)->AppendValues<NodeId>(g.neighbors).ok());
  REQUIRE((*ww)->AppendValues<float>(g.weights).ok());
  REQUIRE((*update)->Publish().ok());
}

struct ModelSpec {
  std::uint32_t layers = 2, dim = 8, hidden = 12, id_dim = 0;
  train::Pooling pooling = train::Pooling::kImportance;
  bool degree = false, normalize = false, magnitude = false;
  std::uint64_t seed = 3;
};

// A model with random parameters for a store of `items` items and feature width F.
inline train::PinSageModel MakeModel(const ModelSpec& s, std::uint32_t items, std::uint32_t F,
                                     std::uint32_t width) {
  train::ModelConfig c;
  c.layers = s.layers;
  c.dim = s.dim;
  c.hidden = s.hidden;
  c.neighbors = width;
  c.feature_dim = F;
  c.id_embedding_dim = s.id_dim;
  c.num_items = items;
  c.pooling = s.pooling;
  c.normalize = s.normalize;
  c.magnitude = s.magnitude;
  if (s.degree) {
    c.structural_dim = 1;
    c.degree_mean = 0.9f;
    c.degree_std = 0.4f;
  }
  at::manual_seed(static_cast<std::int64_t>(s.seed));
  train::PinSageModel model(c);
  return model;
}

// Writes `model` as the store's latest checkpoint (what `pgraph train` leaves behind).
inline void WriteCheckpoint(const std::string& dir, train::PinSageModelImpl& model) {
  train::CheckpointData data;
  train::TrainOptions opts;
  opts.layers = model.config.layers;
  opts.dim = model.config.dim;
  opts.hidden = model.config.hidden;
  opts.pooling = model.config.pooling;
  opts.id_embedding_dim = model.config.id_embedding_dim;
  data.meta["config"] = train::FormatConfig(model.config, opts);
  data.meta["epoch"] = "1";
  for (auto& [name, t] : train::PublicParameters(model)) {
    train::NamedArray a;
    a.shape = t.sizes().vec();
    at::Tensor c = t.detach().contiguous();
    a.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    data.arrays[name] = std::move(a);
  }
  std::vector<std::byte> blob = train::SerializeCheckpoint(data);
  auto store = storage::Store::Open(dir, {});
  REQUIRE(store.ok());
  auto update = (*store)->BeginUpdate();
  REQUIRE(update.ok());
  storage::ColumnSpec spec{"checkpoint", storage::DType::kU8, 1, 0,
                           static_cast<int>(storage::Codec::kNone)};
  auto w = (*update)->AddColumn(spec);
  REQUIRE(w.ok());
  REQUIRE((*w)->Append(blob).ok());
  (*update)->SetCount("train.epoch", 1);
  REQUIRE((*update)->Publish().ok());
}

// Algorithm 2 in double precision for every item (train::ReferenceEmbed), as floats.
inline std::vector<double> Reference(train::PinSageModelImpl& model, const GraphData& g,
                                     const std::vector<NodeId>& targets) {
  std::vector<float> input = g.features;
  if (model.config.structural_dim > 0) {  // the degree feature after each feature row
    input.clear();
    for (std::uint32_t i = 0; i < g.items; ++i) {
      auto row = g.features.begin() + std::size_t{i} * g.feature_dim;
      input.insert(input.end(), row, row + g.feature_dim);
      input.push_back(train::DegreeFeature(model.config, ItemDegree(i)));
    }
  }
  at::Tensor r = train::ReferenceEmbed(model, input, g.neighbors, g.weights, g.width, targets)
                     .contiguous();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

inline std::vector<float> ReadEmbedding(const std::string& dir, std::uint32_t* dim,
                                        storage::DType* dtype = nullptr) {
  storage::StoreOptions so;
  so.read_only = true;
  auto store = storage::Store::Open(dir, so);
  REQUIRE(store.ok());
  auto c = (*store)->OpenColumn(storage::columns::kEmbedding);
  REQUIRE(c.ok());
  *dim = (*c)->info().width;
  if (dtype) *dtype = (*c)->info().dtype;
  std::vector<float> out((*c)->info().rows * *dim);
  REQUIRE((*c)->ReadRowsAsFloat(0, (*c)->info().rows, out).ok());
  return out;
}

inline double MaxAbsDiff(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

inline std::vector<NodeId> AllItems(std::uint32_t n) {
  std::vector<NodeId> v(n);
  for (std::uint32_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

// A store in a temporary directory with graph `g` and a random model as its checkpoint, and
// the options most tests infer it with.
struct StoreWithModel {
  pgraph::test::TempDir tmp;
  std::string dir = tmp.Sub("store");
  GraphData g;
  train::PinSageModel model{nullptr};
  StoreWithModel(const GraphSpec& gs, const ModelSpec& ms,
                 storage::Backend backend = storage::Backend::kLmdb,
                 storage::Codec codec = storage::Codec::kZstd)
      : g(MakeGraph(gs)) {
    WriteStore(dir, g, tmp.path(), false, backend, codec);
    model = MakeModel(ms, g.items, g.feature_dim, g.width);
    WriteCheckpoint(dir, *model);
  }
  InferOptions Options() const {
    InferOptions o;
    o.store_dir = dir;
    o.threads = 2;
    o.memory_budget = 64ull << 20;
    return o;
  }
};

}  // namespace pgraph::infer::testing
