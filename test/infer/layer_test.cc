// Layer-by-layer inference equals Algorithm 2 per node: every node of a small graph (all
// pooling modes, K = 1..3, with and without id embeddings), with the out-of-core path
// forced, on a sample of a larger graph, and the float32 naive path; float16 output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "infer/infer.h"
#include "test/infer/infer_fixture.h"

namespace pgraph::infer {
namespace {

using testing::AllItems;
using testing::GraphData;
using testing::GraphSpec;
using testing::MakeGraph;
using testing::MaxAbsDiff;
using testing::ModelSpec;

using Setup = testing::StoreWithModel;

}  // namespace

TEST_CASE("layer-by-layer equals Algorithm 2 for every node", "[layer]") {
  for (train::Pooling pooling :
       {train::Pooling::kImportance, train::Pooling::kMean, train::Pooling::kMax}) {
    for (std::uint32_t layers : {1u, 2u, 3u}) {
      for (std::uint32_t id_dim : {0u, 3u}) {
        DYNAMIC_SECTION(train::PoolingName(pooling) << " K=" << layers << " ids=" << id_dim) {
          ModelSpec ms;
          ms.pooling = pooling;
          ms.layers = layers;
          ms.id_dim = id_dim;
          Setup s(GraphSpec{}, ms);
          auto r = Infer(s.Options());
          INFO(r.status().ToString());
          REQUIRE(r.ok());
          CHECK(r->items == s.g.items);
          CHECK(r->per_layer.size() == layers);
          CHECK(r->per_layer[0].partitions == 1);
          std::uint32_t dim = 0;
          auto emb = testing::ReadEmbedding(s.dir, &dim);
          REQUIRE(dim == ms.dim);
          auto ref = testing::Reference(*s.model, s.g, AllItems(s.g.items));
          CHECK(MaxAbsDiff(emb, ref) < 1e-5);
        }
      }
    }
  }
}

// Linear pooling gathers W_pool p (d wide) when d <= m and p itself when d > m; both must
// give Algorithm 2's embeddings, in memory and partitioned.
TEST_CASE("linear pooling with the output wider than the hidden layer", "[layer]") {
  for (train::Pooling pooling : {train::Pooling::kImportance, train::Pooling::kMean}) {
    for (std::uint64_t partition_rows : {0ull, 41ull}) {
      DYNAMIC_SECTION(train::PoolingName(pooling) << " partition_rows=" << partition_rows) {
        ModelSpec ms;
        ms.pooling = pooling;
        ms.hidden = 6;
        ms.dim = 8;
        Setup s(GraphSpec{}, ms);
        InferOptions o = s.Options();
        o.partition_rows = partition_rows;
        auto r = Infer(o);
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        CHECK((r->per_layer[0].partitions > 1) == (partition_rows > 0));
        std::uint32_t dim = 0;
        auto emb = testing::ReadEmbedding(s.dir, &dim);
        REQUIRE(dim == ms.dim);
        auto ref = testing::Reference(*s.model, s.g, AllItems(s.g.items));
        CHECK(MaxAbsDiff(emb, ref) < 1e-5);
      }
    }
  }
}

TEST_CASE("the degree feature, normalisation and magnitude match Algorithm 2", "[layer]") {
  for (bool degree : {false, true}) {
    for (int head : {0, 1, 2}) {  // plain, normalised, normalised with a learned length
      const bool normalize = head >= 1;
      DYNAMIC_SECTION("degree=" << degree << " head=" << head) {
        ModelSpec ms;
        ms.degree = degree;
        ms.normalize = normalize;
        ms.magnitude = head == 2;
        ms.id_dim = 2;
        Setup s(GraphSpec{}, ms);
        auto r = Infer(s.Options());
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        std::uint32_t dim = 0;
        auto emb = testing::ReadEmbedding(s.dir, &dim);
        REQUIRE(dim == ms.dim);
        auto ref = testing::Reference(*s.model, s.g, AllItems(s.g.items));
        CHECK(MaxAbsDiff(emb, ref) < 1e-5);
        // Unit length when normalised; with magnitude, per-item lengths in (0, 2).
        double shortest = 1e9, longest = 0;
        for (std::uint32_t i = 0; i < s.g.items; ++i) {
          double ss = 0;
          for (std::uint32_t c = 0; c < dim; ++c) {
            ss += static_cast<double>(emb[i * dim + c]) * emb[i * dim + c];
          }
          shortest = std::min(shortest, std::sqrt(ss));
          longest = std::max(longest, std::sqrt(ss));
        }
        if (head == 1) {
          CHECK(std::abs(shortest - 1.0) < 1e-5);
          CHECK(std::abs(longest - 1.0) < 1e-5);
        } else if (head == 2) {
          CHECK(shortest > 0.0);
          CHECK(longest < 2.0);
          CHECK(longest - shortest > 1e-3);
        }
      }
    }
  }
}

TEST_CASE("forced partitioning by neighbour range gives the same embeddings", "[layer]") {
  for (train::Pooling pooling :
       {train::Pooling::kImportance, train::Pooling::kMean, train::Pooling::kMax}) {
    DYNAMIC_SECTION(train::PoolingName(pooling)) {
      ModelSpec ms;
      ms.pooling = pooling;
      Setup s(GraphSpec{}, ms);
      InferOptions o = s.Options();
      o.partition_rows = 37;
      o.block_rows = 50;
      o.segment_rows = 128;
      auto r = Infer(o);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      REQUIRE(r->per_layer.size() == 2);
      CHECK(r->per_layer[0].partitions == (300 + 36) / 37);
      CHECK(r->per_layer[1].partitions == (300 + 36) / 37);
      std::uint32_t dim = 0;
      auto emb = testing::ReadEmbedding(s.dir, &dim);
      auto ref = testing::Reference(*s.model, s.g, AllItems(s.g.items));
      CHECK(MaxAbsDiff(emb, ref) < 1e-5);
    }
  }
}

TEST_CASE("the model's neighbour count truncates like training", "[layer]") {
  GraphSpec gs;
  gs.width = 8;
  Setup s(gs, ModelSpec{});
  // Retrain-free check: a model that used T = 4 of the 8 walk columns.
  ModelSpec ms;
  auto model = testing::MakeModel(ms, s.g.items, s.g.feature_dim, 4);
  testing::WriteCheckpoint(s.dir, *model);
  auto r = Infer(s.Options());
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  std::uint32_t dim = 0;
  auto emb = testing::ReadEmbedding(s.dir, &dim);
  // The naive path reads neighbourhoods through train's TruncatedNeighborhoods too; the
  // reference here is the float32 naive path on every node.
  storage::StoreOptions so;
  so.read_only = true;
  auto store = storage::Store::Open(s.dir, so);
  REQUIRE(store.ok());
  std::vector<float> naive(emb.size());
  auto all = AllItems(s.g.items);
  REQUIRE(NaiveEmbed(**store, "", all, naive).ok());
  CHECK(MaxAbsDiff(emb, std::vector<double>(naive.begin(), naive.end())) < 1e-5);
}

TEST_CASE("naive per-node Algorithm 2 in float32 agrees", "[layer]") {
  Setup s(GraphSpec{}, ModelSpec{});
  auto r = Infer(s.Options());
  REQUIRE(r.ok());
  std::uint32_t dim = 0;
  auto emb = testing::ReadEmbedding(s.dir, &dim);
  storage::StoreOptions so;
  so.read_only = true;
  auto store = storage::Store::Open(s.dir, so);
  REQUIRE(store.ok());
  std::vector<NodeId> sample = {0, 1, 7, 42, 299, 150};
  std::vector<float> naive(sample.size() * dim);
  double flops = 0;
  auto st = NaiveEmbed(**store, "", sample, naive, &flops);
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(flops > 0);
  for (std::size_t j = 0; j < sample.size(); ++j) {
    for (std::uint32_t i = 0; i < dim; ++i) {
      CHECK(std::abs(naive[j * dim + i] - emb[sample[j] * dim + i]) < 1e-5);
    }
  }
}

TEST_CASE("float16 embeddings are the float32 ones rounded to half", "[layer]") {
  Setup s(GraphSpec{}, ModelSpec{});
  REQUIRE(Infer(s.Options()).ok());
  std::uint32_t dim = 0;
  auto f32 = testing::ReadEmbedding(s.dir, &dim);
  InferOptions o = s.Options();
  o.dtype = OutputType::kFloat16;
  REQUIRE(Infer(o).ok());
  storage::DType dtype;
  auto f16 = testing::ReadEmbedding(s.dir, &dim, &dtype);
  CHECK(dtype == storage::DType::kF16);
  REQUIRE(f16.size() == f32.size());
  // Stated tolerance: half precision, |e16 - e32| <= 2^-11 |e32| + 2^-24.
  for (std::size_t i = 0; i < f32.size(); ++i) {
    REQUIRE(std::abs(f16[i] - f32[i]) <= std::ldexp(1.0, -11) * std::abs(f32[i]) + 6e-8);
  }
}

TEST_CASE("bad inputs are reported, not thrown", "[layer]") {
  pgraph::test::TempDir tmp;
  InferOptions o;
  o.store_dir = tmp.Sub("missing");
  CHECK(Infer(o).status().IsNotFound());
  CHECK(ParseOutputType("float16").ok());
  CHECK(ParseOutputType("int8").status().IsInvalidArgument());
  // A store without a checkpoint.
  auto g = MakeGraph(GraphSpec{});
  const std::string dir = tmp.Sub("store");
  testing::WriteStore(dir, g, tmp.path());
  o.store_dir = dir;
  CHECK(Infer(o).status().IsNotFound());
  // A checkpoint for another feature width.
  auto model = testing::MakeModel(ModelSpec{}, g.items, g.feature_dim + 1, g.width);
  testing::WriteCheckpoint(dir, *model);
  CHECK(Infer(o).status().IsInvalidArgument());
}

TEST_CASE("a sample of a larger graph equals Algorithm 2", "[layer][slow]") {
  GraphSpec gs;
  gs.items = 6000;
  gs.feature_dim = 32;
  gs.width = 20;
  ModelSpec ms;
  ms.dim = 32;
  ms.hidden = 64;
  Setup s(gs, ms);
  for (bool partitioned : {false, true}) {
    DYNAMIC_SECTION("partitioned=" << partitioned) {
      InferOptions o = s.Options();
      if (partitioned) {
        o.partition_rows = 1000;
        o.block_rows = 700;
        o.segment_rows = 2500;
      }
      auto r = Infer(o);
      REQUIRE(r.ok());
      std::uint32_t dim = 0;
      auto emb = testing::ReadEmbedding(s.dir, &dim);
      std::vector<NodeId> sample;
      for (NodeId u = 0; u < gs.items; u += 61) sample.push_back(u);
      auto ref = testing::Reference(*s.model, s.g, sample);
      std::vector<float> got;
      for (NodeId u : sample) got.insert(got.end(), emb.begin() + u * dim, emb.begin() + (u + 1) * dim);
      CHECK(MaxAbsDiff(got, ref) < 1e-5);
    }
  }
}

}  // namespace pgraph::infer
