// Personalized PageRank: Monte-Carlo against power iteration; multi-source; batch; hard
// negatives.
#include <tbb/task_arena.h>

#include <cmath>
#include <random>
#include <set>

#include "test/walker/walker_test_util.h"

namespace pgraph::walker {
namespace {

using testing::StoreFromLists;

struct SmallGraph {
  std::vector<std::vector<NodeId>> ic, ci;
  std::unique_ptr<testing::TestStore> t;
};

SmallGraph MakeSmall() {
  SmallGraph g;
  // 9 items, 5 contexts, uneven degrees, one item (8) isolated.
  g.ic = {{0, 1}, {0}, {0, 2}, {1, 2, 3}, {3}, {3, 4}, {4}, {2}, {}};
  g.ci.resize(5);
  for (NodeId i = 0; i < g.ic.size(); ++i) {
    for (NodeId c : g.ic[i]) g.ci[c].push_back(i);
  }
  g.t = StoreFromLists(g.ic, 5);
  return g;
}

// pi = a e_s + (1 - a) pi P by power iteration, P the item -> context -> item chain.
std::vector<double> ExactPpr(const SmallGraph& g, std::vector<NodeId> sources, double a) {
  const std::size_t n = g.ic.size();
  std::vector<double> e(n, 0.0), pi(n, 0.0);
  for (NodeId s : sources) e[s] += 1.0 / sources.size();
  pi = e;
  for (int it = 0; it < 500; ++it) {
    std::vector<double> next(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      if (g.ic[i].empty()) {  // cannot move: its walks stay home (they only restart)
        next[i] += (1 - a) * pi[i];
        continue;
      }
      for (NodeId c : g.ic[i]) {
        for (NodeId j : g.ci[c]) {
          next[j] += (1 - a) * pi[i] / g.ic[i].size() / g.ci[c].size();
        }
      }
    }
    for (std::size_t i = 0; i < n; ++i) next[i] += a * e[i];
    pi = next;
  }
  return pi;
}

double MaxError(const std::vector<ScoredItem>& est, const std::vector<double>& exact,
                const std::set<NodeId>& excluded) {
  std::vector<double> e(exact.size(), 0.0);
  for (auto [v, s] : est) {
    REQUIRE(excluded.count(v) == 0);
    e[v] = s;
  }
  double err = 0;
  for (std::size_t i = 0; i < exact.size(); ++i) {
    if (excluded.count(static_cast<NodeId>(i))) continue;
    err = std::max(err, std::abs(e[i] - exact[i]));
  }
  return err;
}

TEST_CASE("PPR converges to power iteration", "[walker]") {
  SmallGraph g = MakeSmall();
  const double a = 0.3;
  std::vector<double> exact = ExactPpr(g, {0}, a);
  double prev = 1e9;
  for (std::uint32_t walks : {2000u, 200000u}) {
    PprOptions o;
    o.restart = a;
    o.walks = walks;
    auto r = PersonalizedPageRank(*g.t->graph, 0, o);
    REQUIRE(r.ok());
    // Ranked by score, descending; the isolated item is never reached.
    for (std::size_t k = 1; k < r.value().size(); ++k) {
      REQUIRE(r.value()[k].second <= r.value()[k - 1].second);
    }
    for (auto [v, s] : r.value()) REQUIRE(v != 8);
    double err = MaxError(r.value(), exact, {0});
    INFO("walks " << walks << " max abs error " << err);
    REQUIRE(err < prev);
    prev = err;
  }
  // Stated tolerance: 2e5 walks estimate every PPR entry within 0.005 (~10 standard errors).
  REQUIRE(prev < 0.005);
}

TEST_CASE("multi-source PPR estimates the mean PPR and excludes every source", "[walker]") {
  SmallGraph g = MakeSmall();
  PprOptions o;
  o.restart = 0.4;
  o.walks = 200000;
  std::vector<NodeId> sources = {1, 5};
  auto r = PersonalizedPageRank(*g.t->graph, sources, o);
  REQUIRE(r.ok());
  REQUIRE(MaxError(r.value(), ExactPpr(g, sources, 0.4), {1, 5}) < 0.005);
}

TEST_CASE("PPR: top_k, determinism, adaptors and batch agree", "[walker]") {
  SmallGraph g = MakeSmall();
  PprOptions o;
  o.walks = 5000;
  o.seed = 9;
  auto a = PersonalizedPageRank(*g.t->graph, 3, o);
  REQUIRE(a.ok());
  PprOptions o2 = o;
  o2.lanes = 3;
  auto b = PersonalizedPageRank(*g.t->graph, 3, o2);
  REQUIRE(b.ok());
  REQUIRE(a.value() == b.value());
  auto sg = storage::Graph::Open(*g.t->store);
  REQUIRE(sg.ok());
  auto c = PersonalizedPageRank(*sg.value(), 3, o);
  REQUIRE(c.ok());
  REQUIRE(c.value() == a.value());
  o2 = o;
  o2.top_k = 2;
  auto d = PersonalizedPageRank(*g.t->graph, 3, o2);
  REQUIRE(d.ok());
  REQUIRE(d.value().size() == 2);
  REQUIRE(d.value()[0] == a.value()[0]);
  REQUIRE(d.value()[1] == a.value()[1]);
  std::vector<NodeId> sources = {3, 0, 8, 3};
  Result<std::vector<std::vector<ScoredItem>>> batch = Status::Internal("unset");
  tbb::task_arena arena(2);
  arena.execute([&] { batch = PersonalizedPageRankBatch(*g.t->graph, sources, o); });
  REQUIRE(batch.ok());
  REQUIRE(batch.value().size() == 4);
  REQUIRE(batch.value()[0] == a.value());
  REQUIRE(batch.value()[3] == a.value());
  REQUIRE(batch.value()[2].empty());  // isolated source reaches nothing
}

TEST_CASE("PPR rejects bad input", "[walker]") {
  SmallGraph g = MakeSmall();
  PprOptions o;
  REQUIRE(PersonalizedPageRank(*g.t->graph, 9, o).status().IsInvalidArgument());
  REQUIRE(PersonalizedPageRank(*g.t->graph, std::span<const NodeId>(), o)
              .status()
              .IsInvalidArgument());
  o.restart = 0;
  REQUIRE(PersonalizedPageRank(*g.t->graph, 0, o).status().IsInvalidArgument());
  o.restart = 1;
  REQUIRE(PersonalizedPageRank(*g.t->graph, 0, o).status().IsInvalidArgument());
}

TEST_CASE("hard-negative window scales with the catalogue", "[walker]") {
  REQUIRE(DefaultHardNegativeWindow(2'000'000'000).lo == 2000);
  REQUIRE(DefaultHardNegativeWindow(2'000'000'000).hi == 5000);
  REQUIRE(DefaultHardNegativeWindow(1'000'000).lo == 2000);
  REQUIRE(DefaultHardNegativeWindow(1'000'000).hi == 5000);
  REQUIRE(DefaultHardNegativeWindow(100'000).lo == 500);
  REQUIRE(DefaultHardNegativeWindow(100'000).hi == 2000);
  REQUIRE(DefaultHardNegativeWindow(100).lo == 10);
  REQUIRE(DefaultHardNegativeWindow(100).hi == 40);
}

TEST_CASE("hard negatives come from the PPR rank window", "[walker]") {
  // A ring of 300 items, each context joining three consecutive items: PPR decays with ring
  // distance, so rank windows are well separated.
  std::vector<std::vector<NodeId>> ic(300);
  for (NodeId c = 0; c < 300; ++c) {
    for (NodeId k = 0; k < 3; ++k) ic[(c + k) % 300].push_back(c);
  }
  auto t = StoreFromLists(ic, 300);
  HardNegativeOptions o;
  o.ppr.walks = 20000;
  o.ppr.restart = 0.1;
  o.window = {20, 40};
  auto ranked = PersonalizedPageRank(*t->graph, 0, o.ppr);
  REQUIRE(ranked.ok());
  REQUIRE(ranked.value().size() > 40);
  std::set<NodeId> window;
  for (std::size_t r = 20; r < 40; ++r) window.insert(ranked.value()[r].first);
  auto neg = DrawHardNegatives(*t->graph, 0, 6, o, 77);
  REQUIRE(neg.ok());
  REQUIRE(neg.value().size() == 6);
  std::set<NodeId> distinct(neg.value().begin(), neg.value().end());
  REQUIRE(distinct.size() == 6);
  for (NodeId v : neg.value()) {
    REQUIRE(v != 0);
    REQUIRE(window.count(v) == 1);
  }
  auto again = DrawHardNegatives(*t->graph, 0, 6, o, 77);
  REQUIRE(again.ok());
  REQUIRE(again.value() == neg.value());
  // The two halves (what train's window cache uses) draw exactly the same, for any seed.
  auto kept = HardNegativeWindow(*t->graph, 0, o);
  REQUIRE(kept.ok());
  CHECK(std::set<NodeId>(kept.value().begin(), kept.value().end()) == window);
  for (std::uint64_t seed : {77ull, 1ull, 12345ull}) {
    auto whole = DrawHardNegatives(*t->graph, 0, 6, o, seed);
    REQUIRE(whole.ok());
    CHECK(DrawFromHardNegativeWindow(kept.value(), 0, 300, 6, o, seed) == whole.value());
  }
  // A window past what walks reach slides down; an empty graph region falls back to uniform.
  o.window = {100000, 100020};
  auto slid = DrawHardNegatives(*t->graph, 0, 6, o, 1);
  REQUIRE(slid.ok());
  REQUIRE(slid.value().size() == 6);
  o.window = {5, 5};
  REQUIRE(DrawHardNegatives(*t->graph, 0, 6, o, 1).status().IsInvalidArgument());
  REQUIRE(DrawHardNegatives(*t->graph, 300, 6, HardNegativeOptions{}, 1)
              .status()
              .IsInvalidArgument());
}

}  // namespace
}  // namespace pgraph::walker
