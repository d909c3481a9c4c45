// Training within a memory budget: batches over their memory share run in parts with the
// gradients of the whole batch, and a store-backed run whose features are larger than the
// budget keeps its peak anonymous RSS within the budget plus the model.
#include <catch2/catch.hpp>

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "storage/store.h"
#include "test/support/peak_rss.h"
#include "test/support/temp_dir.h"
#include "test/train/fixtures.h"
#include "train/batch.h"

namespace pgraph::train {
namespace {

ModelParameters ParametersOf(InMemoryCheckpoints& sink) {
  auto blob = sink.LoadLatest();
  REQUIRE(blob.ok());
  REQUIRE(blob->has_value());
  auto p = ParseParameters(**blob);
  REQUIRE(p.ok());
  return std::move(p).value();
}

double MaxAbsDiff(const ModelParameters& a, const ModelParameters& b) {
  double worst = 0;
  for (const auto& [name, x] : a.arrays) {
    worst = std::max(worst, testing::MaxAbsDiff(x, b.arrays.at(name)));
  }
  return worst;
}

using pgraph::test::PeakSampler;
using pgraph::test::RssAnonBytes;

}  // namespace

TEST_CASE("PartPlanner covers the targets in order with parts within the budget", "[train]") {
  testing::PlantedOptions po;
  po.num_items = 3000;
  po.width = 8;
  testing::PlantedSources src(po);
  ModelConfig mc;
  mc.layers = 2;
  mc.dim = 16;
  mc.hidden = 24;
  mc.feature_dim = po.feature_dim;
  mc.num_items = po.num_items;
  std::vector<NodeId> targets;
  for (NodeId u = 0; u < 400; ++u) targets.push_back((u * 7919) % po.num_items);
  MiniBatch whole;
  std::vector<std::int64_t> pos;
  REQUIRE(BuildSubgraph(targets, 2, src.nbrs, &whole, &pos).ok());
  const std::uint64_t whole_bytes = EstimateBatchBytes(whole, mc, /*with_grad=*/true).total;
  const std::uint64_t budget = whole_bytes / 5;
  PartPlanner planner(targets, 2, src.nbrs, &src.features, mc, /*with_grad=*/true, budget);
  std::size_t expect_lo = 0, parts = 0;
  while (!planner.done()) {
    MiniBatch part;
    std::size_t lo = 0, hi = 0;
    REQUIRE(planner.Next(&part, &lo, &hi).ok());
    ++parts;
    CHECK(lo == expect_lo);
    REQUIRE(hi > lo);
    expect_lo = hi;
    // The part's targets are its first rows, in order, and it fits (or is one target).
    REQUIRE(part.num_targets() == hi - lo);
    CHECK(std::equal(part.nodes.begin(), part.nodes.begin() + (hi - lo), targets.begin() + lo));
    CHECK((EstimateBatchBytes(part, mc, true).total <= budget || hi - lo == 1));
    CHECK(part.features.size() == part.nodes.size() * po.feature_dim);
    // Building the range again gives the same part.
    MiniBatch again;
    REQUIRE(planner.Build(lo, hi, &again).ok());
    CHECK(again.nodes == part.nodes);
    CHECK(again.features == part.features);
  }
  CHECK(expect_lo == targets.size());
  CHECK(parts >= 5);
}

TEST_CASE("a batch over its memory share trains in parts with the whole batch's gradients",
          "[train]") {
  testing::PlantedOptions po;
  po.num_items = 2000;
  testing::PlantedSources src(po);
  auto run = [&](std::uint64_t budget, bool pipeline, bool in_batch, TrainReport* report,
                 std::vector<double>* losses) {
    TrainOptions o;
    o.layers = 2;
    o.dim = 16;
    o.hidden = 24;
    o.batch = 64;
    o.negatives = 50;
    o.epochs = 2;  // epoch 2 draws a hard negative per pair (curriculum)
    o.max_steps_per_epoch = 3;
    o.threads = 1;
    o.pipeline = pipeline;
    o.in_batch_negatives = in_batch;
    o.memory_budget = budget;
    o.eval_pairs = 50;
    o.on_step = [&](const StepStats& s) { losses->push_back(s.loss); };
    InMemoryCheckpoints sink;
    TrainData d = src.Data();
    d.checkpoints = &sink;
    auto r = TrainOnData(d, o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    *report = *r;
    return ParametersOf(sink);
  };
  const bool in_batch = GENERATE(false, true);
  const bool pipeline = GENERATE(true, false);
  // 1 MiB: even the batch's ids are over the share, so the producer never builds it whole;
  // 4 MiB without the pipeline: it builds the subgraph, measures it, then sends the plan.
  const std::uint64_t budget = GENERATE(1ull << 20, 4ull << 20);
  INFO("in-batch negatives " << in_batch << ", pipeline " << pipeline << ", budget " << budget);
  TrainReport whole_report, parts_report;
  std::vector<double> whole_losses, parts_losses;
  ModelParameters whole = run(512ull << 20, pipeline, in_batch, &whole_report, &whole_losses);
  ModelParameters parts = run(budget, pipeline, in_batch, &parts_report, &parts_losses);
  CHECK(whole_report.split_steps == 0);
  CHECK(parts_report.split_steps == parts_report.steps);
  CHECK(parts_report.parts >= (budget == (1ull << 20) ? 3 : 2) * parts_report.split_steps);
  REQUIRE(whole_losses.size() == parts_losses.size());
  for (std::size_t j = 0; j < whole_losses.size(); ++j) {
    CHECK(parts_losses[j] == Approx(whole_losses[j]).epsilon(1e-5));
  }
  CHECK(MaxAbsDiff(whole, parts) < 1e-5);
  // Validation ran in parts too and ranks the same.
  REQUIRE(whole_report.epochs.size() == 2);
  CHECK(parts_report.epochs[1].hit_rate == Approx(whole_report.epochs[1].hit_rate).margin(0.021));
}

// Writes a store with g's items (ids "i<u>", dense id u, in 1-3 contexts each), features,
// neighbourhoods as walk.* columns and training pairs, as `pgraph walk` would leave it.
static void WriteStore(const std::string& dir, const std::string& tmp,
                       const testing::PlantedGraph& g) {
  const std::string edges = tmp + "/edges.tsv", feats = tmp + "/features.npy",
                    ids = tmp + "/ids.txt";
  {
    std::FILE* e = std::fopen(edges.c_str(), "w");
    std::FILE* i = std::fopen(ids.c_str(), "w");
    REQUIRE(e != nullptr);
    REQUIRE(i != nullptr);
    for (std::uint32_t u = 0; u < g.num_items; ++u) {
      for (std::uint32_t j = 0; j <= u % 3; ++j) std::fprintf(e, "i%u\tc%u\n", u, (u + 7 * j) % 997);
      std::fprintf(i, "i%u\n", u);
    }
    std::fclose(e);
    std::fclose(i);
    // features as .npy (float32, C order): binary, so a large test store ingests quickly.
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                         std::to_string(g.num_items) + ", " + std::to_string(g.feature_dim) +
                         "), }";
    header.append(63 - (10 + header.size()) % 64, ' ');
    header += '\n';
    std::FILE* f = std::fopen(feats.c_str(), "wb");
    REQUIRE(f != nullptr);
    const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                  static_cast<unsigned char>(header.size() >> 8)};
    std::fwrite(magic, 1, 8, f);
    std::fwrite(len, 1, 2, f);
    std::fwrite(header.data(), 1, header.size(), f);
    std::fwrite(g.features.data(), sizeof(float), g.features.size(), f);
    std::fclose(f);
  }
  storage::IngestOptions io;
  io.store_dir = dir;
  io.edges_path = edges;
  io.features_path = feats;
  io.feature_ids_path = ids;
  io.header = 0;
  io.progress = false;
  io.threads = 1;
  auto r = storage::Ingest(io);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  auto store = storage::Store::Open(dir, {});
  REQUIRE(store.ok());
  auto update = (*store)->BeginUpdate();
  REQUIRE(update.ok());
  namespace cols = storage::columns;
  auto nw = (*update)->AddColumn({cols::kWalkNeighbors, storage::DType::kU32, g.width, 0, -1});
  auto ww = (*update)->AddColumn({cols::kWalkWeights, storage::DType::kF32, g.width, 0, -1});
  auto pw = (*update)->AddColumn({cols::kTrainPairs, storage::DType::kU32, 2, 0, -1});
  REQUIRE((nw.ok() && ww.ok() && pw.ok()));
  REQUIRE((*nw)->AppendValues<NodeId>(g.neighbors).ok());
  REQUIRE((*ww)->AppendValues<float>(g.weights).ok());
  std::vector<NodeId> pairs;
  for (auto [q, i] : g.train_pairs) {
    pairs.push_back(q);
    pairs.push_back(i);
  }
  REQUIRE((*pw)->AppendValues<NodeId>(pairs).ok());
  REQUIRE((*update)->Publish().ok());
}

// The memory goal: on a store whose features alone are larger than the budget, peak
// anonymous RSS stays within the budget plus the model (with its gradients and Adam state)
// plus a fixed overhead. The first run warms torch, BLAS and TBB up (per-thread buffers).
TEST_CASE("training on a store larger than the budget stays within the budget", "[train]") {
  pgraph::test::TempDir tmp;
  testing::PlantedOptions po;
  po.num_items = 50000;
  po.communities = 250;
  po.feature_dim = 128;  // 24 MiB of features
  po.width = 8;
  po.pairs_per_item = 2;
  testing::PlantedGraph g = testing::MakePlantedGraph(po);
  const std::string dir = tmp.Sub("store");
  WriteStore(dir, tmp.path(), g);
  const std::uint64_t feature_bytes = std::uint64_t{po.num_items} * po.feature_dim * 4;
  g = testing::PlantedGraph();  // the test's own copy is not the trainer's memory

  const std::uint64_t budget = 4ull << 20;
  const std::uint64_t overhead = 16ull << 20;  // the stated fixed overhead
  TrainOptions o;
  o.store_dir = dir;
  o.memory_budget = budget;
  o.layers = 2;
  o.dim = 16;
  o.hidden = 32;
  o.batch = 64;
  o.negatives = 50;
  // Hard negatives off: below the adjacency's size the walker cannot pin it and the fallback
  // sampler reads walk rows one at a time, decompressing a chunk per PPR step (slow, not big).
  o.hard_negatives = false;
  o.epochs = 2;
  o.max_steps_per_epoch = 2;
  o.threads = 2;
  o.eval_pairs = 0;
  o.checkpoint = false;
  {
    // Warm-up on small batches: torch, BLAS and TBB allocate per-thread buffers once per
    // process. Then free what the allocator holds, so the baseline is what stays in use.
    TrainOptions w = o;
    w.batch = 4;
    w.negatives = 4;
    w.eval_pairs = 4;
    REQUIRE(Train(w).ok());
    malloc_trim(0);
  }

  const std::uint64_t before = RssAnonBytes();
  PeakSampler sampler;
  auto r = Train(o);
  const std::uint64_t peak = sampler.Stop();
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const std::uint64_t model_bytes = r->parameters * 4 * 4;  // values, gradients, Adam m and v
  INFO("RssAnon before " << before / 1024 << " KiB, peak " << peak / 1024 << " KiB, budget "
                         << budget / 1024 << " KiB, model " << model_bytes / 1024
                         << " KiB, features " << feature_bytes / 1024 << " KiB, parts "
                         << r->parts << " in " << r->split_steps << " steps");
  CHECK(feature_bytes > budget + overhead);
  CHECK(r->split_steps == r->steps);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed blocks in its quarantine and adds shadow memory: RSS says nothing here.
#else
  CHECK(peak <= before + budget + model_bytes + overhead);
#endif
}

}  // namespace pgraph::train
