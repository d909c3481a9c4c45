// Inference in locality order (walker.h; the order itself is tested in
// test/walker/locality_test.cc): it gives the item order's embeddings bit for bit (and
// Algorithm 2's), with the order computed here or the walk's stored layout, resumes to the
// same embeddings, honours the budget and falls back to item order when it cannot be used.
#include <catch2/catch.hpp>

#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "infer/infer.h"
#include "test/infer/infer_fixture.h"
#include "test/support/peak_rss.h"
#include "walker/walker.h"

namespace pgraph::infer {
namespace {

using testing::AllItems;
using testing::GraphData;
using testing::GraphSpec;
using testing::MakeGraph;
using testing::MaxAbsDiff;
using testing::ModelSpec;

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
  // A run in `mode` stopped at test point `point` (where a kill would leave the store), then
  // a run with --resume in `resume_mode`: the second run's report.
  Result<InferReport> StopThenResume(LocalityMode mode, const std::string& point,
                                     LocalityMode resume_mode) const {
    InferOptions o = Options(mode);
    o.test_stop = [point](std::string_view p) { return p == point; };
    REQUIRE(Infer(o).status().IsCancelled());
    InferOptions again = Options(resume_mode);
    again.resume = true;
    return Infer(again);
  }
};

}  // namespace

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

namespace {

// Adds the walk's locality layout to the store at `dir` (as `pgraph walk --layout on`).
void AddStoredLayout(const std::string& dir) {
  auto store = storage::Store::Open(dir, {});
  REQUIRE(store.ok());
  auto r = walker::WriteLocalityLayout(store->get(), walker::LayoutMode::kOn);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->written);
}

}  // namespace

TEST_CASE("inference reads the walk's stored layout to the same embeddings", "[locality]") {
  struct Case {
    storage::Backend backend;
    storage::Codec codec;
    bool inputs;          // degree feature and id embeddings besides the features
    std::uint32_t model_t;  // neighbours the model uses (0: the walk's width)
  };
  for (const Case& c : {Case{storage::Backend::kLmdb, storage::Codec::kZstd, false, 0},
                        Case{storage::Backend::kLmdb, storage::Codec::kNone, false, 0},
                        Case{storage::Backend::kLmdb, storage::Codec::kNone, true, 0},
                        Case{storage::Backend::kLmdb, storage::Codec::kNone, false, 3},
                        Case{storage::Backend::kRocksDb, storage::Codec::kZstd, false, 0}}) {
    // Raw LMDB stores also gather the first layer's inputs by position (InputGather); a model
    // of fewer neighbours than the walk's cuts the layout's lists as training cut the walk's.
    DYNAMIC_SECTION(storage::BackendName(c.backend)
                    << ", " << storage::CodecName(c.codec) << (c.inputs ? ", degree + ids" : "")
                    << (c.model_t ? ", model T " + std::to_string(c.model_t) : "")) {
      GraphSpec gs;
      gs.items = 1000;
      ModelSpec ms;
      if (c.inputs) {
        ms.degree = true;
        ms.id_dim = 3;
      }
      Setup s(gs, ms, c.backend, c.codec);
      if (c.model_t > 0) {
        REQUIRE(c.model_t < s.g.width);
        s.model = testing::MakeModel(ms, s.g.items, s.g.feature_dim, c.model_t);
        testing::WriteCheckpoint(s.dir, *s.model);
      }
      auto ri = Infer(s.Options(LocalityMode::kOff));
      REQUIRE(ri.ok());
      std::uint32_t dim = 0;
      const auto want = testing::ReadEmbedding(s.dir, &dim);
      AddStoredLayout(s.dir);
      auto rs = Infer(s.Options(LocalityMode::kOn));
      INFO(rs.status().ToString());
      REQUIRE(rs.ok());
      CHECK(rs->locality_order);
      CHECK(rs->layout_source == "stored");
      CHECK(rs->locality_share > 0.3);
      CHECK(rs->flops == Approx(ri->flops).epsilon(1e-9));
      CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
      // The same order computed here instead.
      InferOptions computed = s.Options(LocalityMode::kOn);
      computed.stored_layout = false;
      auto rc = Infer(computed);
      REQUIRE(rc.ok());
      CHECK(rc->layout_source == "computed");
      CHECK(rc->locality_share == Approx(rs->locality_share).margin(0.05));
      CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
      // Resumed from a stop, in the stored layout.
      auto rr = s.StopThenResume(LocalityMode::kOn, "published:h2:1", LocalityMode::kOn);
      REQUIRE(rr.ok());
      CHECK(rr->resumed);
      CHECK(rr->layout_source == "stored");
      CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
    }
  }
}

TEST_CASE("a corrupt stored layout is refused, naming it", "[locality]") {
  GraphSpec gs;
  gs.items = 1000;
  Setup s(gs, ModelSpec{});
  // Layout columns written by hand with one bad value, under the current walk's version.
  auto write = [&](bool bad_order) {
    auto store = storage::Store::Open(s.dir, {});
    REQUIRE(store.ok());
    auto nc = (*store)->OpenColumn(storage::columns::kWalkNeighbors);
    REQUIRE(nc.ok());
    const std::uint64_t version = (*nc)->info().version;
    auto up = (*store)->BeginUpdate();
    REQUIRE(up.ok());
    std::vector<NodeId> order(s.g.items);
    std::iota(order.begin(), order.end(), 0);
    std::vector<NodeId> nbrs = s.g.neighbors;  // item order is a layout too
    if (bad_order) {
      order[5] = order[6];
    } else {
      nbrs[123] = s.g.items + 7;
    }
    auto ow = (*up)->AddColumn({walker::kLayoutOrder, storage::DType::kU32, 1, 0, 0});
    auto nw = (*up)->AddColumn({walker::kLayoutNeighbors, storage::DType::kU32, s.g.width, 0, 0});
    auto ww = (*up)->AddColumn({walker::kLayoutWeights, storage::DType::kF32, s.g.width, 0, 0});
    REQUIRE((*ow)->AppendValues<NodeId>(order).ok());
    REQUIRE((*nw)->AppendValues<NodeId>(nbrs).ok());
    REQUIRE((*ww)->AppendValues<float>(s.g.weights).ok());
    (*up)->SetMeta(walker::kLayoutMeta, "neighbors_version=" + std::to_string(version));
    REQUIRE((*up)->Publish().ok());
  };
  for (bool bad_order : {false, true}) {
    DYNAMIC_SECTION((bad_order ? "order" : "neighbours")) {
      write(bad_order);
      auto r = Infer(s.Options(LocalityMode::kOn));
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().IsCorruption());
      CHECK(r.status().ToString().find(bad_order ? walker::kLayoutOrder
                                                 : walker::kLayoutNeighbors) != std::string::npos);
    }
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
      auto r = s.StopThenResume(LocalityMode::kOn, point, LocalityMode::kOn);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      CHECK(r->resumed);
      CHECK(r->locality_order);
      CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
    }
  }
  SECTION("a run stopped in item order resumes in item order") {
    auto r = s.StopThenResume(LocalityMode::kOff, "published:h1:1", LocalityMode::kOn);
    REQUIRE(r.ok());
    CHECK(r->resumed);
    CHECK_FALSE(r->locality_order);
    CHECK(r->layout_note == "resumed in item order");
    CHECK(testing::ReadEmbedding(s.dir, &dim) == want);
  }
  SECTION("a run stopped in locality order, resumed in item order, starts over") {
    auto r = s.StopThenResume(LocalityMode::kOn, "published:h2:1", LocalityMode::kOff);
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
