// `pgraph train` as a subprocess: a clear error for --device cuda without a GPU, and the whole
// chain generate -> ingest -> walk -> train (with JSON log, checkpoint, resume).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "storage/store.h"
#include "test/support/temp_dir.h"
#include "train/trainer.h"

namespace pgraph::train {
namespace {

std::string Pgraph() { return PGRAPH_BINARY; }

int Run(const std::string& args, std::string* out) {
  return pgraph::test::RunCommand(Pgraph() + " " + args + " 2>&1", out);
}

int Lines(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("pgraph train --device cuda without a GPU is a clear error", "[cli]") {
  pgraph::test::TempDir dir;
  std::string out;
  int rc = Run("train --store " + dir.Sub("nostore") + " --device cuda", &out);
  INFO(out);
  CHECK(rc == 2);
  CHECK(out.find("CUDA") != std::string::npos);
  CHECK(out.find("--device cpu") != std::string::npos);
  rc = Run("train --store " + dir.Sub("nostore") + " --pooling median", &out);
  CHECK(rc == 2);
  for (const char* flag : {" --torch-threads -1", " --blas-threads -1"}) {
    rc = Run("train --store " + dir.Sub("nostore") + flag, &out);
    CHECK(rc == 2);
    CHECK(out.find("must be >= 0") != std::string::npos);
  }
  rc = Run("train --store " + dir.Sub("nostore"), &out);
  CHECK(rc == 2);  // NotFound: no store
}

TEST_CASE("generate, ingest, walk, train, resume", "[cli][slow]") {
  pgraph::test::TempDir dir;
  const std::string data = dir.Sub("data"), store = dir.Sub("store"), log = dir.Sub("log.json");
  std::string out;
  REQUIRE(Run("generate --out " + data +
                  " --items 2000 --contexts 4000 --edges 60000 --item-skew 0 --seed 3",
              &out) == 0);
  REQUIRE(Run("ingest --store " + store + " --edges " + data + "/edges.tsv --features " + data +
                  "/features.tsv --quiet",
              &out) == 0);
  INFO(out);
  REQUIRE(Run("walk --store " + store + " --top-t 10 --pairs-per-item 2 --heldout " + data +
                  "/truth.tsv --quiet",
              &out) == 0);
  {
    storage::StoreOptions so;
    so.read_only = true;
    auto s = storage::Store::Open(store, so);
    REQUIRE(s.ok());
    auto untrained = LoadTrainedOptions(**s);
    REQUIRE(untrained.ok());
    CHECK(!untrained->has_value());
  }
  const std::string train = "train --store " + store +
                            " --batch 256 --dim 32 --hidden 64 --negatives 100 --threads 2 "
                            "--max-steps-per-epoch 20 --eval-pairs 200 --log-json " + log;
  int rc = Run(train + " --epochs 2", &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("trained epochs 1-2") != std::string::npos);
  CHECK(out.find("hit@10") != std::string::npos);
  std::string json = pgraph::test::ReadFile(log);
  CHECK(Lines(json, "\"type\": \"epoch\"") == 2);
  CHECK(Lines(json, "\"type\": \"step\"") == 32);  // 4000 pairs / 256 = 16 per epoch
  {
    storage::StoreOptions so;
    so.read_only = true;
    auto s = storage::Store::Open(store, so);
    REQUIRE(s.ok());
    auto params = LoadLatestParameters(**s);
    REQUIRE(params.ok());
    CHECK(params->epoch == 2);
    CHECK(params->config.dim == 32);
    CHECK(params->config.neighbors == 10);
    CHECK(params->arrays.at("layer1.W").shape == std::vector<std::int64_t>{32, 96});
    CHECK((*s)->GetMeta("train.config").ok());
    // What eval reads to pick its history aggregation: the trained loss and temperature.
    auto trained = LoadTrainedOptions(**s);
    REQUIRE(trained.ok());
    REQUIRE(trained->has_value());
    CHECK((*trained)->loss == Loss::kSoftmax);
    CHECK((*trained)->temperature == Approx(0.05));
    CHECK((*trained)->negatives == 100);
  }
  rc = Run(train + " --epochs 3 --resume", &out);
  REQUIRE(rc == 0);
  CHECK(out.find("trained epochs 3-3") != std::string::npos);
}

}  // namespace pgraph::train
