// The locality order (infer/locality_order.h) and the layers run in it: the order is a
// permutation that keeps planted clusters together and does not depend on the thread count;
// inference in locality order gives the item order's embeddings bit for bit (and Algorithm
// 2's), resumes to the same embeddings, honours the budget and falls back to item order when
// it cannot be used.
#include <catch2/catch.hpp>

#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "infer/infer.h"
#include "infer/locality_order.h"
#include "test/infer/infer_fixture.h"
#include "test/support/peak_rss.h"

namespace pgraph::infer {
namespace {

using testing::AllItems;
using testing::GraphData;
using testing::GraphSpec;
using testing::MakeGraph;
using testing::MaxAbsDiff;
using testing::ModelSpec;

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

// Several GEMM blocks and segments per layer, no index, the given layout.
struct Setup : testing::StoreWithModel {
  using StoreWithModel::StoreWithModel;
  InferOptions Options(LocalityMode mode) const {
    InferOptions o = StoreWithModel::Options();
    o.block_rows = 100;
    o.segment_rows = 256;
    o.build_index = false;
    o.locality = mode;
    return o;
  }
};

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

TEST_CASE("inference in locality order gives the item order's embeddings", "[locality]") {
  struct Case {
    const char* name;
    train::Pooling pooling;
    std::uint32_t layers, id_dim;
    bool head;
    OutputType dtype;
  };
  for (const Case& c : {Case{"importance K=2", train::Pooling::kImportance, 2, 0, false,
                             OutputType::kFloat32},
                        Case{"importance K=1 ids", train::Pooling::kImportance, 1, 3, false,
                             OutputType::kFloat32},
                        Case{"mean K=3", train::Pooling::kMean, 3, 0, false, OutputType::kFloat32},
                        Case{"importance, degree + head, float16", train::Pooling::kImportance,
                             2, 0, true, OutputType::kFloat16}}) {
    DYNAMIC_SECTION(c.name) {
      ModelSpec ms;
      ms.pooling = c.pooling;
      ms.layers = c.layers;
      ms.id_dim = c.id_dim;
      ms.degree = ms.normalize = ms.magnitude = c.head;
      GraphSpec gs;
      gs.items = 1000;
      Setup s(gs, ms);
      InferOptions item = s.Options(LocalityMode::kOff);
      item.dtype = c.dtype;
      auto ri = Infer(item);
      INFO(ri.status().ToString());
      REQUIRE(ri.ok());
      CHECK_FALSE(ri->locality_order);
      std::uint32_t dim = 0;
      const auto want = testing::ReadEmbedding(s.dir, &dim);

      InferOptions ordered = s.Options(LocalityMode::kOn);
      ordered.dtype = c.dtype;
      auto ro = Infer(ordered);
      INFO(ro.status().ToString());
      REQUIRE(ro.ok());
      CHECK(ro->locality_order);
      CHECK(ro->locality_share > 0);
      CHECK(ro->flops == Approx(ri->flops).epsilon(1e-9));
      const auto got = testing::ReadEmbedding(s.dir, &dim);
      CHECK(got == want);  // bit for bit
      if (c.dtype == OutputType::kFloat32) {
        CHECK(MaxAbsDiff(got, testing::Reference(*s.model, s.g, AllItems(s.g.items))) < 1e-5);
      }
    }
  }

  SECTION("auto keeps item order while the rows fit the caches") {
    Setup s(GraphSpec{}, ModelSpec{});
    auto r = Infer(s.Options(LocalityMode::kAuto));
    REQUIRE(r.ok());
    CHECK_FALSE(r->locality_order);
  }
  SECTION("auto keeps item order for neighbourhoods without locality") {
    GraphSpec gs;  // uniformly random neighbours; rows of 40000 x 64 floats exceed the caches
    gs.items = 40000;
    ModelSpec ms;
    ms.dim = 64;
    ms.hidden = 64;
    Setup s(gs, ms);
    InferOptions o = s.Options(LocalityMode::kAuto);
    o.block_rows = 0;
    auto r = Infer(o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK_FALSE(r->locality_order);
    CHECK(r->locality_share < 0.5);
    CHECK(r->layout_note.find("no locality") != std::string::npos);
  }
  SECTION("max pooling runs in item order") {
    ModelSpec ms;
    ms.pooling = train::Pooling::kMax;
    Setup s(GraphSpec{}, ms);
    auto r = Infer(s.Options(LocalityMode::kOn));
    REQUIRE(r.ok());
    CHECK_FALSE(r->locality_order);
    CHECK(r->layout_note == "max pooling");
  }
  SECTION("a budget too small for the ordered plan falls back to item order") {
    GraphSpec gs;
    gs.items = 60000;
    gs.width = 10;
    ModelSpec ms;
    ms.dim = 32;
    ms.hidden = 64;
    Setup s(gs, ms);
    InferOptions o = s.Options(LocalityMode::kOn);
    o.block_rows = 0;
    o.memory_budget = 4ull << 20;
    auto r = Infer(o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK_FALSE(r->locality_order);
    CHECK(r->layout_note.find("memory") != std::string::npos);
    CHECK(r->per_layer[0].partitions > 1);
  }
}

TEST_CASE("the embeddings do not depend on the thread count or the block size",
          "[locality]") {
  // Rows land in other slices of the products with other threads and blocks; each row must
  // still come out of the same float operations (infer/row_products.h).
  GraphSpec gs;
  gs.items = 1000;
  Setup s(gs, ModelSpec{});
  std::vector<float> want;
  for (LocalityMode mode : {LocalityMode::kOff, LocalityMode::kOn}) {
    for (int threads : {1, 2, 3}) {
      for (std::uint64_t block : {std::uint64_t{100}, std::uint64_t{0}}) {
        InferOptions o = s.Options(mode);
        o.threads = threads;
        o.block_rows = block;
        auto r = Infer(o);
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        std::uint32_t dim = 0;
        const auto got = testing::ReadEmbedding(s.dir, &dim);
        if (want.empty()) want = got;
        INFO("threads " << threads << ", block " << block << ", ordered " << r->locality_order);
        CHECK(got == want);
      }
    }
  }
}

TEST_CASE("inference in locality order resumes to the same embeddings", "[locality][resume]") {
  GraphSpec gs;
  gs.items = 1000;
  Setup s(gs, ModelSpec{});
  REQUIRE(Infer(s.Options(LocalityMode::kOff)).ok());
  std::uint32_t dim = 0;
  const auto want = testing::ReadEmbedding(s.dir, &dim);

  for (std::string point : {"segment:h1:1", "published:h1:0", "segment:h2:2", "published:h2:3",
                            "segment:head:0"}) {
    DYNAMIC_SECTION(point) {
      InferOptions o = s.Options(LocalityMode::kOn);
      o.test_stop = [&](std::string_view p) { return p == point; };
      REQUIRE(Infer(o).status().IsCancelled());
      InferOptions again = s.Options(LocalityMode::kOn);
      again.resume = true;
      auto r = Infer(again);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      CHECK(r->resumed);
      CHECK(r->locality_order);
      CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
    }
  }
  SECTION("a run stopped in item order resumes in item order") {
    InferOptions o = s.Options(LocalityMode::kOff);
    o.test_stop = [](std::string_view p) { return p == "published:h1:1"; };
    REQUIRE(Infer(o).status().IsCancelled());
    InferOptions again = s.Options(LocalityMode::kOn);
    again.resume = true;
    auto r = Infer(again);
    REQUIRE(r.ok());
    CHECK(r->resumed);
    CHECK_FALSE(r->locality_order);
    CHECK(r->layout_note == "resumed in item order");
    CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
  }
  SECTION("a run stopped in locality order, resumed in item order, starts over") {
    InferOptions o = s.Options(LocalityMode::kOn);
    o.test_stop = [](std::string_view p) { return p == "published:h2:1"; };
    REQUIRE(Infer(o).status().IsCancelled());
    InferOptions again = s.Options(LocalityMode::kOff);
    again.resume = true;
    auto r = Infer(again);
    REQUIRE(r.ok());
    CHECK_FALSE(r->resumed);
    CHECK(r->resumed_from.find("started over") != std::string::npos);
    CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
  }
}

TEST_CASE("inference in locality order bounds anonymous memory", "[locality][memory]") {
  GraphSpec gs;
  gs.items = 60000;
  gs.feature_dim = 16;
  gs.width = 10;
  ModelSpec ms;
  ms.hidden = 128;
  ms.dim = 24;
  Setup s(gs, ms);
  std::vector<float>().swap(s.g.features);  // the test's own copy is not inference's memory

  const std::uint64_t budget = 48ull << 20;
  InferOptions o = s.StoreWithModel::Options();
  o.memory_budget = budget;
  o.build_index = false;
  o.locality = LocalityMode::kOn;
  REQUIRE(Infer(o).ok());  // warm-up: torch, BLAS and TBB buffers
  const std::uint64_t before = pgraph::test::RssAnonBytes();
  pgraph::test::PeakSampler sampler;
  auto r = Infer(o);
  const std::uint64_t peak = sampler.Stop();
  INFO(r.status().ToString() << " " << r->layout_note);
  REQUIRE(r.ok());
  REQUIRE(r->locality_order);
  CHECK(r->peak_working_bytes <= budget);
  INFO("RssAnon before " << before / 1024 << " KiB, peak " << peak / 1024 << " KiB");
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine and shadow memory: RSS says nothing
  const std::uint64_t overhead = 16ull << 20;  // the stated fixed overhead
  CHECK(peak <= before + budget + overhead);
#else
  (void)peak;
  (void)before;
#endif
}

TEST_CASE("a neighbour id beyond the items is refused in either order", "[locality]") {
  for (LocalityMode mode : {LocalityMode::kOn, LocalityMode::kOff}) {
    DYNAMIC_SECTION((mode == LocalityMode::kOn ? "locality order" : "item order")) {
      pgraph::test::TempDir tmp;
      GraphSpec gs;
      gs.items = 500;
      GraphData g = MakeGraph(gs);
      g.neighbors[123 * g.width + 1] = g.items + 7;
      const std::string dir = tmp.Sub("store");
      testing::WriteStore(dir, g, tmp.path());
      testing::WriteCheckpoint(dir, *testing::MakeModel(ModelSpec{}, g.items, g.feature_dim,
                                                        g.width));
      InferOptions o;
      o.store_dir = dir;
      o.memory_budget = 64ull << 20;
      o.build_index = false;
      o.locality = mode;
      auto r = Infer(o);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().IsCorruption());
      CHECK(r.status().message().find("walk.neighbors names item 507 of 500") !=
            std::string::npos);
    }
  }
}

}  // namespace pgraph::infer
