// The model: minibatch forward on the compact subgraph G' equals Algorithm 2 on the full
// graph; finite-difference gradient check of one CONVOLVE layer; the subgraph builder.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "test/train/fixtures.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/model.h"

namespace pgraph::train {
namespace {

testing::PlantedGraph TinyGraph() {
  testing::PlantedOptions o;
  o.num_items = 40;
  o.communities = 4;
  o.width = 5;
  o.feature_dim = 6;
  o.padded = 0.3;
  return testing::MakePlantedGraph(o);
}

ModelConfig TinyConfig(const testing::PlantedGraph& g, Pooling pooling, std::uint32_t layers,
                       std::uint32_t id_dim) {
  ModelConfig c;
  c.layers = layers;
  c.dim = 7;
  c.hidden = 9;
  c.neighbors = g.width;
  c.feature_dim = g.feature_dim;
  c.id_embedding_dim = id_dim;
  c.num_items = g.num_items;
  c.pooling = pooling;
  return c;
}

}  // namespace

TEST_CASE("minibatch forward on G' equals Algorithm 2 on the full graph", "[model]") {
  auto g = TinyGraph();
  InMemoryFeatures features(g.feature_dim, g.features);
  InMemoryNeighborhoods nbrs(g.width, g.neighbors, g.weights);
  // Some node without neighbours must exist for the padding path.
  g.neighbors[3 * g.width + 0] = kInvalidNode;
  for (std::uint32_t t = 0; t < g.width; ++t) {
    g.neighbors[3 * g.width + t] = kInvalidNode;
    g.weights[3 * g.width + t] = 0;
  }
  InMemoryNeighborhoods nbrs_pad(g.width, g.neighbors, g.weights);
  const std::vector<NodeId> targets = {5, 3, 17, 5, 39, 0, 22, 3};
  for (Pooling pooling : {Pooling::kImportance, Pooling::kMean, Pooling::kMax}) {
    for (std::uint32_t layers : {1u, 2u, 3u}) {
      for (std::uint32_t id_dim : {0u, 3u}) {
        DYNAMIC_SECTION(PoolingName(pooling) << " K=" << layers << " ids=" << id_dim) {
          at::manual_seed(11);
          PinSageModel model(TinyConfig(g, pooling, layers, id_dim));
          auto batch = ProduceEmbeddingBatch(targets, layers, nbrs_pad, &features);
          REQUIRE(batch->status.ok());
          // S^(K) = the distinct targets; G' is much smaller than the graph for K = 1.
          CHECK(batch->num_targets() == 6);
          BatchTensors t = ToTensors(*batch, at::Device(at::kCPU));
          at::Tensor z = model->forward(t).index_select(
              0, at::tensor(batch->query, at::TensorOptions().dtype(at::kLong)));
          at::Tensor ref = ReferenceEmbed(*model, g.features, g.neighbors, g.weights, g.width,
                                          targets);
          REQUIRE(z.sizes() == ref.sizes());
          double err = (z.to(at::kDouble) - ref).abs().max().item<double>();
          double scale = ref.abs().max().item<double>();
          INFO("max abs error " << err << " scale " << scale);
          CHECK(err <= 1e-5 * std::max(1.0, scale));
        }
      }
    }
  }
}

TEST_CASE("subgraph levels are nested prefixes with in-range neighbour rows", "[model]") {
  auto g = TinyGraph();
  InMemoryNeighborhoods nbrs(g.width, g.neighbors, g.weights);
  MiniBatch b;
  std::vector<std::int64_t> pos;
  const std::vector<NodeId> targets = {1, 2, 2, 9};
  REQUIRE(BuildSubgraph(targets, 2, nbrs, &b, &pos).ok());
  REQUIRE(b.layers.size() == 2);
  CHECK(b.layers[1].num_targets == 3);
  CHECK(b.layers[0].num_targets == b.layers[1].num_inputs);
  CHECK(b.layers[0].num_inputs == b.nodes.size());
  CHECK((pos == std::vector<std::int64_t>{0, 1, 1, 2}));
  std::set<NodeId> unique(b.nodes.begin(), b.nodes.end());
  CHECK(unique.size() == b.nodes.size());
  for (const LayerBlock& l : b.layers) {
    REQUIRE(l.offsets.size() == l.num_targets);
    REQUIRE(l.index.size() == l.weight.size());
    for (std::size_t u = 0; u < l.num_targets; ++u) {
      std::size_t end = u + 1 < l.num_targets ? l.offsets[u + 1] : l.index.size();
      std::size_t k = l.offsets[u];
      for (std::uint32_t t = 0; t < b.width; ++t) {
        NodeId want = g.neighbors[b.nodes[u] * g.width + t];
        if (want == kInvalidNode) continue;
        REQUIRE(k < end);
        REQUIRE(l.index[k] < l.num_inputs);
        CHECK(b.nodes[l.index[k]] == want);
        CHECK(l.weight[k] == g.weights[b.nodes[u] * g.width + t]);
        ++k;
      }
      CHECK(k == end);
    }
  }
  // Out-of-range ids are an error, not a crash.
  const std::vector<NodeId> bad = {1, 4000};
  CHECK(BuildSubgraph(bad, 2, nbrs, &b, &pos).IsInvalidArgument());
}

TEST_CASE("CONVOLVE gradients match finite differences", "[model]") {
  for (Pooling pooling : {Pooling::kImportance, Pooling::kMean, Pooling::kMax}) {
    DYNAMIC_SECTION(PoolingName(pooling)) {
      at::manual_seed(3);
      Convolve conv(4, 5, 3, pooling);
      conv->to(at::kDouble);
      auto f64 = at::TensorOptions().dtype(at::kDouble);
      at::Tensor h = at::randn({6, 4}, f64).requires_grad_(true);
      const std::int64_t n = 3;
      // Neighbour lists {1, 4, 5}, {0, 2}, {3, 4, 5}; node 1 has only two.
      at::Tensor index = at::tensor(std::vector<std::int64_t>{1, 4, 5, 0, 2, 3, 4, 5},
                                    at::TensorOptions().dtype(at::kLong));
      at::Tensor offsets = at::tensor(std::vector<std::int64_t>{0, 3, 5},
                                      at::TensorOptions().dtype(at::kLong));
      at::Tensor weight =
          at::tensor(std::vector<double>{0.5, 0.3, 0.2, 0.6, 0.4, 0.1, 0.1, 0.8}, f64);
      at::Tensor r = at::randn({n, 3}, f64);
      auto loss_fn = [&]() { return (conv->forward(h, n, offsets, index, weight) * r).sum(); };
      at::Tensor loss = loss_fn();
      loss.backward();
      std::vector<at::Tensor> inputs = {h, conv->Q->weight, conv->Q->bias, conv->W->weight,
                                        conv->W->bias};
      const double eps = 1e-6;
      double worst = 0;
      for (at::Tensor& x : inputs) {
        at::Tensor grad = x.grad().clone();
        at::Tensor flat = x.detach().view({-1});
        for (std::int64_t j = 0; j < flat.numel(); ++j) {
          double orig = flat[j].item<double>();
          flat[j] = orig + eps;
          double up = loss_fn().item<double>();
          flat[j] = orig - eps;
          double down = loss_fn().item<double>();
          flat[j] = orig;
          double numeric = (up - down) / (2 * eps);
          double analytic = grad.view({-1})[j].item<double>();
          worst = std::max(worst, std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric)));
        }
      }
      INFO("worst relative gradient error " << worst);
      CHECK(worst < 1e-6);
    }
  }
}

TEST_CASE("checkpoint blobs round-trip and reject damage", "[model]") {
  CheckpointData c;
  c.meta["epoch"] = "3";
  TrainOptions o;
  ModelConfig m;
  m.feature_dim = 12;
  m.pooling = Pooling::kMax;
  m.normalize = true;
  m.magnitude = true;
  m.structural_dim = 1;
  m.degree_mean = 2.25f;
  m.degree_std = 0.625f;
  o.loss = Loss::kMargin;
  o.temperature = 0.25f;
  o.in_batch_negatives = true;
  c.meta["config"] = FormatConfig(m, o);
  c.arrays["layer0.Q"] = NamedArray{{2, 3}, {1, 2, 3, 4, 5, 6}};
  c.arrays["adam.m/layer0.Q"] = NamedArray{{2, 3}, {0, 0, 0, 0, 0, 1}};
  std::vector<std::byte> blob = SerializeCheckpoint(c);
  auto back = ParseCheckpoint(blob);
  REQUIRE(back.ok());
  CHECK(back->meta == c.meta);
  CHECK(back->arrays["layer0.Q"].data == c.arrays["layer0.Q"].data);
  auto params = ParseParameters(blob);
  REQUIRE(params.ok());
  CHECK(params->epoch == 3);
  CHECK(params->config.feature_dim == 12);
  CHECK(params->config.pooling == Pooling::kMax);
  CHECK(params->config.normalize);
  CHECK(params->config.magnitude);
  CHECK(params->config.structural_dim == 1);
  CHECK(params->config.degree_mean == 2.25f);
  CHECK(params->config.degree_std == 0.625f);
  CHECK(params->config.input_dim() == 13);
  // The transform inference applies: (log1p(degree) - mean) / std.
  CHECK(std::abs(DegreeFeature(params->config, 9) - (std::log(10.0) - 2.25) / 0.625) < 1e-5);
  ModelConfig old;  // a checkpoint written before these keys existed
  TrainOptions opts;
  REQUIRE(ParseConfig("layers=2\ndim=8\n", &old, &opts).ok());
  CHECK_FALSE(old.normalize);
  CHECK(old.structural_dim == 0);
  REQUIRE(ParseConfig(FormatConfig(m, o), &old, &opts).ok());
  CHECK(opts.loss == Loss::kMargin);
  CHECK(opts.temperature == 0.25f);
  CHECK(opts.in_batch_negatives);
  CHECK(ParseLoss("hinge").status().IsInvalidArgument());
  CHECK(params->arrays.count("layer0.Q") == 1);
  CHECK(params->arrays.count("adam.m/layer0.Q") == 0);
  blob[20] ^= std::byte{1};
  CHECK(ParseCheckpoint(blob).status().IsCorruption());
  CHECK(ParseCheckpoint(std::span(blob).first(10)).status().IsCorruption());
}

}  // namespace pgraph::train
