// Resume: a run stopped at any point (chunks written but not published, or just after a
// publish, in any stage) continues with --resume to embeddings identical to an uninterrupted
// run, and the `embedding` column is never half-written.
#include <catch2/catch.hpp>

#include "infer/infer.h"
#include "test/infer/infer_fixture.h"

namespace pgraph::infer {
namespace {

InferOptions Opts(const std::string& dir) {
  InferOptions o;
  o.store_dir = dir;
  o.threads = 2;
  o.block_rows = 100;
  o.segment_rows = 256;
  o.memory_budget = 32ull << 20;
  o.build_index = false;
  return o;
}

bool HasIntermediates(const std::string& dir) {
  storage::StoreOptions so;
  so.read_only = true;
  auto store = storage::Store::Open(dir, so);
  REQUIRE(store.ok());
  for (const auto& c : (*store)->ListColumns()) {
    if (c.name.rfind("infer.", 0) == 0) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("resume after a stop at any point gives identical embeddings", "[resume]") {
  pgraph::test::TempDir tmp;
  testing::GraphSpec gs;
  gs.items = 1000;
  auto g = testing::MakeGraph(gs);
  auto model = testing::MakeModel(testing::ModelSpec{}, g.items, g.feature_dim, g.width);
  const std::string full = tmp.Sub("full");
  testing::WriteStore(full, g, tmp.path());
  testing::WriteCheckpoint(full, *model);
  REQUIRE(Infer(Opts(full)).ok());
  CHECK_FALSE(HasIntermediates(full));
  std::uint32_t dim = 0;
  const auto expected = testing::ReadEmbedding(full, &dim);

  for (std::string point : {"segment:p1:0", "published:p1:1", "segment:h1:2", "published:h1:3",
                            "segment:p2:3", "published:h2:0", "segment:head:0"}) {
    DYNAMIC_SECTION(point) {
      const std::string dir = tmp.Sub("s");
      testing::WriteStore(dir, g, tmp.path());
      testing::WriteCheckpoint(dir, *model);
      InferOptions o = Opts(dir);
      o.test_stop = [&](std::string_view p) { return p == point; };
      auto r = Infer(o);
      REQUIRE(r.status().IsCancelled());
      {
        storage::StoreOptions so;
        so.read_only = true;
        auto store = storage::Store::Open(dir, so);
        REQUIRE(store.ok());
        CHECK_FALSE((*store)->HasColumn(storage::columns::kEmbedding));
      }
      InferOptions again = Opts(dir);
      again.resume = true;
      auto r2 = Infer(again);
      INFO(r2.status().ToString());
      REQUIRE(r2.ok());
      CHECK(r2->resumed);
      auto got = testing::ReadEmbedding(dir, &dim);
      CHECK(got == expected);  // bit for bit
      CHECK_FALSE(HasIntermediates(dir));
    }
  }
}

// With the default block size the rows each layer gathers are computed in memory and never
// stored: a stop in a layer's pooling resumes by computing them again.
TEST_CASE("resume of the in-memory plan gives identical embeddings", "[resume]") {
  pgraph::test::TempDir tmp;
  testing::GraphSpec gs;
  gs.items = 1000;
  auto g = testing::MakeGraph(gs);
  auto model = testing::MakeModel(testing::ModelSpec{}, g.items, g.feature_dim, g.width);
  auto opts = [](const std::string& dir) {
    InferOptions o = Opts(dir);
    o.block_rows = 0;
    return o;
  };
  const std::string full = tmp.Sub("full");
  testing::WriteStore(full, g, tmp.path());
  testing::WriteCheckpoint(full, *model);
  auto r0 = Infer(opts(full));
  REQUIRE(r0.ok());
  REQUIRE(r0->per_layer[0].partitions == 1);
  std::uint32_t dim = 0;
  const auto expected = testing::ReadEmbedding(full, &dim);

  for (std::string point : {"segment:h1:0", "published:h1:2", "segment:h2:3", "published:h2:1"}) {
    DYNAMIC_SECTION(point) {
      const std::string dir = tmp.Sub("s");
      testing::WriteStore(dir, g, tmp.path());
      testing::WriteCheckpoint(dir, *model);
      InferOptions o = opts(dir);
      o.test_stop = [&](std::string_view p) { return p == point; };
      REQUIRE(Infer(o).status().IsCancelled());
      InferOptions again = opts(dir);
      again.resume = true;
      auto r = Infer(again);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      CHECK(r->resumed);
      CHECK(testing::ReadEmbedding(dir, &dim) == expected);  // bit for bit
      CHECK_FALSE(HasIntermediates(dir));
    }
  }

  SECTION("resumed with a budget that forces partitioning") {
    // The stopped run pooled layer 1 in memory; the resumed one must partition, so it has no
    // stored rows to gather and starts layer 1 again.
    const std::string dir = tmp.Sub("s");
    testing::WriteStore(dir, g, tmp.path());
    testing::WriteCheckpoint(dir, *model);
    InferOptions o = opts(dir);
    o.test_stop = [](std::string_view p) { return p == "published:h1:1"; };
    REQUIRE(Infer(o).status().IsCancelled());
    InferOptions again = Opts(dir);
    again.partition_rows = 300;
    again.resume = true;
    auto r = Infer(again);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->resumed);
    REQUIRE(r->per_layer.size() == 2);
    CHECK(r->per_layer[0].partitions > 1);
    // Partitioned pooling sums each item's neighbours range by range: equal up to rounding.
    const std::vector<double> want(expected.begin(), expected.end());
    CHECK(testing::MaxAbsDiff(testing::ReadEmbedding(dir, &dim), want) < 1e-5);
    CHECK_FALSE(HasIntermediates(dir));
  }
}

TEST_CASE("a stop during the head keeps the previous embedding column", "[resume]") {
  pgraph::test::TempDir tmp;
  auto g = testing::MakeGraph(testing::GraphSpec{});
  const std::string dir = tmp.Sub("s");
  testing::WriteStore(dir, g, tmp.path());
  auto model = testing::MakeModel(testing::ModelSpec{}, g.items, g.feature_dim, g.width);
  testing::WriteCheckpoint(dir, *model);
  REQUIRE(Infer(Opts(dir)).ok());
  std::uint32_t dim = 0;
  const auto first = testing::ReadEmbedding(dir, &dim);
  // A new model, stopped while writing its embeddings: readers still see the old ones.
  testing::ModelSpec ms;
  ms.seed = 99;
  auto model2 = testing::MakeModel(ms, g.items, g.feature_dim, g.width);
  testing::WriteCheckpoint(dir, *model2);
  InferOptions o = Opts(dir);
  o.test_stop = [](std::string_view p) { return p == "segment:head:0"; };
  REQUIRE(Infer(o).status().IsCancelled());
  CHECK(testing::ReadEmbedding(dir, &dim) == first);
  // A resume for the new model continues; its result equals Algorithm 2 for the new model.
  InferOptions again = Opts(dir);
  again.resume = true;
  auto r = Infer(again);
  REQUIRE(r.ok());
  CHECK(r->resumed);
  CHECK(r->per_layer.empty());  // only the head was left
  auto ref = testing::Reference(*model2, g, testing::AllItems(g.items));
  CHECK(testing::MaxAbsDiff(testing::ReadEmbedding(dir, &dim), ref) < 1e-5);
}

TEST_CASE("resume ignores the state of another model", "[resume]") {
  pgraph::test::TempDir tmp;
  auto g = testing::MakeGraph(testing::GraphSpec{});
  const std::string dir = tmp.Sub("s");
  testing::WriteStore(dir, g, tmp.path());
  auto model = testing::MakeModel(testing::ModelSpec{}, g.items, g.feature_dim, g.width);
  testing::WriteCheckpoint(dir, *model);
  InferOptions o = Opts(dir);
  o.test_stop = [](std::string_view p) { return p == "published:h1:0"; };
  REQUIRE(Infer(o).status().IsCancelled());
  testing::ModelSpec ms;
  ms.seed = 77;
  auto model2 = testing::MakeModel(ms, g.items, g.feature_dim, g.width);
  testing::WriteCheckpoint(dir, *model2);
  InferOptions again = Opts(dir);
  again.resume = true;
  auto r = Infer(again);
  REQUIRE(r.ok());
  CHECK_FALSE(r->resumed);
  std::uint32_t dim = 0;
  auto ref = testing::Reference(*model2, g, testing::AllItems(g.items));
  CHECK(testing::MaxAbsDiff(testing::ReadEmbedding(dir, &dim), ref) < 1e-5);
}

}  // namespace pgraph::infer
