// The walk stage: columns written, pairs (labelled, co-occurrence, held out), bad input.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "test/walker/walker_test_util.h"

namespace pgraph::walker {
namespace {

using testing::StoreFromEdges;

std::string CommunityEdges(int communities, int items_per, int contexts_per, int per_context,
                           std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  for (int m = 0; m < communities; ++m) {
    for (int k = 0; k < items_per; ++k) {  // every item exists
      s += "m" + std::to_string(m) + "_" + std::to_string(k) + "\tc" + std::to_string(m) + "_" +
           std::to_string(k % contexts_per) + "\n";
    }
    for (int c = 0; c < contexts_per; ++c) {
      for (int k = 0; k < per_context; ++k) {
        s += "m" + std::to_string(m) + "_" + std::to_string(rng() % items_per) + "\tc" +
             std::to_string(m) + "_" + std::to_string(c) + "\n";
      }
    }
  }
  return s;
}

std::vector<Pair> ReadPairsColumn(const storage::Store& store, const char* name) {
  auto c = store.OpenColumn(name);
  REQUIRE(c.ok());
  REQUIRE(c.value()->info().width == 2);
  REQUIRE(c.value()->info().dtype == storage::DType::kU32);
  std::vector<NodeId> flat(c.value()->info().rows * 2);
  REQUIRE(c.value()->ReadRows(0, c.value()->info().rows, std::as_writable_bytes(std::span(flat)))
              .ok());
  std::vector<Pair> out;
  for (std::size_t k = 0; k < flat.size(); k += 2) out.emplace_back(flat[k], flat[k + 1]);
  return out;
}

struct StoredNeighborhoods {
  std::uint32_t t = 0;
  std::vector<NodeId> nbrs;
  std::vector<float> weights;
  std::vector<std::uint32_t> counts;
  bool Contains(NodeId q, NodeId i) const {
    for (std::uint32_t j = 0; j < t; ++j) {
      if (nbrs[q * t + j] == i) return true;
    }
    return false;
  }
};

StoredNeighborhoods ReadNeighborhoods(const storage::Store& store) {
  StoredNeighborhoods s;
  auto n = store.OpenColumn(storage::columns::kWalkNeighbors);
  auto w = store.OpenColumn(storage::columns::kWalkWeights);
  auto c = store.OpenColumn(kWalkCounts);
  REQUIRE(n.ok());
  REQUIRE(w.ok());
  REQUIRE(c.ok());
  REQUIRE(n.value()->info().dtype == storage::DType::kU32);
  REQUIRE(w.value()->info().dtype == storage::DType::kF32);
  s.t = n.value()->info().width;
  REQUIRE(w.value()->info().width == s.t);
  const std::uint64_t rows = n.value()->info().rows;
  REQUIRE(rows == store.num_items());
  s.nbrs.resize(rows * s.t);
  s.weights.resize(rows * s.t);
  s.counts.resize(rows);
  REQUIRE(n.value()->ReadRows(0, rows, std::as_writable_bytes(std::span(s.nbrs))).ok());
  REQUIRE(w.value()->ReadRows(0, rows, std::as_writable_bytes(std::span(s.weights))).ok());
  REQUIRE(c.value()->ReadRows(0, rows, std::as_writable_bytes(std::span(s.counts))).ok());
  return s;
}

TEST_CASE("walk stage: auto weighting, recorded; log weights without weights are refused",
          "[walker]") {
  auto unweighted = StoreFromEdges(CommunityEdges(2, 20, 10, 4, 3));
  WalkStageOptions o;
  o.walk.top_t = 8;
  o.walk.walks_per_node = 50;
  o.edge_weights = EdgeWeighting::kLog;
  auto r = RunWalkStage(unweighted->store.get(), o);
  REQUIRE(r.status().IsInvalidArgument());
  REQUIRE(!unweighted->store->HasColumn(storage::columns::kWalkNeighbors));

  o.edge_weights = EdgeWeighting::kAuto;  // the default: uniform here
  r = RunWalkStage(unweighted->store.get(), o);
  REQUIRE(r.ok());
  CHECK(r->edge_weights == EdgeWeighting::kUniform);

  auto t = StoreFromEdges("a\tc1\t3\nb\tc1\t1\nb\tc2\t7\nd\tc2\t2\na\tc2\t1\n");
  r = RunWalkStage(t->store.get(), o);  // auto: log weights
  REQUIRE(r.ok());
  CHECK(r->edge_weights == EdgeWeighting::kLog);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(t->store->HasColumn(storage::columns::kWalkNeighbors));
  auto params = t->store->GetMeta(kWalkParamsMeta);
  REQUIRE(params.ok());
  CHECK(params.value().find("\"step\": \"item-context-item, log\"") != std::string::npos);
}

TEST_CASE("auto weighting walks uniformly, and says so, when the weights do not fit the budget",
          "[walker]") {
  // Raw columns: the adjacency and weights are read from the map, only the cumulative
  // weights would need the budget.
  auto t = StoreFromEdges("a\tc1\t3\nb\tc1\t1\nb\tc2\t7\nd\tc2\t2\n", storage::Codec::kNone);
  const std::uint64_t adjacency = t->graph->pinned_bytes(), edges = t->graph->num_edges();
  t->graph.reset();
  t->ids.reset();
  t->store.reset();
  storage::StoreOptions so;
  // The adjacency fits; the cumulative weights of both directions (8 bytes per edge) do not.
  so.memory_budget = adjacency + 8 * edges - 1;
  auto store = storage::Store::Open(t->dir, so);
  REQUIRE(store.ok());
  WalkStageOptions o;
  o.walk.top_t = 4;
  o.walk.walks_per_node = 20;
  o.edge_weights = EdgeWeighting::kLog;
  auto r = RunWalkStage(store.value().get(), o);
  REQUIRE(r.status().IsResourceExhausted());
  INFO(r.status().ToString());
  CHECK(r.status().ToString().find("raise --memory-budget") != std::string::npos);
  o.edge_weights = EdgeWeighting::kAuto;
  r = RunWalkStage(store.value().get(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->edge_weights == EdgeWeighting::kUniform);
  CHECK(r->note.find("edge weights were not used") != std::string::npos);
}

TEST_CASE("walk stage writes neighbourhoods, co-occurrence pairs and params", "[walker]") {
  auto t = StoreFromEdges(CommunityEdges(3, 40, 20, 6, 1));
  WalkStageOptions o;
  o.walk.top_t = 8;
  o.walk.walks_per_node = 100;
  o.items_per_write = 17;  // several rounds
  o.pairs.heldout_fraction = 0.2;
  std::uint64_t last_progress = 0;
  o.progress = [&](std::uint64_t done, std::uint64_t total) {
    REQUIRE(done > last_progress);
    REQUIRE(total == t->graph->num_items());
    last_progress = done;
  };
  auto r = RunWalkStage(t->store.get(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(last_progress == t->graph->num_items());
  REQUIRE(r.value().pairs_source == "cooccurrence");
  REQUIRE(r.value().train_pairs > 0);
  REQUIRE(r.value().heldout_pairs > 0);
  StoredNeighborhoods nb = ReadNeighborhoods(*t->store);
  REQUIRE(nb.t == 8);
  // Rows as ComputeNeighborhoods gives them, except for held-out exclusions.
  auto train = ReadPairsColumn(*t->store, storage::columns::kTrainPairs);
  auto held = ReadPairsColumn(*t->store, storage::columns::kHeldOutPairs);
  REQUIRE(train.size() == r.value().train_pairs);
  REQUIRE(held.size() == r.value().heldout_pairs);
  std::set<Pair> train_set(train.begin(), train.end());
  for (auto [q, i] : held) {
    REQUIRE(train_set.count({q, i}) == 0);
    REQUIRE(train_set.count({i, q}) == 0);
    REQUIRE(!nb.Contains(q, i));
    REQUIRE(!nb.Contains(i, q));
  }
  for (auto [q, i] : train) {
    REQUIRE(q != i);
    REQUIRE(nb.Contains(q, i));  // co-occurrence pairs come from N(q)
    REQUIRE(t->Name(q).substr(0, 3) == t->Name(i).substr(0, 3));  // same community
  }
  auto params = t->store->GetMeta(kWalkParamsMeta);
  REQUIRE(params.ok());
  REQUIRE(params.value().find("\"top_t\": 8") != std::string::npos);
  REQUIRE(t->store->count("walk.top_t") == 8);
}

TEST_CASE("co-occurrence pairs are drawn in proportion to visits", "[walker]") {
  auto t = StoreFromEdges(CommunityEdges(2, 30, 10, 5, 3));
  WalkStageOptions o;
  o.walk.top_t = 6;
  o.walk.walks_per_node = 200;
  o.pairs.pairs_per_item = 2000;
  o.pairs.min_visits = 1;  // every stored neighbour is eligible: frequencies = weights
  auto r = RunWalkStage(t->store.get(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  StoredNeighborhoods nb = ReadNeighborhoods(*t->store);
  auto train = ReadPairsColumn(*t->store, storage::columns::kTrainPairs);
  std::map<Pair, int> seen;
  std::map<NodeId, int> per_q;
  for (auto p : train) {
    ++seen[p];
    ++per_q[p.first];
  }
  int checked = 0;
  for (NodeId q = 0; q < t->graph->num_items(); q += 7) {
    if (nb.counts[q] == 0) continue;
    REQUIRE(per_q[q] == 2000);
    double worst = 0;
    for (std::uint32_t j = 0; j < nb.counts[q]; ++j) {
      const double freq = seen[{q, nb.nbrs[q * nb.t + j]}] / 2000.0;
      worst = std::max(worst, std::abs(freq - nb.weights[q * nb.t + j]));
    }
    INFO("item " << q);
    CHECK(worst < 0.05);  // ~4.5 standard deviations of a frequency over 2000 draws
    ++checked;
  }
  REQUIRE(checked > 3);
}

TEST_CASE("co-occurrence pairs per item default to about one per edge", "[walker]") {
  REQUIRE(DefaultPairsPerItem(4476, 42135) == 9);  // Last.fm
  REQUIRE(DefaultPairsPerItem(1000, 1000) == 2);    // at least 2
  REQUIRE(DefaultPairsPerItem(1000, 1'000'000) == 10);
  REQUIRE(DefaultPairsPerItem(0, 0) == 2);
  auto t = StoreFromEdges(CommunityEdges(2, 20, 5, 8, 4));
  WalkStageOptions o;
  o.walk.top_t = 6;
  o.walk.walks_per_node = 100;
  auto r = RunWalkStage(t->store.get(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const std::uint32_t per_item = DefaultPairsPerItem(t->graph->num_items(), t->graph->num_edges());
  auto params = t->store->GetMeta(kWalkParamsMeta);
  REQUIRE(params.ok());
  CHECK(params.value().find("\"pairs_per_item\": " + std::to_string(per_item)) !=
        std::string::npos);
  CHECK(r.value().train_pairs <= per_item * t->graph->num_items());
  CHECK(r.value().train_pairs > (per_item - 1) * t->graph->num_items());
}

TEST_CASE("walk stage with labelled and held-out pair files", "[walker]") {
  auto t = StoreFromEdges(CommunityEdges(2, 30, 15, 5, 2));
  test::TempDir tmp;
  // Some labelled pairs; one of them is also held out (in the other direction).
  std::string pairs = "# q i\nm0_1\tm0_2\nm0_3 m0_4\nm1_5,m1_6\n\nm1_7\tm1_8\textra\n";
  test::WriteFile(tmp.Sub("pairs.tsv"), pairs);
  test::WriteFile(tmp.Sub("heldout.tsv"), "m0_4\tm0_3\nm1_9\tm1_10\n");
  WalkStageOptions o;
  o.walk.top_t = 5;
  o.walk.walks_per_node = 50;
  o.pairs.pairs_path = tmp.Sub("pairs.tsv");
  o.pairs.heldout_path = tmp.Sub("heldout.tsv");
  auto r = RunWalkStage(t->store.get(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r.value().pairs_source == "file");
  REQUIRE(r.value().dropped_train_pairs == 1);
  auto train = ReadPairsColumn(*t->store, storage::columns::kTrainPairs);
  auto held = ReadPairsColumn(*t->store, storage::columns::kHeldOutPairs);
  REQUIRE(train.size() == 3);
  REQUIRE(held.size() == 2);
  REQUIRE(train[0] == Pair{t->Id("m0_1"), t->Id("m0_2")});
  REQUIRE(train[1] == Pair{t->Id("m1_5"), t->Id("m1_6")});
  REQUIRE(train[2] == Pair{t->Id("m1_7"), t->Id("m1_8")});
  StoredNeighborhoods nb = ReadNeighborhoods(*t->store);
  for (auto [q, i] : held) {
    REQUIRE(!nb.Contains(q, i));
    REQUIRE(!nb.Contains(i, q));
  }
  // A requested split of labelled pairs is disjoint from training.
  o.pairs.heldout_path.clear();
  o.pairs.heldout_fraction = 0.5;
  auto r2 = RunWalkStage(t->store.get(), o);
  REQUIRE(r2.ok());
  REQUIRE(r2.value().train_pairs + r2.value().heldout_pairs == 4);
}

TEST_CASE("walk stage: bad input leaves the store untouched", "[walker]") {
  auto t = StoreFromEdges("a\tc1\nb\tc1\nb\tc2\nd\tc2\n");
  test::TempDir tmp;
  WalkStageOptions o;
  auto untouched = [&] {
    REQUIRE(t->store->Refresh().ok());
    REQUIRE(!t->store->HasColumn(storage::columns::kWalkNeighbors));
    REQUIRE(!t->store->HasColumn(storage::columns::kTrainPairs));
  };
  o.walk.top_t = 0;
  REQUIRE(RunWalkStage(t->store.get(), o).status().IsInvalidArgument());
  untouched();
  o = WalkStageOptions{};
  o.walk.restart = 1.5;
  REQUIRE(RunWalkStage(t->store.get(), o).status().IsInvalidArgument());
  untouched();
  o = WalkStageOptions{};
  test::WriteFile(tmp.Sub("p.tsv"), "a\tb\nzz\ta\n");
  o.pairs.pairs_path = tmp.Sub("p.tsv");
  auto bad = RunWalkStage(t->store.get(), o);
  REQUIRE(bad.status().IsInvalidArgument());
  REQUIRE(bad.status().message().find("'zz'") != std::string::npos);
  REQUIRE(bad.status().message().find("line 2") != std::string::npos);
  untouched();
  o.pairs.pairs_path = tmp.Sub("missing.tsv");
  REQUIRE(RunWalkStage(t->store.get(), o).status().IsIOError());
  untouched();
  o.pairs.pairs_path = tmp.Sub("p.tsv");
  o.pairs.skip_unknown = true;
  auto ok = RunWalkStage(t->store.get(), o);
  REQUIRE(ok.ok());
  REQUIRE(ok.value().skipped_pairs == 1);
  REQUIRE(ok.value().train_pairs == 1);
}

TEST_CASE("a store without adjacency is refused", "[walker]") {
  test::TempDir tmp;
  {
    auto s = storage::Store::Create(tmp.Sub("empty"), storage::StoreOptions{}, false);
    REQUIRE(s.ok());
    REQUIRE(s.value()->Seal().ok());
  }
  auto s = storage::Store::Open(tmp.Sub("empty"), storage::StoreOptions{});
  REQUIRE(s.ok());
  auto g = WalkGraph::Open(*s.value());
  REQUIRE(g.status().IsInvalidArgument());
  REQUIRE(g.status().message().find("no adjacency") != std::string::npos);
  REQUIRE(RunWalkStage(s.value().get(), WalkStageOptions{}).status().IsInvalidArgument());
  REQUIRE(s.value()->ListColumns().empty());
}

}  // namespace
}  // namespace pgraph::walker
