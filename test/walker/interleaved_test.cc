// The interleaved walk kernel (many walks in flight, prefetching, first hops taken at once
// when the source is hot, thresholded top-T) against a plain one-walk-at-a-time walker
// written here from the documented walk model: same seeds, bit-identical rows and visits.
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "test/walker/walker_test_util.h"
#include "walker/walk_kernel.h"

namespace pgraph::walker {
namespace {

using testing::StoreFromLists;

struct Csr {
  std::vector<std::vector<NodeId>> item_ctx, ctx_item;
};

// Random graph: skewed context sizes, some isolated items, some degree-1 items.
Csr RandomCsr(std::uint32_t items, std::uint32_t contexts, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Csr g;
  g.item_ctx.resize(items);
  g.ctx_item.resize(contexts);
  for (NodeId i = 0; i < items; ++i) {
    const std::uint32_t r = rng() % 10;
    const std::uint32_t degree = r == 0 ? 0 : r == 1 ? 1 : 1 + rng() % 8;
    for (std::uint32_t k = 0; k < degree; ++k) {
      const double x = static_cast<double>(rng() % 10000) / 10000.0;
      g.item_ctx[i].push_back(static_cast<NodeId>(x * x * contexts));
    }
    std::sort(g.item_ctx[i].begin(), g.item_ctx[i].end());
    g.item_ctx[i].erase(std::unique(g.item_ctx[i].begin(), g.item_ctx[i].end()),
                        g.item_ctx[i].end());
    for (NodeId c : g.item_ctx[i]) g.ctx_item[c].push_back(i);
  }
  return g;
}

// One walk at a time, straight from docs/WALKER.md: per walk a SplitMix64 stream seeded by
// WalkSeed(seed, u, w); a step draws the context (high bits pick), then the item (high bits
// pick, low bits decide the restart after the step). Returns rows like Neighborhoods and the
// raw visit count of every kept neighbour.
Neighborhoods ReferenceWalks(const Csr& g, const WalkOptions& o, std::vector<std::uint32_t>* vis) {
  const std::uint32_t t = o.top_t;
  const std::uint64_t n = g.item_ctx.size();
  Neighborhoods out;
  out.width = t;
  out.neighbors.assign(n * t, kInvalidNode);
  out.weights.assign(n * t, 0.0f);
  out.counts.assign(n, 0);
  vis->assign(n * t, 0);
  const std::uint64_t threshold = ProbabilityThreshold(o.restart);
  const bool early = o.early_stop_nodes > 0 && o.early_stop_visits > 0;
  std::set<Pair> exclude;
  for (auto [q, i] : o.exclude) {
    exclude.insert({q, i});
    exclude.insert({i, q});
  }
  for (NodeId u = 0; u < n; ++u) {
    if (g.item_ctx[u].empty()) continue;
    std::map<NodeId, std::uint32_t> count;
    std::uint32_t high = 0;
    for (std::uint32_t w = 0; w < o.walks_per_node; ++w) {
      if (early && high >= o.early_stop_nodes) break;
      std::uint64_t rng = WalkSeed(o.seed, u, w);
      NodeId item = u;
      for (std::uint32_t step = 0; step < o.walk_length; ++step) {
        const auto& cs = g.item_ctx[item];
        const NodeId c = cs[PickBelow(NextRandom(&rng), cs.size())];
        const auto& is = g.ctx_item[c];
        const std::uint64_t draw = NextRandom(&rng);
        item = is[PickBelow(draw, is.size())];
        ++out.steps;
        const std::uint32_t k = ++count[item];
        if (early && k == o.early_stop_visits && item != u) ++high;
        if ((draw & 0xFFFFFFFFull) < threshold) break;
      }
    }
    std::vector<std::pair<std::uint32_t, NodeId>> cand;
    for (auto [v, k] : count) {
      if (v != u && !exclude.count({u, v})) cand.emplace_back(k, v);
    }
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    const std::size_t keep = std::min<std::size_t>(t, cand.size());
    std::uint64_t sum = 0;
    for (std::size_t r = 0; r < keep; ++r) sum += cand[r].first;
    for (std::size_t r = 0; r < keep; ++r) {
      out.neighbors[u * t + r] = cand[r].second;
      out.weights[u * t + r] =
          static_cast<float>(static_cast<double>(cand[r].first) / static_cast<double>(sum));
      (*vis)[u * t + r] = cand[r].first;
    }
    out.counts[u] = static_cast<std::uint32_t>(keep);
  }
  return out;
}

TEST_CASE("interleaved walks give the plain walker's visits and rows, bit for bit", "[walker]") {
  const Csr g = RandomCsr(600, 120, 17);
  auto t = StoreFromLists(g.item_ctx, g.ctx_item.size());
  struct Config {
    std::uint32_t walks, length, top_t;
    double restart;
    std::uint32_t stop_nodes, stop_visits;
    bool exclude;
  };
  // Top-T larger and smaller than the items reached; counts above the top-T histogram's
  // last bin (64) with 800 walks; restarts; early stop; held-out pairs.
  for (const Config& c : {Config{400, 2, 50, 0.0, 0, 0, false}, Config{50, 3, 10, 0.3, 0, 0, false},
                          Config{800, 1, 5, 0.0, 0, 0, false}, Config{200, 4, 20, 0.0, 10, 3, false},
                          Config{100, 2, 500, 0.0, 0, 0, false},
                          Config{300, 2, 8, 0.1, 0, 0, true}}) {
    WalkOptions o;
    o.walks_per_node = c.walks;
    o.walk_length = c.length;
    o.top_t = c.top_t;
    o.restart = c.restart;
    o.early_stop_nodes = c.stop_nodes;
    o.early_stop_visits = c.stop_visits;
    o.seed = 7 + c.walks;
    std::vector<Pair> held;
    if (c.exclude) {
      for (NodeId q = 0; q < 600; q += 7) held.emplace_back(q, (q * 31 + 5) % 600);
      o.exclude = held;
    }
    std::vector<std::uint32_t> ref_visits;
    const Neighborhoods ref = ReferenceWalks(g, o, &ref_visits);
    for (auto [threads, lanes] : {std::pair{1, 1u}, std::pair{1, 32u}, std::pair{2, 5u},
                                  std::pair{2, 64u}}) {
      INFO("walks " << c.walks << " length " << c.length << " T " << c.top_t << " restart "
                    << c.restart << " threads " << threads << " lanes " << lanes);
      WalkOptions oo = o;
      oo.lanes = lanes;
      oo.block_items = 37;
      std::vector<std::uint32_t> visits;
      Result<Neighborhoods> r = Status::Internal("unset");
      tbb::task_arena arena(threads);
      arena.execute([&] {
        r = ComputeNeighborhoodsWithVisits(*t->graph, 0, g.item_ctx.size(), oo, &visits);
      });
      REQUIRE(r.ok());
      const Neighborhoods& nb = r.value();
      REQUIRE(nb.steps == ref.steps);
      REQUIRE(nb.counts == ref.counts);
      REQUIRE(nb.neighbors == ref.neighbors);
      REQUIRE(visits == ref_visits);
      REQUIRE(std::memcmp(nb.weights.data(), ref.weights.data(), ref.weights.size() * 4) == 0);
    }
  }
}

TEST_CASE("VisitCounter::Drain reports every count once and leaves the counter empty",
          "[walker]") {
  VisitCounter c;
  c.Reserve(4);
  std::map<NodeId, std::uint32_t> expect;
  std::mt19937 rng(3);
  for (int round = 0; round < 3; ++round) {
    expect.clear();
    for (int i = 0; i < 500; ++i) {  // grows past the reservation
      const NodeId v = rng() % 97 + round * 1000;
      ++expect[v];
      REQUIRE(c.Add(v) == expect[v]);
    }
    std::map<NodeId, std::uint32_t> got;
    c.Drain([&](NodeId v, std::uint32_t k) { REQUIRE(got.emplace(v, k).second); });
    REQUIRE(got == expect);
    REQUIRE(c.size() == 0);
    for (auto [v, k] : expect) REQUIRE(c.Get(v) == 0);
  }
}

}  // namespace
}  // namespace pgraph::walker
