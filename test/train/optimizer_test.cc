// Optimizer options. Polyak averaging (TrainOptions::ema_decay): the checkpoint's model is the
// moving average of the optimizer's iterates, the iterates themselves are those of a run
// without averaging, --resume continues both exactly, and the option is recorded in the run's
// config. Decoupled weight decay (TrainOptions::weight_decay) shrinks the weight matrices and
// id embeddings.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "test/train/fixtures.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace pgraph::train {
namespace {

using Fixture = testing::PlantedSources;

TrainOptions Options(std::uint32_t epochs, double ema) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 128;
  o.dim = 16;
  o.hidden = 16;
  o.negatives = 20;
  o.threads = 1;
  o.pipeline = false;
  o.hard_negatives = false;
  o.eval_pairs = 100;
  o.max_steps_per_epoch = 8;
  o.id_embedding_dim = 4;
  o.seed = 42;
  o.ema_decay = ema;
  return o;
}

using testing::MaxAbsDiff;

}  // namespace

TEST_CASE("averaging saves the average and leaves the optimizer's iterates unchanged",
          "[optimizer]") {
  Fixture f;
  InMemoryCheckpoints plain, averaged;
  auto a = TrainOnData(f.Data(&plain), Options(2, 0));
  REQUIRE(a.ok());
  auto b = TrainOnData(f.Data(&averaged), Options(2, 0.9));
  REQUIRE(b.ok());
  CheckpointData x = testing::LatestCheckpoint(plain), y = testing::LatestCheckpoint(averaged);
  CHECK(x.meta.at("config").find("ema_decay=0\n") != std::string::npos);
  CHECK(y.meta.at("config").find("ema_decay=0.9") != std::string::npos);
  for (const auto& [name, arr] : x.arrays) {
    if (name.rfind("adam.", 0) == 0) {
      // Adam's state is the same: averaging does not feed back into training.
      INFO(name);
      REQUIRE(y.arrays.count(name) == 1);
      CHECK(arr.data == y.arrays.at(name).data);
      continue;
    }
    INFO(name);
    CHECK(x.arrays.count("adam.w/" + name) == 0);
    // The iterate of the averaged run is bit-identical to the plain run's model...
    REQUIRE(y.arrays.count("adam.w/" + name) == 1);
    CHECK(y.arrays.at("adam.w/" + name).data == arr.data);
    // ...and the saved model is something else: the average lags behind the iterate.
    CHECK(MaxAbsDiff(y.arrays.at(name), arr) > 1e-6);
  }
  // Validation ran on what was saved, so it differs from the plain run's.
  REQUIRE(b->epochs.size() == 2);
  CHECK(std::isfinite(b->epochs[1].hit_rate));
  CHECK((b->epochs[1].hit_rate != a->epochs[1].hit_rate ||
         b->epochs[1].mrr != a->epochs[1].mrr));
  // Inference reads the average under the public names.
  auto params = ParseParameters(*averaged.LoadLatest().value());
  REQUIRE(params.ok());
  CHECK(params->arrays.count("adam.w/layer0.Q") == 0);
  CHECK(params->arrays.at("layer0.Q").data == y.arrays.at("layer0.Q").data);
}

TEST_CASE("the average is a weighted mean of past iterates, close to the last one for small "
          "decays",
          "[optimizer]") {
  Fixture f;
  // Decay 1e-9: the average is the last iterate up to rounding.
  InMemoryCheckpoints tiny, plain;
  REQUIRE(TrainOnData(f.Data(&plain), Options(1, 0)).ok());
  REQUIRE(TrainOnData(f.Data(&tiny), Options(1, 1e-9)).ok());
  CheckpointData x = testing::LatestCheckpoint(plain), y = testing::LatestCheckpoint(tiny);
  for (const char* name : {"layer0.Q", "layer1.W", "G1", "G2", "id_embedding"}) {
    INFO(name);
    CHECK(MaxAbsDiff(y.arrays.at(name), x.arrays.at(name)) < 1e-6);
  }
  // A long memory stays closer to the initialisation than the iterate: averaging shrinks
  // the distance travelled from it.
  InMemoryCheckpoints start, slow;
  TrainOptions o0 = Options(1, 0);
  o0.max_steps_per_epoch = 1;
  o0.lr = 1e-12;  // one negligible step: the checkpoint is (almost) the initialisation
  REQUIRE(TrainOnData(f.Data(&start), o0).ok());
  REQUIRE(TrainOnData(f.Data(&slow), Options(1, 0.99)).ok());
  CheckpointData init = testing::LatestCheckpoint(start), z = testing::LatestCheckpoint(slow);
  const NamedArray& w0 = init.arrays.at("layer0.Q");
  CHECK(MaxAbsDiff(z.arrays.at("layer0.Q"), w0) < MaxAbsDiff(x.arrays.at("layer0.Q"), w0));
}

TEST_CASE("resume continues the average and the iterate exactly", "[optimizer]") {
  Fixture f;
  InMemoryCheckpoints full, parts;
  REQUIRE(TrainOnData(f.Data(&full), Options(3, 0.95)).ok());
  REQUIRE(TrainOnData(f.Data(&parts), Options(2, 0.95)).ok());
  TrainOptions resume = Options(3, 0);  // the decay comes from the checkpoint's config
  resume.resume = true;
  auto c = TrainOnData(f.Data(&parts), resume);
  REQUIRE(c.ok());
  CHECK(c->first_epoch == 3);
  CheckpointData x = testing::LatestCheckpoint(full), y = testing::LatestCheckpoint(parts);
  CHECK(x.meta == y.meta);
  REQUIRE(x.arrays.size() == y.arrays.size());
  for (const auto& [name, arr] : x.arrays) {
    INFO(name);
    REQUIRE(y.arrays.count(name) == 1);
    CHECK(arr.data == y.arrays.at(name).data);  // bit-identical
  }
}

TEST_CASE("an averaged checkpoint without the iterate does not resume", "[optimizer]") {
  Fixture f;
  InMemoryCheckpoints sink;
  REQUIRE(TrainOnData(f.Data(&sink), Options(1, 0.9)).ok());
  CheckpointData c = testing::LatestCheckpoint(sink);
  c.arrays.erase("adam.w/G1");
  InMemoryCheckpoints damaged;
  REQUIRE(damaged.Save(SerializeCheckpoint(c), c.meta.at("config"), 1).ok());
  TrainOptions o = Options(2, 0.9);
  o.resume = true;
  auto r = TrainOnData(f.Data(&damaged), o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().IsCorruption());
}

TEST_CASE("the decay is checked and round-trips through the config", "[optimizer]") {
  Fixture f;
  for (double bad : {-0.1, 1.0, 2.0}) {
    INFO(bad);
    auto r = TrainOnData(f.Data(nullptr), Options(1, bad));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().IsInvalidArgument());
  }
  ModelConfig m;
  TrainOptions o;
  o.ema_decay = 0.9995;
  ModelConfig m2;
  TrainOptions o2;
  REQUIRE(ParseConfig(FormatConfig(m, o), &m2, &o2).ok());
  CHECK(o2.ema_decay == 0.9995);
  // A config written before the key existed parses, without averaging.
  TrainOptions o3;
  std::string old = FormatConfig(m, TrainOptions{});
  old.erase(old.find("ema_decay="), std::string("ema_decay=0\n").size());
  REQUIRE(old.find("ema_decay") == std::string::npos);
  REQUIRE(ParseConfig(old, &m2, &o3).ok());
  CHECK(o3.ema_decay == 0);
}

double SquaredNorm(const NamedArray& a) {
  double s = 0;
  for (float x : a.data) s += static_cast<double>(x) * x;
  return s;
}

TEST_CASE("weight decay shrinks the weight matrices and id embeddings", "[optimizer]") {
  Fixture f;
  InMemoryCheckpoints plain, decayed;
  REQUIRE(TrainOnData(f.Data(&plain), Options(2, 0)).ok());
  TrainOptions o = Options(2, 0);
  o.weight_decay = 20;  // lr 1e-3 x 20 = 2% per step: clearly visible after 16 steps
  auto r = TrainOnData(f.Data(&decayed), o);
  REQUIRE(r.ok());
  CHECK(r->epochs[1].mean_loss < r->epochs[0].mean_loss);  // it still learns
  CheckpointData x = testing::LatestCheckpoint(plain), y = testing::LatestCheckpoint(decayed);
  CHECK(y.meta.at("config").find("weight_decay=20\n") != std::string::npos);
  CHECK(x.meta.at("config").find("weight_decay=0\n") != std::string::npos);
  for (const char* name : {"layer0.Q", "layer0.W", "layer1.W", "G1", "G2", "id_embedding"}) {
    INFO(name);
    CHECK(SquaredNorm(y.arrays.at(name)) < 0.9 * SquaredNorm(x.arrays.at(name)));
  }
  // A bad value is refused.
  o.weight_decay = -1;
  auto bad = TrainOnData(f.Data(nullptr), o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().IsInvalidArgument());
  // The value round-trips through the config, and an older config has none.
  ModelConfig m, m2;
  TrainOptions a, b;
  a.weight_decay = 0.05;
  REQUIRE(ParseConfig(FormatConfig(m, a), &m2, &b).ok());
  CHECK(b.weight_decay == 0.05);
}

}  // namespace pgraph::train
