// Learning works: on a generated graph with planted communities, weak features and
// neighbourhoods mostly inside the community, the loss falls, validation hit-rate rises and
// ends clearly above ranking by the input features alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "test/train/fixtures.h"
#include "train/trainer.h"

namespace pgraph::train {
namespace {

// Hit-rate@k of ranking every item by cosine similarity of raw features to q.
double FeatureHitRate(const testing::PlantedGraph& g, std::uint32_t k) {
  const std::uint32_t F = g.feature_dim;
  std::vector<float> unit(g.features);
  for (std::uint32_t u = 0; u < g.num_items; ++u) {
    double n = 0;
    for (std::uint32_t f = 0; f < F; ++f) n += unit[u * F + f] * unit[u * F + f];
    for (std::uint32_t f = 0; f < F; ++f) unit[u * F + f] /= static_cast<float>(std::sqrt(n));
  }
  auto dot = [&](NodeId a, NodeId b) {
    double s = 0;
    for (std::uint32_t f = 0; f < F; ++f) s += unit[a * F + f] * unit[b * F + f];
    return s;
  };
  std::size_t hits = 0;
  for (auto [q, i] : g.heldout_pairs) {
    double target = dot(q, i);
    std::size_t higher = 0;
    for (NodeId c = 0; c < g.num_items; ++c) {
      if (c != q && c != i && dot(q, c) > target) ++higher;
    }
    if (higher + 1 <= k) ++hits;
  }
  return static_cast<double>(hits) / g.heldout_pairs.size();
}

}  // namespace

TEST_CASE("loss falls and hit-rate rises above feature ranking on planted communities",
          "[quality][slow]") {
  testing::PlantedOptions po;
  po.num_items = 1200;
  po.communities = 40;
  testing::PlantedSources p(po);
  const testing::PlantedGraph& g = p.g;
  TrainData data = p.Data();
  TrainOptions o;
  o.epochs = 5;
  o.batch = 128;
  o.dim = 32;
  o.hidden = 64;
  o.negatives = 100;
  o.lr = 0.01;
  o.threads = 2;
  o.seed = 5;
  o.eval_k = 10;
  o.eval_pairs = 2000;
  auto r = TrainOnData(data, o);
  REQUIRE(r.ok());
  const double baseline = FeatureHitRate(g, 10);
  for (const EpochStats& e : r->epochs) {
    std::printf("epoch %u loss %.4f hit@10 %.3f mrr %.3f (features only: %.3f) %.0f pairs/s\n",
                e.epoch, e.mean_loss, e.hit_rate, e.mrr, baseline, e.pairs_per_second);
  }
  const TimeBreakdown& t = r->time;
  std::printf("time: sampling %.2f gathering %.2f transfer %.2f forward %.2f backward %.2f "
              "optimizer %.2f wait %.2f validation %.2f total %.2f\n",
              t.sampling, t.gathering, t.transfer, t.forward, t.backward, t.optimizer, t.wait,
              t.validation, r->seconds);
  const EpochStats& first = r->epochs.front();
  const EpochStats& last = r->epochs.back();
  CHECK(last.mean_loss < 0.7 * first.mean_loss);
  CHECK(last.hit_rate > first.hit_rate);
  CHECK(last.hit_rate > baseline + 0.1);
  CHECK(last.hit_rate > 1.5 * baseline);
  CHECK(last.mrr > 0);
}

}  // namespace pgraph::train

namespace pgraph::train {
namespace {

// A 300-item planted graph with in-memory sources, and options that train on it in well
// under a second.
struct SmallPlanted : testing::PlantedSources {
  SmallPlanted() : PlantedSources(Graph()) {}
  static testing::PlantedOptions Graph() {
    testing::PlantedOptions po;
    po.num_items = 300;
    po.communities = 10;
    po.pairs_per_item = 4;
    return po;
  }
  static TrainOptions Options() {
    TrainOptions o;
    o.epochs = 2;
    o.batch = 64;
    o.dim = 16;
    o.hidden = 32;
    o.negatives = 30;
    o.lr = 0.1;  // 0.0125 at batch 64 (linear scaling)
    o.threads = 1;
    o.hard_negatives = false;
    o.eval_pairs = 200;
    return o;
  }
};

}  // namespace

TEST_CASE("loss falls within two epochs on a small planted graph", "[quality]") {
  SmallPlanted p;
  auto r = TrainOnData(p.Data(), SmallPlanted::Options());
  REQUIRE(r.ok());
  REQUIRE(r->epochs.size() == 2);
  CHECK(r->epochs[1].mean_loss < 0.8 * r->epochs[0].mean_loss);
  CHECK(r->epochs[1].hit_rate >= r->epochs[0].hit_rate);
}

// Every objective, with and without the learned length and in-batch negatives, and a
// structural feature: each must learn (loss falls, hit-rate well above chance).
TEST_CASE("each loss and negative option learns on a small planted graph", "[quality]") {
  SmallPlanted p;
  // A structural column that varies by item, to exercise the concatenation.
  std::vector<float> degree(p.g.num_items);
  for (std::uint32_t u = 0; u < p.g.num_items; ++u) {
    degree[u] = static_cast<float>(u % 7) - 3.0f;
  }
  InMemoryFeatures structural(1, degree);
  for (Loss loss : {Loss::kMargin, Loss::kSoftmax}) {
    for (int variant = 0; variant < 3; ++variant) {
      DYNAMIC_SECTION(LossName(loss) << " variant " << variant) {
        TrainData data = p.Data();
        if (variant == 2) {
          data.structural = &structural;
          data.degree_mean = 0.5f;
          data.degree_std = 2.0f;
        }
        TrainOptions o = SmallPlanted::Options();
        o.loss = loss;
        o.magnitude = variant >= 1;
        o.in_batch_negatives = variant >= 1;
        auto r = TrainOnData(data, o);
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        REQUIRE(r->epochs.size() == 2);
        CHECK(r->epochs[1].mean_loss < r->epochs[0].mean_loss);
        CHECK(r->epochs[1].hit_rate > 5.0 * 10 / p.g.num_items);  // 5x chance at K = 10
        // The model records what inference must repeat.
        CHECK(r->config.find(std::string("magnitude=") + (variant >= 1 ? "1" : "0")) !=
              std::string::npos);
        CHECK(r->config.find(std::string("structural_dim=") + (variant == 2 ? "1" : "0")) !=
              std::string::npos);
      }
    }
  }
}

}  // namespace pgraph::train
