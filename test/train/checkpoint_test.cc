// Checkpoints: resume gives the same parameters as an uninterrupted run (one thread, fixed
// seed); a run killed while checkpointing loses at most one epoch.
#include <catch2/catch.hpp>

#include "test/train/fixtures.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace pgraph::train {
namespace {

using Fixture = testing::PlantedSources;

TrainOptions Options(std::uint32_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 128;
  o.dim = 16;
  o.hidden = 16;
  o.negatives = 20;
  o.threads = 1;
  o.eval_pairs = 100;
  o.max_steps_per_epoch = 8;
  o.max_hard_negatives = 2;
  o.seed = 42;
  return o;
}

}  // namespace

TEST_CASE("resume gives the same parameters as an uninterrupted run", "[checkpoint]") {
  Fixture f;
  InMemoryCheckpoints full, parts;
  auto a = TrainOnData(f.Data(&full), Options(3));
  REQUIRE(a.ok());
  CHECK(full.saves() == 3);
  auto b = TrainOnData(f.Data(&parts), Options(2));
  REQUIRE(b.ok());
  TrainOptions resume = Options(3);
  resume.resume = true;
  resume.pipeline = false;  // the execution mode may change between runs
  resume.dim = 99;          // ignored: the model comes from the checkpoint
  auto c = TrainOnData(f.Data(&parts), resume);
  REQUIRE(c.ok());
  CHECK(c->first_epoch == 3);
  REQUIRE(c->epochs.size() == 1);
  CHECK(c->epochs[0].epoch == 3);
  CHECK(c->epochs[0].hard_negatives == 2);  // the curriculum continues
  CHECK(c->epochs[0].hit_rate == a->epochs[2].hit_rate);
  CheckpointData x = testing::LatestCheckpoint(full), y = testing::LatestCheckpoint(parts);
  CHECK(x.meta == y.meta);
  REQUIRE(x.arrays.size() == y.arrays.size());
  for (const auto& [name, arr] : x.arrays) {
    INFO(name);
    REQUIRE(y.arrays.count(name) == 1);
    CHECK(arr.shape == y.arrays[name].shape);
    CHECK(arr.data == y.arrays[name].data);  // bit-identical
  }
  // Resuming a finished run does nothing.
  auto d = TrainOnData(f.Data(&parts), resume);
  REQUIRE(d.ok());
  CHECK(d->epochs.empty());
}

TEST_CASE("a run that dies while checkpointing loses at most one epoch", "[checkpoint]") {
  Fixture f;
  InMemoryCheckpoints sink;
  sink.fail_on_save = 2;
  auto a = TrainOnData(f.Data(&sink), Options(3));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().IsIOError());
  CHECK(sink.last_epoch() == 1);
  sink.fail_on_save = 0;
  TrainOptions o = Options(3);
  o.resume = true;
  auto b = TrainOnData(f.Data(&sink), o);
  REQUIRE(b.ok());
  CHECK(b->first_epoch == 2);
  CHECK(sink.last_epoch() == 3);
  auto params = ParseParameters(*sink.LoadLatest().value());
  REQUIRE(params.ok());
  CHECK(params->epoch == 3);
  CHECK(params->arrays.count("layer1.W") == 1);
  CHECK(params->arrays.at("layer0.Q").shape == std::vector<std::int64_t>{16, 16});
}

}  // namespace pgraph::train
