// Inductive inference: items ingested after training (new store, model from the training
// store, items matched by external id) get embeddings; without id embeddings they equal a
// full run exactly, with id embeddings (new items: zero id part) they are close to it.
#include <catch2/catch.hpp>

#include <cmath>

#include "infer/infer.h"
#include "test/infer/infer_fixture.h"

namespace pgraph::infer {
namespace {

// Items 0..old-1 only link among themselves; items old..n-1 (new) link anywhere.
testing::GraphData TwoPartGraph(std::uint32_t old_items, std::uint32_t new_items) {
  testing::GraphSpec a;
  a.items = old_items;
  auto g = testing::MakeGraph(a);
  testing::GraphSpec b;
  b.items = old_items + new_items;
  b.seed = 11;
  b.padded = 0;
  auto h = testing::MakeGraph(b);
  g.items = b.items;
  g.features.insert(g.features.end(), h.features.begin() + std::size_t{old_items} * g.feature_dim,
                    h.features.end());
  g.neighbors.insert(g.neighbors.end(), h.neighbors.begin() + std::size_t{old_items} * g.width,
                     h.neighbors.end());
  g.weights.insert(g.weights.end(), h.weights.begin() + std::size_t{old_items} * g.width,
                   h.weights.end());
  return g;
}

testing::GraphData Prefix(const testing::GraphData& g, std::uint32_t n) {
  testing::GraphData p = g;
  p.items = n;
  p.features.resize(std::size_t{n} * g.feature_dim);
  p.neighbors.resize(std::size_t{n} * g.width);
  p.weights.resize(std::size_t{n} * g.width);
  return p;
}

// `full`'s parameters for a catalogue of its first `n` items (what training on them gave).
train::PinSageModel Restrict(train::PinSageModelImpl& full, std::uint32_t n) {
  train::ModelConfig c = full.config;
  c.num_items = n;
  train::PinSageModel m(c);
  torch::NoGradGuard no_grad;
  auto src = train::PublicParameters(full);
  auto dst = train::PublicParameters(*m);
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i].first == "id_embedding") {
      dst[i].second.copy_(src[i].second.narrow(0, 0, n));
    } else {
      dst[i].second.copy_(src[i].second);
    }
  }
  return m;
}

double Cosine(const float* a, const float* b, std::uint32_t d) {
  double ab = 0, aa = 0, bb = 0;
  for (std::uint32_t i = 0; i < d; ++i) {
    ab += double{a[i]} * b[i];
    aa += double{a[i]} * a[i];
    bb += double{b[i]} * b[i];
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

}  // namespace

TEST_CASE("items ingested after training get embeddings", "[inductive]") {
  const std::uint32_t old_n = 300, new_n = 25;
  for (std::uint32_t id_dim : {0u, 2u}) {
    DYNAMIC_SECTION("ids=" << id_dim) {
      pgraph::test::TempDir tmp;
      auto g = TwoPartGraph(old_n, new_n);
      testing::ModelSpec ms;
      ms.id_dim = id_dim;
      auto full_model = testing::MakeModel(ms, g.items, g.feature_dim, g.width);
      auto old_model = Restrict(*full_model, old_n);

      // The store the model was trained on (old items only) with its checkpoint.
      const std::string trained = tmp.Sub("trained");
      testing::WriteStore(trained, Prefix(g, old_n), tmp.path());
      testing::WriteCheckpoint(trained, *old_model);
      // The catalogue after new items were ingested (and walked): no checkpoint of its own.
      const std::string grown = tmp.Sub("grown");
      testing::WriteStore(grown, g, tmp.path());
      // A full run: the same parameters with every item known at training time.
      const std::string fullrun = tmp.Sub("full");
      testing::WriteStore(fullrun, g, tmp.path());
      testing::WriteCheckpoint(fullrun, *full_model);

      InferOptions o;
      o.store_dir = grown;
      o.model_store = trained;
      o.threads = 2;
      o.build_index = false;
      auto r = Infer(o);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      CHECK(r->new_items == new_n);
      o.store_dir = fullrun;
      o.model_store = "";
      auto rf = Infer(o);
      REQUIRE(rf.ok());
      CHECK(rf->new_items == 0);

      std::uint32_t d = 0;
      auto got = testing::ReadEmbedding(grown, &d);
      auto want = testing::ReadEmbedding(fullrun, &d);
      // Old items only see old items: identical to the full run.
      for (std::uint32_t u = 0; u < old_n; ++u) {
        for (std::uint32_t i = 0; i < d; ++i) {
          REQUIRE(std::abs(got[u * d + i] - want[u * d + i]) < 1e-5);
        }
      }
      // New items: equal (no id embeddings) or close (their id part is zero).
      double worst = 1;
      for (std::uint32_t u = old_n; u < g.items; ++u) {
        worst = std::min(worst, Cosine(&got[u * d], &want[u * d], d));
        if (id_dim == 0) {
          for (std::uint32_t i = 0; i < d; ++i) {
            REQUIRE(std::abs(got[u * d + i] - want[u * d + i]) < 1e-5);
          }
        }
      }
      INFO("worst cosine of a new item to its full-run embedding: " << worst);
      CHECK(worst > 0.95);
      // And they are exactly what Algorithm 2 gives with that convention.
      storage::StoreOptions so;
      so.read_only = true;
      auto store = storage::Store::Open(grown, so);
      REQUIRE(store.ok());
      std::vector<NodeId> sample = {0, old_n - 1, old_n, g.items - 1};
      std::vector<float> naive(sample.size() * d);
      REQUIRE(NaiveEmbed(**store, trained, sample, naive).ok());
      for (std::size_t j = 0; j < sample.size(); ++j) {
        for (std::uint32_t i = 0; i < d; ++i) {
          CHECK(std::abs(naive[j * d + i] - got[sample[j] * d + i]) < 1e-5);
        }
      }
    }
  }
}

}  // namespace pgraph::infer
