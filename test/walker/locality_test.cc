// The locality order and layout (walker.h): the order is a permutation that keeps planted
// clusters together and does not depend on the thread count; the layout holds the lists by
// position, is written by the walk stage when asked (and dropped when not), and is
// recognised only for the walk.neighbors it was made from.
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "test/walker/walker_test_util.h"

namespace pgraph::walker {
namespace {

using testing::StoreFromEdges;

bool IsPermutation(const LocalityOrder& o, std::uint64_t n) {
  if (o.order.size() != n || o.pos.size() != n) return false;
  std::vector<char> seen(n, 0);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (o.order[i] >= n || seen[o.order[i]]) return false;
    seen[o.order[i]] = 1;
    if (o.pos[o.order[i]] != i) return false;
  }
  return true;
}

// `clusters` clusters of `size` items whose ids are shuffled over the whole range. Each item
// has T neighbours, a share `inside` of them from its own cluster, drawn by a Zipf-like
// popularity within the cluster (`skew` 0: uniform) and weighted by it, the rest strays of
// low weight, heaviest first as walk visit counts are; some lists are half empty.
struct Planted {
  std::uint64_t n = 0;
  std::uint32_t T = 0;
  std::vector<NodeId> nbrs;
  std::vector<float> wts;
  std::vector<std::uint32_t> cluster;
};

Planted MakePlanted(std::uint32_t clusters, std::uint32_t size, std::uint32_t T, double inside,
                    double skew, std::uint64_t seed) {
  Planted p;
  p.n = std::uint64_t{clusters} * size;
  p.T = T;
  std::mt19937_64 rng(seed);
  std::vector<NodeId> ids(p.n);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // member j of cluster c is item ids[c*size+j]
  p.cluster.resize(p.n);
  for (std::uint64_t k = 0; k < p.n; ++k) p.cluster[ids[k]] = static_cast<std::uint32_t>(k / size);
  std::vector<double> pop(size);
  for (std::uint32_t j = 0; j < size; ++j) pop[j] = std::pow(j + 1.0, -skew);
  std::discrete_distribution<std::uint32_t> member(pop.begin(), pop.end());
  p.nbrs.assign(p.n * T, kInvalidNode);
  p.wts.assign(p.n * T, 0.0f);
  std::uniform_real_distribution<double> uni(0, 1);
  for (std::uint64_t u = 0; u < p.n; ++u) {
    const std::uint32_t c = p.cluster[u];
    const std::uint32_t count = uni(rng) < 0.1 ? T / 2 : T;
    // (weight, item), heaviest first: visits grow with popularity, strays get few.
    std::vector<std::pair<double, NodeId>> list;
    for (std::uint32_t t = 0; t < count; ++t) {
      if (uni(rng) < inside) {
        const std::uint32_t j = member(rng);
        list.emplace_back(pop[j] * (0.5 + uni(rng)), ids[std::uint64_t{c} * size + j]);
      } else {
        list.emplace_back(pop[size - 1] * uni(rng), static_cast<NodeId>(rng() % p.n));
      }
    }
    std::sort(list.begin(), list.end(), std::greater<>());
    for (std::uint32_t t = 0; t < count; ++t) {
      p.nbrs[u * T + t] = list[t].second;
      p.wts[u * T + t] = static_cast<float>(list[t].first);
    }
  }
  return p;
}

// Writes `p` as the store's walk.neighbors / walk.weights (as RunWalkStage would), with the
// locality layout when `layout` says so; returns the version of the neighbour column.
std::uint64_t WriteWalk(storage::Store* store, const Planted& p, LayoutMode layout,
                        LayoutReport* report = nullptr) {
  auto up = store->BeginUpdate();
  REQUIRE(up.ok());
  auto nw = (*up)->AddColumn({storage::columns::kWalkNeighbors, storage::DType::kU32, p.T, 0, -1});
  auto ww = (*up)->AddColumn({storage::columns::kWalkWeights, storage::DType::kF32, p.T, 0, -1});
  REQUIRE(nw.ok());
  REQUIRE(ww.ok());
  REQUIRE((*nw)->AppendValues<NodeId>(p.nbrs).ok());
  REQUIRE((*ww)->AppendValues<float>(p.wts).ok());
  auto r = AddLocalityLayout(up->get(), p.nbrs, p.wts, p.n, p.T, (*nw)->info().version, layout);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  if (report) *report = *r;
  REQUIRE((*up)->Publish().ok());
  REQUIRE(store->Refresh().ok());
  return (*nw)->info().version;
}

template <typename T>
std::vector<T> ReadAll(const storage::Store& store, const char* name) {
  auto c = store.OpenColumn(name);
  REQUIRE(c.ok());
  const auto& info = c.value()->info();
  std::vector<T> out(info.rows * info.width);
  REQUIRE(c.value()->ReadRows(0, info.rows, std::as_writable_bytes(std::span(out))).ok());
  return out;
}

// A store with an adjacency of `n` items (ingested), for layouts of that many items.
std::unique_ptr<testing::TestStore> StoreOfItems(std::uint64_t n) {
  std::string edges;
  for (std::uint64_t u = 0; u < n; ++u) {
    edges += "i" + std::to_string(u) + "\tc" + std::to_string(u % 7) + "\n";
  }
  return StoreFromEdges(edges, storage::Codec::kNone);
}

}  // namespace

TEST_CASE("the locality order keeps planted clusters together", "[locality]") {
  LocalityOrder identity;
  auto share = [](const LocalityOrder& o, const Planted& p) {
    return LocalityShare(o, p.nbrs.data(), p.n, p.T, p.n / 50);
  };
  SECTION("clusters with popular items (walk neighbourhoods)") {
    const Planted p = MakePlanted(50, 200, 12, 0.9, 0.8, 3);
    const LocalityOrder o = ComputeLocalityOrder(p.nbrs.data(), p.wts.data(), p.n, p.T);
    REQUIRE(IsPermutation(o, p.n));
    // 90% of the entries are inside the cluster: nearly all of those within a cluster's
    // length of their item; item order on shuffled ids puts few there.
    CHECK(share(o, p) > 0.8);
    identity.order.resize(p.n);
    std::iota(identity.order.begin(), identity.order.end(), 0);
    identity.pos = identity.order;
    CHECK(share(identity, p) < 0.1);
    // Each cluster in few maximal runs of positions.
    std::uint64_t runs = 1;
    for (std::uint64_t i = 1; i < p.n; ++i) {
      runs += p.cluster[o.order[i]] != p.cluster[o.order[i - 1]];
    }
    CHECK(runs < 4 * 50);
    // The same order on any number of threads.
    for (int threads : {1, 3}) {
      tbb::task_arena arena(threads);
      LocalityOrder again;
      arena.execute([&] { again = ComputeLocalityOrder(p.nbrs.data(), p.wts.data(), p.n, p.T); });
      CHECK(again.order == o.order);
    }
  }
  SECTION("clusters of equally popular items") {
    const Planted p = MakePlanted(50, 200, 12, 0.9, 0.0, 4);
    const LocalityOrder o = ComputeLocalityOrder(p.nbrs.data(), p.wts.data(), p.n, p.T);
    REQUIRE(IsPermutation(o, p.n));
    CHECK(share(o, p) > 0.5);
  }
}

TEST_CASE("the locality order of degenerate neighbour lists is a permutation", "[locality]") {
  SECTION("no neighbours at all") {
    std::vector<NodeId> nb(10 * 3, kInvalidNode);
    std::vector<float> w(10 * 3, 0.0f);
    auto o = ComputeLocalityOrder(nb.data(), w.data(), 10, 3);
    CHECK(IsPermutation(o, 10));
  }
  SECTION("one item") {
    std::vector<NodeId> nb = {0};
    std::vector<float> w = {1.0f};
    CHECK(IsPermutation(ComputeLocalityOrder(nb.data(), w.data(), 1, 1), 1));
  }
  SECTION("self loops, a 3-cycle of heaviest neighbours and ties") {
    // 0 -> 1 -> 2 -> 0 (heaviest), 3 -> 3 only, 4 and 5 tie between 0 and 2.
    std::vector<NodeId> nb = {1, 2, 2, 0, 0, 1, 3, kInvalidNode, 0, 2, 2, 0};
    std::vector<float> w = {0.7f, 0.3f, 0.6f, 0.4f, 0.9f, 0.1f, 1.0f, 0.0f, 0.5f, 0.5f, 0.5f, 0.5f};
    auto o = ComputeLocalityOrder(nb.data(), w.data(), 6, 2);
    CHECK(IsPermutation(o, 6));
  }
  SECTION("uniformly random lists") {
    const Planted p = MakePlanted(1, 3000, 8, 0.0, 0.0, 9);
    CHECK(IsPermutation(ComputeLocalityOrder(p.nbrs.data(), p.wts.data(), p.n, p.T), p.n));
  }
}

TEST_CASE("the locality layout holds the lists by position", "[locality]") {
  const Planted p = MakePlanted(20, 100, 6, 0.9, 0.8, 5);
  auto t = StoreOfItems(p.n);
  LayoutReport rep;
  WriteWalk(t->store.get(), p, LayoutMode::kOn, &rep);
  CHECK(rep.written);
  CHECK(rep.share > 0.5);
  REQUIRE(HasCurrentLayout(*t->store));
  const auto order = ReadAll<NodeId>(*t->store, kLayoutOrder);
  const auto lnbrs = ReadAll<NodeId>(*t->store, kLayoutNeighbors);
  const auto lwts = ReadAll<float>(*t->store, kLayoutWeights);
  REQUIRE(order.size() == p.n);
  LocalityOrder o;
  o.order = order;
  o.pos.assign(p.n, kInvalidNode);
  for (std::uint64_t i = 0; i < p.n; ++i) o.pos[order[i]] = static_cast<NodeId>(i);
  REQUIRE(IsPermutation(o, p.n));
  // The same order as computed directly, and row i is the list of item order[i] in positions.
  CHECK(order == ComputeLocalityOrder(p.nbrs.data(), p.wts.data(), p.n, p.T).order);
  std::uint64_t mismatches = 0;
  for (std::uint64_t i = 0; i < p.n; ++i) {
    const std::uint64_t u = order[i];
    for (std::uint32_t k = 0; k < p.T; ++k) {
      const NodeId v = p.nbrs[u * p.T + k];
      mismatches += lnbrs[i * p.T + k] != (v == kInvalidNode ? kInvalidNode : o.pos[v]);
      mismatches += lwts[i * p.T + k] != p.wts[u * p.T + k];
    }
  }
  CHECK(mismatches == 0);
  // Raw chunks whatever the store's codec.
  auto c = t->store->OpenColumn(kLayoutNeighbors);
  REQUIRE(c.ok());
  CHECK(c.value()->info().codec == storage::Codec::kNone);
}

TEST_CASE("the locality layout is written only when asked and only for its own lists",
          "[locality]") {
  const Planted p = MakePlanted(20, 100, 6, 0.9, 0.8, 6);
  auto t = StoreOfItems(p.n);
  LayoutReport rep;
  SECTION("auto: too few items to need one") {
    WriteWalk(t->store.get(), p, LayoutMode::kAuto, &rep);
    CHECK_FALSE(rep.written);
    CHECK(rep.note.find("fewer than") != std::string::npos);
    CHECK_FALSE(HasCurrentLayout(*t->store));
  }
  SECTION("auto: random lists have no locality") {
    const Planted r = MakePlanted(1, kLayoutMinItems, 4, 0.0, 0.0, 7);
    auto big = StoreOfItems(r.n);
    WriteWalk(big->store.get(), r, LayoutMode::kAuto, &rep);
    CHECK_FALSE(rep.written);
    CHECK(rep.note.find("no locality") != std::string::npos);
    CHECK_FALSE(HasCurrentLayout(*big->store));
  }
  SECTION("new walk columns without a layout drop the old one") {
    WriteWalk(t->store.get(), p, LayoutMode::kOn);
    REQUIRE(HasCurrentLayout(*t->store));
    WriteWalk(t->store.get(), p, LayoutMode::kOff, &rep);
    CHECK(rep.note == "--layout off");
    CHECK_FALSE(HasCurrentLayout(*t->store));
    CHECK_FALSE(t->store->HasColumn(kLayoutNeighbors));
  }
  SECTION("walk columns rewritten by another writer make the layout stale") {
    WriteWalk(t->store.get(), p, LayoutMode::kOn);
    auto up = t->store->BeginUpdate();
    REQUIRE(up.ok());
    auto nw = (*up)->AddColumn({storage::columns::kWalkNeighbors, storage::DType::kU32, p.T, 0, -1});
    REQUIRE(nw.ok());
    REQUIRE((*nw)->AppendValues<NodeId>(p.nbrs).ok());
    REQUIRE((*up)->Publish().ok());
    REQUIRE(t->store->Refresh().ok());
    CHECK_FALSE(HasCurrentLayout(*t->store));
    // WriteLocalityLayout lays out the published columns again.
    auto again = WriteLocalityLayout(t->store.get(), LayoutMode::kOn);
    INFO(again.status().ToString());
    REQUIRE(again.ok());
    CHECK(again->written);
    CHECK(HasCurrentLayout(*t->store));
  }
  SECTION("lists in compressed chunks are not a layout inference can use in place") {
    WriteWalk(t->store.get(), p, LayoutMode::kOn);
    REQUIRE(HasCurrentLayout(*t->store));
    const auto lists = ReadAll<NodeId>(*t->store, kLayoutNeighbors);
    auto up = t->store->BeginUpdate();
    REQUIRE(up.ok());
    auto nw = (*up)->AddColumn({kLayoutNeighbors, storage::DType::kU32, p.T, 0,
                                static_cast<int>(storage::Codec::kZstd)});
    REQUIRE(nw.ok());
    REQUIRE((*nw)->AppendValues<NodeId>(lists).ok());
    REQUIRE((*up)->Publish().ok());
    REQUIRE(t->store->Refresh().ok());
    CHECK_FALSE(HasCurrentLayout(*t->store));
  }
  SECTION("a neighbour id beyond the items is refused") {
    Planted bad = p;
    bad.nbrs[7] = static_cast<NodeId>(p.n + 3);
    auto up = t->store->BeginUpdate();
    REQUIRE(up.ok());
    auto r = AddLocalityLayout(up->get(), bad.nbrs, bad.wts, bad.n, bad.T, 1, LayoutMode::kOn);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().IsInvalidArgument());
    CHECK(r.status().ToString().find(std::to_string(p.n + 3)) != std::string::npos);
  }
  CHECK_FALSE(ParseLayoutMode("sometimes").ok());
}

TEST_CASE("the walk stage writes the layout with --layout on, within the budget",
          "[locality]") {
  std::string edges;
  for (int m = 0; m < 10; ++m) {
    for (int k = 0; k < 30; ++k) {
      edges += "m" + std::to_string(m) + "_" + std::to_string(k) + "\tc" + std::to_string(m) +
               "_" + std::to_string(k % 3) + "\n";
    }
  }
  auto t = StoreFromEdges(edges, storage::Codec::kNone);  // adjacency in place: no budget
  WalkStageOptions o;
  o.walk.top_t = 8;
  o.walk.walks_per_node = 50;
  SECTION("on") {
    o.layout = LayoutMode::kOn;
    auto r = RunWalkStage(t->store.get(), o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->layout.written);
    CHECK(HasCurrentLayout(*t->store));
    // Walking again with auto (a store this small gets none) removes it.
    o.layout = LayoutMode::kAuto;
    auto again = RunWalkStage(t->store.get(), o);
    REQUIRE(again.ok());
    CHECK_FALSE(again->layout.written);
    CHECK_FALSE(HasCurrentLayout(*t->store));
  }
  SECTION("on, over the budget: refused, store untouched") {
    t->store.reset();
    storage::StoreOptions so;
    so.memory_budget = 4096;
    auto s = storage::Store::Open(t->dir, so);
    REQUIRE(s.ok());
    o.layout = LayoutMode::kOn;
    auto r = RunWalkStage(s->get(), o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().IsResourceExhausted());
    CHECK(r.status().ToString().find("locality layout") != std::string::npos);
    CHECK_FALSE((*s)->HasColumn(storage::columns::kWalkNeighbors));
  }
}

}  // namespace pgraph::walker
