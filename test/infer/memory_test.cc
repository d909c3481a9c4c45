// Out of core: with a budget far below the rows one layer gathers, inference partitions the
// neighbour ids, peak anonymous RSS stays within the budget plus a fixed overhead, and the
// embeddings still equal Algorithm 2 (checked on a sample).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "infer/infer.h"
#include "test/infer/infer_fixture.h"
#include "test/support/peak_rss.h"

namespace pgraph::infer {
using pgraph::test::PeakSampler;
using pgraph::test::RssAnonBytes;

// Infers a 60000-item store twice with `budget` (the first run warms torch, BLAS and TBB up)
// and checks the second run's partitions, planned working set, peak RssAnon and a sample of
// its embeddings. The rows pooling gathers are p^(k) (m = 128 wide) for max pooling, and
// W_pool p^(k) (d wide) for importance pooling.
static void CheckOutOfCore(train::Pooling pooling, std::uint64_t budget, std::uint32_t dim) {
  pgraph::test::TempDir tmp;
  testing::GraphSpec gs;
  gs.items = 60000;
  gs.feature_dim = 16;
  gs.width = 10;
  auto g = testing::MakeGraph(gs);
  const std::string dir = tmp.Sub("store");
  testing::WriteStore(dir, g, tmp.path());
  testing::ModelSpec ms;
  ms.hidden = 128;  // p^(k): 60000 x 128 floats = 29 MiB per layer
  ms.dim = dim;
  ms.pooling = pooling;
  auto model = testing::MakeModel(ms, g.items, g.feature_dim, g.width);
  testing::WriteCheckpoint(dir, *model);
  // Free what the set-up allocated that the test no longer needs.
  std::vector<float>().swap(g.features);

  const std::uint64_t overhead = 16ull << 20;  // the stated fixed overhead
  InferOptions o;
  o.store_dir = dir;
  o.threads = 2;
  o.memory_budget = budget;
  o.build_index = false;
  // Warm-up: torch, BLAS and TBB allocate their per-thread buffers once per process.
  REQUIRE(Infer(o).ok());

  const std::uint64_t before = RssAnonBytes();
  PeakSampler sampler;
  auto r = Infer(o);
  const std::uint64_t peak = sampler.Stop();
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->per_layer.size() == 2);
  CHECK(r->per_layer[0].partitions > 1);
  CHECK(r->per_layer[1].partitions > 1);
  // The planned working set stays within the budget, except for the store's buffering of the
  // one atomic `embedding` write (its pending rows and their encoded copy, at most 2 x 64 MiB;
  // here 2 x 3.7 MiB), which is part of the stated overhead.
  CHECK(r->peak_working_bytes <= budget + 2 * std::uint64_t{gs.items} * ms.dim * 4);
  INFO("RssAnon before " << before / 1024 << " KiB, peak " << peak / 1024 << " KiB, p^(1) "
                         << (gs.items * ms.hidden * 4) / 1024 << " KiB");
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed blocks in its quarantine and adds shadow memory: RSS says nothing here.
#else
  CHECK(peak <= before + budget + overhead);
#endif
  // Sanity: the rows one layer gathers would not fit in what was used (max pooling), or not
  // in the budget (importance: they are narrower than the store's write buffering).
  const std::uint64_t gathered =
      std::uint64_t{gs.items} * (pooling == train::Pooling::kMax ? ms.hidden : ms.dim) * 4;
  CHECK(gathered > (pooling == train::Pooling::kMax ? budget + overhead : budget));

  // The result equals Algorithm 2 on a sample.
  g = testing::MakeGraph(gs);
  std::uint32_t out_dim = 0;
  auto emb = testing::ReadEmbedding(dir, &out_dim);
  std::vector<NodeId> sample = {0, 1, 12345, 59999};
  storage::StoreOptions so;
  so.read_only = true;
  auto store = storage::Store::Open(dir, so);
  REQUIRE(store.ok());
  std::vector<float> naive(sample.size() * out_dim);
  REQUIRE(out_dim == dim);
  REQUIRE(NaiveEmbed(**store, "", sample, naive).ok());
  for (std::size_t j = 0; j < sample.size(); ++j) {
    for (std::uint32_t i = 0; i < out_dim; ++i) {
      CHECK(std::abs(naive[j * out_dim + i] - emb[sample[j] * out_dim + i]) < 1e-5);
    }
  }
}

TEST_CASE("a tiny budget forces partitioning and bounds anonymous memory", "[memory]") {
  SECTION("max pooling gathers p") { CheckOutOfCore(train::Pooling::kMax, 8ull << 20, 16); }
  SECTION("importance pooling gathers W_pool p") {
    CheckOutOfCore(train::Pooling::kImportance, 4ull << 20, 24);
  }
}

TEST_CASE("a budget below the minimum is refused", "[memory]") {
  InferOptions o;
  o.store_dir = "/nonexistent";
  o.memory_budget = 1 << 20;
  CHECK(Infer(o).status().IsInvalidArgument());
}

}  // namespace pgraph::infer
