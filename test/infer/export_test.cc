// The CLI: `pgraph infer` (progress, --dtype, --resume after SIGKILL at a stop point) and
// `pgraph export --what embedding --format npy|tsv`, read back by a small .npy reader.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "infer/infer.h"
#include "storage/store.h"
#include "test/infer/infer_fixture.h"

namespace pgraph::infer {
namespace {

// A minimal .npy reader: version 1.0, little-endian '<f4' or '<f2', C order, 2-D.
struct Npy {
  std::vector<std::uint64_t> shape;
  std::string descr;
  std::vector<float> data;
};

Npy ReadNpy(const std::string& path) {
  const std::string bytes = pgraph::test::ReadFile(path);
  REQUIRE(bytes.size() >= 10);
  REQUIRE(bytes.compare(0, 6, "\x93NUMPY") == 0);
  const std::size_t hlen = static_cast<unsigned char>(bytes[8]) |
                           (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  REQUIRE((10 + hlen) % 64 == 0);
  const std::string header = bytes.substr(10, hlen);
  Npy npy;
  auto d = header.find("'descr': '");
  REQUIRE(d != std::string::npos);
  npy.descr = header.substr(d + 10, 3);
  REQUIRE(header.find("'fortran_order': False") != std::string::npos);
  auto s = header.find("'shape': (");
  REQUIRE(s != std::string::npos);
  std::stringstream ss(header.substr(s + 10));
  std::uint64_t a = 0, b = 0;
  char comma;
  ss >> a >> comma >> b;
  npy.shape = {a, b};
  const char* p = bytes.data() + 10 + hlen;
  const std::size_t n = a * b;
  npy.data.resize(n);
  if (npy.descr == "<f4") {
    REQUIRE(bytes.size() == 10 + hlen + n * 4);
    std::memcpy(npy.data.data(), p, n * 4);
  } else {
    REQUIRE(npy.descr == "<f2");
    REQUIRE(bytes.size() == 10 + hlen + n * 2);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      npy.data[i] = storage::HalfToFloat(h);
    }
  }
  return npy;
}

struct CliStore {
  pgraph::test::TempDir tmp;
  std::string dir = tmp.Sub("store");
  testing::GraphData g = testing::MakeGraph(testing::GraphSpec{});
  train::PinSageModel model{nullptr};
  CliStore() {
    testing::WriteStore(dir, g, tmp.path());
    model = testing::MakeModel(testing::ModelSpec{}, g.items, g.feature_dim, g.width);
    testing::WriteCheckpoint(dir, *model);
  }
  int Run(const std::string& args, std::string* out) {
    return pgraph::test::RunCommand(std::string(PGRAPH_BINARY) + " " + args + " 2>&1", out);
  }
};

}  // namespace

TEST_CASE("pgraph export --what embedding round-trips through npy and tsv", "[export]") {
  CliStore s;
  std::string out;
  REQUIRE(s.Run("infer --store " + s.dir + " --threads 2", &out) == 0);
  INFO(out);
  CHECK(out.find("pool 2/2") != std::string::npos);
  std::uint32_t d = 0;
  const auto emb = testing::ReadEmbedding(s.dir, &d);

  const std::string npy = s.tmp.Sub("emb.npy");
  REQUIRE(s.Run("export --store " + s.dir + " --what embedding --format npy --out " + npy, &out) ==
          0);
  Npy m = ReadNpy(npy);
  CHECK(m.descr == "<f4");
  REQUIRE(m.shape == std::vector<std::uint64_t>{s.g.items, d});
  CHECK(m.data == emb);
  const std::string ids = pgraph::test::ReadFile(npy + ".ids.txt");
  std::stringstream idss(ids);
  std::string line;
  std::uint32_t row = 0;
  while (std::getline(idss, line)) CHECK(line == testing::ItemName(row++));
  CHECK(row == s.g.items);

  const std::string tsv = s.tmp.Sub("emb.tsv");
  REQUIRE(s.Run("export --store " + s.dir + " --what embedding --format tsv --out " + tsv, &out) ==
          0);
  std::stringstream ts(pgraph::test::ReadFile(tsv));
  row = 0;
  while (std::getline(ts, line)) {
    std::stringstream ls(line);
    std::string name;
    std::getline(ls, name, '\t');
    CHECK(name == testing::ItemName(row));
    for (std::uint32_t i = 0; i < d; ++i) {
      float v;
      ls >> v;
      CHECK(v == emb[row * d + i]);  // %.9g round-trips float32
    }
    ++row;
  }
  CHECK(row == s.g.items);

  // float16 storage exports as '<f2'.
  REQUIRE(s.Run("infer --quiet --no-index --dtype float16 --store " + s.dir, &out) == 0);
  REQUIRE(s.Run("export --store " + s.dir + " --what embedding --format npy --out " + npy, &out) ==
          0);
  Npy h = ReadNpy(npy);
  CHECK(h.descr == "<f2");
  for (std::size_t i = 0; i < emb.size(); ++i) {
    CHECK(std::abs(h.data[i] - emb[i]) <= std::ldexp(1.0, -11) * std::abs(emb[i]) + 6e-8);
  }
  // Bad requests.
  CHECK(s.Run("export --store " + s.dir + " --what embedding --format csv --out " + npy, &out) ==
        2);
  CHECK(s.Run("infer --store " + s.dir + " --dtype int8", &out) == 2);
  CHECK(s.Run("infer --store " + s.dir + " --locality-order sometimes", &out) == 2);
  CHECK(out.find("--locality-order") != std::string::npos);
}

TEST_CASE("pgraph infer --json reports the run, --locality-order on orders it", "[export]") {
  CliStore s;
  std::string out;
  REQUIRE(pgraph::test::RunCommand(std::string(PGRAPH_BINARY) + " infer --quiet --no-index --json "
                                       "--locality-order on --store " + s.dir,
                                   &out) == 0);
  INFO(out);
  CHECK(out.rfind("{\"store\": ", 0) == 0);
  CHECK(out.find("\"items\": " + std::to_string(s.g.items)) != std::string::npos);
  CHECK(out.find("\"locality_order\": true, \"layout_source\": \"computed\"") !=
        std::string::npos);
  CHECK(out.find("{\"layer\": 2, ") != std::string::npos);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);  // one line, nothing else on stdout
  REQUIRE(pgraph::test::RunCommand(std::string(PGRAPH_BINARY) + " infer --quiet --no-index --json "
                                       "--locality-order off --store " + s.dir,
                                   &out) == 0);
  CHECK(out.find("\"locality_order\": false, \"layout_source\": \"\", "
                 "\"layout_note\": \"--locality-order off\"") != std::string::npos);
}

TEST_CASE("pgraph infer --resume after SIGKILL at a stop point", "[export][slow]") {
  CliStore s;
  std::string out;
  // Stop the process (SIGSTOP) right after layer 1's pooled segment 0 is published, then
  // SIGKILL it there and resume.
  const std::string cmd =
      "PGRAPH_TEST_STOP_AT=infer.published.h1.0 " + std::string(PGRAPH_BINARY) +
      " infer --quiet --no-index --segment-rows 64 --block-rows 32 --store " + s.dir +
      " & p=$!; while ! grep -q '^State:.*T' /proc/$p/status 2>/dev/null; do "
      "kill -0 $p 2>/dev/null || break; sleep 0.05; done; kill -9 $p; wait $p; echo killed";
  pgraph::test::RunCommand(cmd, &out);
  INFO(out);
  REQUIRE(out.find("killed") != std::string::npos);
  {
    storage::StoreOptions so;
    so.read_only = true;
    auto store = storage::Store::Open(s.dir, so);
    REQUIRE(store.ok());
    CHECK_FALSE((*store)->HasColumn(storage::columns::kEmbedding));
    CHECK((*store)->HasColumn("infer.h1.00000"));
  }
  REQUIRE(s.Run("infer --resume --no-index --segment-rows 64 --block-rows 32 --store " + s.dir,
                &out) == 0);
  CHECK(out.find("resumed") != std::string::npos);
  std::uint32_t d = 0;
  auto ref = testing::Reference(*s.model, s.g, testing::AllItems(s.g.items));
  CHECK(testing::MaxAbsDiff(testing::ReadEmbedding(s.dir, &d), ref) < 1e-5);
}

}  // namespace pgraph::infer
