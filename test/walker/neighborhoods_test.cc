// Importance neighbourhoods on hand-checkable graphs; weights; determinism; exact visits.
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "test/walker/walker_test_util.h"

namespace pgraph::walker {
namespace {

using testing::Row;
using testing::StoreFromEdges;
using testing::StoreFromLists;

// Every valid row: weights positive, non-increasing, summing to 1; padding after them.
void CheckRows(const Neighborhoods& nb, NodeId first = 0) {
  for (std::uint64_t r = 0; r < nb.rows(); ++r) {
    const std::uint32_t k = nb.counts[r];
    REQUIRE(k <= nb.width);
    double sum = 0;
    for (std::uint32_t j = 0; j < nb.width; ++j) {
      const NodeId v = nb.neighbors[r * nb.width + j];
      const float w = nb.weights[r * nb.width + j];
      if (j < k) {
        REQUIRE(v != kInvalidNode);
        REQUIRE(v != first + r);
        REQUIRE(w > 0);
        if (j > 0) REQUIRE(w <= nb.weights[r * nb.width + j - 1]);
        sum += w;
      } else {
        REQUIRE(v == kInvalidNode);
        REQUIRE(w == 0.0f);
      }
    }
    if (k > 0) REQUIRE(std::abs(sum - 1.0) < 1e-5);
  }
}

TEST_CASE("star: the hub tops every leaf's neighbourhood, leaves share the hub's", "[walker]") {
  // Hub h shares one context with each leaf; leaves share nothing else.
  auto t = StoreFromEdges("h\tc1\nh\tc2\nh\tc3\nh\tc4\nl1\tc1\nl2\tc2\nl3\tc3\nl4\tc4\n");
  WalkOptions o;
  o.top_t = 10;
  o.walks_per_node = 4000;
  o.walk_length = 2;
  auto r = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r.ok());
  const Neighborhoods& nb = r.value();
  CheckRows(nb);
  const NodeId h = t->Id("h");
  auto hub = Row(nb, h);
  REQUIRE(hub.size() == 4);  // all four leaves, nothing else exists
  for (auto [v, w] : hub) {
    REQUIRE(v != h);
    REQUIRE(std::abs(w - 0.25f) < 0.03f);  // symmetric leaves
  }
  for (const char* leaf : {"l1", "l2", "l3", "l4"}) {
    auto row = Row(nb, t->Id(leaf));
    REQUIRE(row.size() == 4);           // h and the three other leaves
    REQUIRE(row[0].first == h);         // the hub is by far the most visited
    REQUIRE(row[0].second > 0.5f);
  }
}

TEST_CASE("path: walk length bounds the reach; short rows are padded", "[walker]") {
  // i0 -c0- i1 -c1- i2 -c2- i3 -c3- i4
  auto t = StoreFromEdges(
      "i0\tc0\ni1\tc0\ni1\tc1\ni2\tc1\ni2\tc2\ni3\tc2\ni3\tc3\ni4\tc3\n");
  auto id = [&](int k) { return t->Id("i" + std::to_string(k)); };
  WalkOptions o;
  o.top_t = 3;
  o.walks_per_node = 500;
  o.walk_length = 1;
  auto r1 = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r1.ok());
  CheckRows(r1.value());
  auto set_of = [](const std::vector<std::pair<NodeId, float>>& row) {
    std::set<NodeId> s;
    for (auto [v, w] : row) s.insert(v);
    return s;
  };
  // One step reaches exactly the items sharing a context.
  REQUIRE(set_of(Row(r1.value(), id(0))) == std::set<NodeId>{id(1)});
  REQUIRE(Row(r1.value(), id(0))[0].second == 1.0f);
  REQUIRE(set_of(Row(r1.value(), id(2))) == std::set<NodeId>{id(1), id(3)});
  REQUIRE(r1.value().counts[id(0)] == 1);  // fewer than T: counted, the rest padded
  // Two steps from an end reach distance two, never three.
  o.walk_length = 2;
  auto r2 = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r2.ok());
  CheckRows(r2.value());
  REQUIRE(set_of(Row(r2.value(), id(0))) == std::set<NodeId>{id(1), id(2)});
  REQUIRE(Row(r2.value(), id(0))[0].first == id(1));
}

TEST_CASE("two disjoint communities: no neighbour crosses", "[walker]") {
  std::mt19937 rng(7);
  std::string edges;
  for (int comm = 0; comm < 2; ++comm) {
    for (int c = 0; c < 30; ++c) {
      for (int k = 0; k < 5; ++k) {
        edges += (comm ? "b" : "a") + std::to_string(rng() % 40) + "\t" + (comm ? "B" : "A") +
                 std::to_string(c) + "\n";
      }
    }
  }
  auto t = StoreFromEdges(edges);
  WalkOptions o;
  o.top_t = 20;
  o.walks_per_node = 100;
  o.walk_length = 4;
  auto r = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r.ok());
  const Neighborhoods& nb = r.value();
  CheckRows(nb);
  std::uint64_t checked = 0;
  for (NodeId u = 0; u < nb.rows(); ++u) {
    const char side = t->Name(u)[0];
    for (auto [v, w] : Row(nb, u)) {
      REQUIRE(t->Name(v)[0] == side);
      ++checked;
    }
  }
  REQUIRE(checked > 0);
}

TEST_CASE("isolated and degree-1 items", "[walker]") {
  // item 0: no edges. item 1: alone in context 0. items 2, 3: share context 1 (degree 1 each).
  // item 4: contexts 1 and 2; item 5 only in context 2.
  auto t = StoreFromLists({{}, {0}, {1}, {1}, {1, 2}, {2}}, 3);
  WalkOptions o;
  o.top_t = 4;
  o.walks_per_node = 300;
  o.walk_length = 3;
  auto r = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r.ok());
  const Neighborhoods& nb = r.value();
  CheckRows(nb);
  REQUIRE(nb.counts[0] == 0);  // isolated: all padding
  REQUIRE(nb.counts[1] == 0);  // only ever returns to itself
  std::set<NodeId> reach2;
  for (auto [v, w] : Row(nb, 2)) reach2.insert(v);
  REQUIRE(reach2 == std::set<NodeId>{3, 4, 5});
  REQUIRE(Row(nb, 5)[0].first == 4);  // 5's only way out
  REQUIRE(Row(nb, 4)[0].first != 4);
  // Through storage::Graph the same walks give the same rows.
  auto g = storage::Graph::Open(*t->store);
  REQUIRE(g.ok());
  auto r2 = ComputeNeighborhoods(*g.value(), 0, t->graph->num_items(), o);
  REQUIRE(r2.ok());
  REQUIRE(r2.value().neighbors == nb.neighbors);
  REQUIRE(r2.value().weights == nb.weights);
}

std::unique_ptr<testing::TestStore> RandomStore(int items, int contexts, int edges,
                                                std::uint32_t seed,
                                                storage::Codec codec = storage::Codec::kZstd) {
  std::mt19937 rng(seed);
  std::string s;
  for (int e = 0; e < edges; ++e) {
    // Skewed contexts so some items are popular.
    int i = static_cast<int>(std::pow(static_cast<double>(rng() % 1000) / 1000.0, 2) * items);
    s += "i" + std::to_string(i) + "\tc" + std::to_string(rng() % contexts) + "\n";
  }
  return StoreFromEdges(s, codec);
}

TEST_CASE("bit-identical across thread counts, lanes and block sizes", "[walker]") {
  auto t = RandomStore(400, 150, 3000, 3);
  WalkOptions o;
  o.top_t = 10;
  o.walks_per_node = 50;
  o.walk_length = 3;
  o.restart = 0.2;
  o.seed = 42;
  auto run = [&](int threads, std::uint32_t lanes, std::uint32_t block) {
    tbb::task_arena arena(threads);
    Result<Neighborhoods> r = Status::Internal("unset");
    WalkOptions oo = o;
    oo.lanes = lanes;
    oo.block_items = block;
    arena.execute([&] { r = ComputeNeighborhoods(*t->graph, oo); });
    REQUIRE(r.ok());
    return std::move(r).value();
  };
  Neighborhoods a = run(1, 1, 256);
  CheckRows(a);
  for (auto [threads, lanes, block] : {std::tuple{2, 32u, 256u}, std::tuple{2, 7u, 13u},
                                       std::tuple{1, 64u, 1u}}) {
    Neighborhoods b = run(threads, lanes, block);
    REQUIRE(b.neighbors == a.neighbors);
    REQUIRE(std::memcmp(b.weights.data(), a.weights.data(), a.weights.size() * 4) == 0);
    REQUIRE(b.counts == a.counts);
    REQUIRE(b.steps == a.steps);
  }
  // A sub-range gives the same rows as the full run.
  auto part = ComputeNeighborhoods(*t->graph, 100, 50, o);
  REQUIRE(part.ok());
  REQUIRE(std::equal(part.value().neighbors.begin(), part.value().neighbors.end(),
                     a.neighbors.begin() + 100 * o.top_t));
  // Another seed gives other walks.
  o.seed = 43;
  Neighborhoods c = run(2, 32, 256);
  REQUIRE(c.weights != a.weights);
}

TEST_CASE("zero-copy: raw LMDB adjacency is not pinned", "[walker]") {
  // Chunks big enough for LMDB overflow pages (page-aligned); tiny values stored inline on a
  // page may be misaligned, and storage copies those.
  auto raw = RandomStore(5000, 2000, 40000, 5, storage::Codec::kNone);
  REQUIRE(raw->graph->pinned_bytes() == 0);
  auto zstd = RandomStore(5000, 2000, 40000, 5, storage::Codec::kZstd);
  REQUIRE(zstd->graph->pinned_bytes() > 0);
  // Same graph, same neighbourhoods whatever the codec.
  WalkOptions o;
  o.top_t = 5;
  o.walks_per_node = 20;
  auto a = ComputeNeighborhoods(*raw->graph, o);
  auto b = ComputeNeighborhoods(*zstd->graph, o);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a.value().neighbors == b.value().neighbors);
}

// Exact expected visit distribution of the neighbourhood walks from u: after step t the
// walk is alive with probability (1-p)^(t-1) and sits at e_u P^t.
std::vector<double> ExactVisits(const WalkGraph& g, const std::vector<std::vector<NodeId>>& ic,
                                const std::vector<std::vector<NodeId>>& ci, NodeId u, int length,
                                double p) {
  const std::size_t n = ic.size();
  std::vector<double> x(n, 0.0), total(n, 0.0);
  x[u] = 1.0;
  double alive = 1.0;
  for (int t = 1; t <= length; ++t) {
    std::vector<double> y(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      if (x[i] == 0) continue;
      for (NodeId c : ic[i]) {
        for (NodeId j : ci[c]) y[j] += x[i] / ic[i].size() / ci[c].size();
      }
    }
    x = y;
    for (std::size_t i = 0; i < n; ++i) total[i] += alive * x[i];
    alive *= 1 - p;
  }
  (void)g;
  return total;
}

TEST_CASE("visit estimates converge to the exact walk distribution", "[walker]") {
  std::vector<std::vector<NodeId>> ic = {{0, 1}, {0}, {1, 2}, {2, 3}, {3}, {1, 3}, {2}};
  const std::uint64_t contexts = 4;
  std::vector<std::vector<NodeId>> ci(contexts);
  for (NodeId i = 0; i < ic.size(); ++i) {
    for (NodeId c : ic[i]) ci[c].push_back(i);
  }
  auto t = StoreFromLists(ic, contexts);
  const NodeId u = 0;
  const int length = 3;
  const double p = 0.25;
  std::vector<double> exact = ExactVisits(*t->graph, ic, ci, u, length, p);
  exact[u] = 0;
  double z = 0;
  for (double v : exact) z += v;
  for (double& v : exact) v /= z;
  double prev_err = 1e9;
  for (std::uint32_t walks : {1000u, 100000u}) {
    WalkOptions o;
    o.top_t = 10;
    o.walks_per_node = walks;
    o.walk_length = length;
    o.restart = p;
    auto r = ComputeNeighborhoods(*t->graph, u, 1, o);
    REQUIRE(r.ok());
    std::vector<double> est(ic.size(), 0.0);
    for (auto [v, w] : Row(r.value(), 0)) est[v] = w;
    double err = 0;
    for (std::size_t i = 0; i < ic.size(); ++i) err = std::max(err, std::abs(est[i] - exact[i]));
    INFO("walks " << walks << " max abs error " << err);
    REQUIRE(err < prev_err);
    prev_err = err;
  }
  // Stated tolerance: 1e5 walks estimate every weight within 0.005 (~10 standard errors).
  REQUIRE(prev_err < 0.005);
}

TEST_CASE("held-out pairs never enter the neighbourhoods of their items", "[walker]") {
  auto t = RandomStore(200, 60, 1500, 11);
  WalkOptions o;
  o.top_t = 20;
  o.walks_per_node = 100;
  auto base = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(base.ok());
  // Hold out each item's top neighbour: the strongest possible leak.
  std::vector<Pair> held;
  for (NodeId u = 0; u < t->graph->num_items(); u += 3) {
    if (base.value().counts[u] > 0) held.emplace_back(u, base.value().neighbors[u * o.top_t]);
  }
  REQUIRE(held.size() > 10);
  o.exclude = held;
  auto r = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(r.ok());
  CheckRows(r.value());
  for (auto [q, i] : held) {
    for (auto [v, w] : Row(r.value(), q)) REQUIRE(v != i);
    for (auto [v, w] : Row(r.value(), i)) REQUIRE(v != q);
  }
}

TEST_CASE("early stopping walks less and stays deterministic", "[walker]") {
  auto t = RandomStore(300, 40, 3000, 13);
  WalkOptions o;
  o.top_t = 10;
  o.walks_per_node = 400;
  o.walk_length = 3;
  auto full = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(full.ok());
  o.early_stop_nodes = 10;
  o.early_stop_visits = 4;
  auto a = ComputeNeighborhoods(*t->graph, o);
  REQUIRE(a.ok());
  CheckRows(a.value());
  REQUIRE(a.value().steps < full.value().steps);
  tbb::task_arena arena(2);
  Result<Neighborhoods> b = Status::Internal("unset");
  o.lanes = 5;
  arena.execute([&] { b = ComputeNeighborhoods(*t->graph, o); });
  REQUIRE(b.ok());
  REQUIRE(b.value().neighbors == a.value().neighbors);
  REQUIRE(b.value().weights == a.value().weights);
}

// q's two contexts: cA (edge weight 1, shared with a) and cB (weight 9, shared with b, whose
// edge weighs 1). One-step walks from q reach a with probability P(cA) P(a | cA) and b with
// P(cB) P(b | cB), each step choosing an edge in proportion to f(weight).
TEST_CASE("weighted walks step in proportion to the transformed edge weights", "[walker]") {
  auto t = StoreFromEdges("q\tcA\t1\na\tcA\t1\nq\tcB\t9\nb\tcB\t1\n");
  const NodeId q = t->Id("q"), a = t->Id("a"), b = t->Id("b");
  auto share_of_a = [&](EdgeWeighting weighting) {
    auto g = WalkGraph::Open(*t->store, weighting);
    REQUIRE(g.ok());
    CHECK(g.value()->weighting() == weighting);
    WalkOptions o;
    o.walks_per_node = 100000;
    o.walk_length = 1;
    auto r = ComputeNeighborhoods(*g.value(), q, 1, o);
    REQUIRE(r.ok());
    CheckRows(r.value(), q);
    double wa = 0, wb = 0;
    for (auto [v, w] : Row(r.value(), 0)) {
      if (v == a) wa += w;
      if (v == b) wb += w;
    }
    REQUIRE(std::abs(wa + wb - 1.0) < 1e-5);
    return wa;
  };
  auto expected = [](double f1, double f9) {
    const double pa = f1 / (f1 + f9) * 0.5, pb = f9 / (f1 + f9) * (f1 / (f1 + f9));
    return pa / (pa + pb);
  };
  // 1e5 walks: one standard error of a share is below 0.002.
  CHECK(std::abs(share_of_a(EdgeWeighting::kUniform) - 0.5) < 0.01);
  CHECK(std::abs(share_of_a(EdgeWeighting::kLinear) - expected(1, 9)) < 0.01);  // 0.357
  CHECK(std::abs(share_of_a(EdgeWeighting::kLog) - expected(std::log1p(1.0), std::log1p(9.0))) <
        0.01);  // 0.394
  // The uniform graph walks exactly as before weights existed: bit-identical rows.
  WalkOptions o;
  auto plain = ComputeNeighborhoods(*t->graph, o);
  auto g = WalkGraph::Open(*t->store, EdgeWeighting::kUniform);
  REQUIRE(g.ok());
  auto uniform = ComputeNeighborhoods(*g.value(), o);
  REQUIRE(plain.ok());
  REQUIRE(uniform.ok());
  CHECK(plain->neighbors == uniform->neighbors);
  CHECK(plain->weights == uniform->weights);
}

TEST_CASE("weighted walks need edge weights; auto takes log weights where there are any",
          "[walker]") {
  auto t = StoreFromEdges("a\tc\nb\tc\n");
  auto g = WalkGraph::Open(*t->store, EdgeWeighting::kLog);
  REQUIRE(g.status().IsInvalidArgument());
  CHECK(g.status().ToString().find("no edge weights") != std::string::npos);
  g = WalkGraph::Open(*t->store, EdgeWeighting::kAuto);
  REQUIRE(g.ok());
  CHECK(g.value()->weighting() == EdgeWeighting::kUniform);
  CHECK(g.value()->pinned_bytes() == t->graph->pinned_bytes());
  auto weighted = StoreFromEdges("a\tc\t2\nb\tc\t5\n");
  g = WalkGraph::Open(*weighted->store, EdgeWeighting::kAuto);
  REQUIRE(g.ok());
  CHECK(g.value()->weighting() == EdgeWeighting::kLog);
  // Cumulative weights: one float per edge and direction.
  CHECK(g.value()->pinned_bytes() ==
        weighted->graph->pinned_bytes() + 2 * 2 * sizeof(float));
  CHECK(ParseEdgeWeighting("log").value() == EdgeWeighting::kLog);
  CHECK(ParseEdgeWeighting("linear").value() == EdgeWeighting::kLinear);
  CHECK(ParseEdgeWeighting("uniform").value() == EdgeWeighting::kUniform);
  CHECK(ParseEdgeWeighting("auto").value() == EdgeWeighting::kAuto);
  CHECK(ParseEdgeWeighting("sqrt").status().IsInvalidArgument());
  for (auto w : {EdgeWeighting::kUniform, EdgeWeighting::kLinear, EdgeWeighting::kLog,
                 EdgeWeighting::kAuto}) {
    CHECK(ParseEdgeWeighting(EdgeWeightingName(w)).value() == w);
  }
}

TEST_CASE("bad options are rejected", "[walker]") {
  auto t = StoreFromEdges("a\tc\nb\tc\n");
  WalkOptions o;
  o.top_t = 0;
  REQUIRE(ComputeNeighborhoods(*t->graph, o).status().IsInvalidArgument());
  o = WalkOptions{};
  o.restart = 1.0;
  REQUIRE(ComputeNeighborhoods(*t->graph, o).status().IsInvalidArgument());
  o.restart = -0.1;
  REQUIRE(ComputeNeighborhoods(*t->graph, o).status().IsInvalidArgument());
  o = WalkOptions{};
  o.walk_length = 0;
  REQUIRE(ComputeNeighborhoods(*t->graph, o).status().IsInvalidArgument());
  o = WalkOptions{};
  REQUIRE(ComputeNeighborhoods(*t->graph, 1, 5, o).status().IsInvalidArgument());
}

}  // namespace
}  // namespace pgraph::walker
