// `pgraph index` and `pgraph query` run as subprocesses.
#include <catch2/catch.hpp>
#include <tbb/task_group.h>

#include <atomic>
#include <sstream>

#include "storage/store.h"
#include "test/ann/ann_test_util.h"
#include "test/ann/store_fixture.h"
#include "test/support/temp_dir.h"

namespace pgraph::ann {
namespace {

using test::RunCommand;

std::string Pgraph() { return PGRAPH_BINARY; }

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  std::string line;
  while (std::getline(is, line)) out.push_back(line);
  return out;
}

// A 2000-item, 16-d store with embeddings (f32) and an index.
struct CliStore {
  test::TempDir tmp;
  std::string dir = tmp.Sub("store");
  std::vector<float> data;
  explicit CliStore(storage::Backend backend = storage::Backend::kLmdb) {
    testing::MakeItemStore(tmp, dir, 2000, backend);
    data = testing::Clustered(2000, 16, 50, 0.5f, 9);
    testing::WriteEmbeddings(dir, data, 16, false, 0);
    std::string out;
    const int rc = RunCommand(Pgraph() + " index --store " + dir + " --bits 8 --tables 12", &out);
    INFO(out);
    REQUIRE(rc == 0);
  }
};

TEST_CASE("cli: query an item, TSV and JSON, exact and LSH", "[ann][slow]") {
  CliStore s;
  std::string out;
  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --item i5 --k 4", &out) == 0);
  auto lines = Lines(out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].rfind("i5\t1\ti5\t", 0) == 0);
  CHECK(lines[1].rfind("i5\t2\t", 0) == 0);

  std::string exact;
  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --item i5 --k 4 --exact", &exact) ==
          0);
  CHECK(Lines(exact).size() == 4);
  CHECK(Lines(exact)[0].rfind("i5\t1\ti5\t", 0) == 0);

  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --item i5 --k 3 --json --exclude-self",
                     &out) == 0);
  lines = Lines(out);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("{\"query\": \"i5\", \"neighbors\": [{\"item\": \"", 0) == 0);
  CHECK(lines[0].find("\"item\": \"i5\"") == std::string::npos);
  CHECK(lines[0].find("\"score\": ") != std::string::npos);
}

TEST_CASE("cli: many items from a file and vectors from a file", "[ann][slow]") {
  CliStore s;
  test::WriteFile(s.tmp.Sub("items.txt"), "i1\n\n# comment\ni2\textra field\ni3\n");
  std::string out;
  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --items " + s.tmp.Sub("items.txt") +
                         " --k 2 --exact",
                     &out) == 0);
  auto lines = Lines(out);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].rfind("i1\t1\ti1\t", 0) == 0);
  CHECK(lines[2].rfind("i2\t1\ti2\t", 0) == 0);
  CHECK(lines[4].rfind("i3\t1\ti3\t", 0) == 0);

  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --items " + s.tmp.Sub("items.txt") +
                         " --k 2 --json --threads 2",
                     &out) == 0);
  CHECK(Lines(out).size() == 3);

  // Item 7's own vector, as text: its best match is item 7.
  std::string vec;
  for (int j = 0; j < 16; ++j) vec += (j ? " " : "") + std::to_string(s.data[7 * 16 + j]);
  test::WriteFile(s.tmp.Sub("vec.txt"), vec + "\n" + vec + "\n");
  REQUIRE(RunCommand(Pgraph() + " query --store " + s.dir + " --vector " + s.tmp.Sub("vec.txt") +
                         " --k 1 --exact",
                     &out) == 0);
  lines = Lines(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("\t1\ti7\t") != std::string::npos);
}

TEST_CASE("cli: bad queries exit 2 with a clear message", "[ann][slow]") {
  CliStore s;
  auto expect2 = [&](const std::string& args, const std::string& words) {
    std::string out;
    const int rc = RunCommand(Pgraph() + " query " + args, &out);
    INFO(args << "\n" << out);
    CHECK(rc == 2);
    CHECK(out.find(words) != std::string::npos);
  };
  expect2("--store " + s.dir + " --item nope", "item 'nope' is not in store");
  expect2("--store " + s.dir + " --item i1 --k 0", "--k must be >= 1");
  expect2("--store " + s.dir + " --item i1 --k -3", "--k must be >= 1");
  expect2("--store " + s.dir, "exactly one of --item, --items, --vector");
  expect2("--store " + s.tmp.Sub("missing") + " --item i1", "");
  test::WriteFile(s.tmp.Sub("short.txt"), "1 2 3\n");
  expect2("--store " + s.dir + " --vector " + s.tmp.Sub("short.txt"), "3 values");
  test::WriteFile(s.tmp.Sub("items.txt"), "i1\nzzz\n");
  expect2("--store " + s.dir + " --items " + s.tmp.Sub("items.txt"), ":2");

  // A store without embeddings.
  const std::string bare = s.tmp.Sub("bare");
  testing::MakeItemStore(s.tmp, bare, 10, storage::Backend::kLmdb);
  expect2("--store " + bare + " --item i1 --exact", "no item embeddings");
  std::string out;
  CHECK(RunCommand(Pgraph() + " index --store " + bare, &out) == 2);
  CHECK(out.find("pgraph infer") != std::string::npos);
  CHECK(RunCommand(Pgraph() + " index --store " + s.dir + " --tables 0", &out) == 2);
  CHECK(RunCommand(Pgraph() + " query --help", &out) == 0);
  CHECK(out.find("--exclude-self") != std::string::npos);
  CHECK(RunCommand(Pgraph() + " index --help", &out) == 0);
}

TEST_CASE("cli: query reads the store while another process writes it", "[ann][slow]") {
  for (auto backend : {storage::Backend::kLmdb, storage::Backend::kRocksDb}) {
    INFO(storage::BackendName(backend));
    CliStore s(backend);
    const std::string query = Pgraph() + " query --store " + s.dir + " --item i11 --k 5";
    std::string before;
    REQUIRE(RunCommand(query, &before) == 0);

    // This process holds the store for writing: an update with unpublished chunks is open
    // while queries run, and further updates are published during the queries.
    auto store = storage::Store::Open(s.dir, storage::StoreOptions{});
    REQUIRE(store.ok());
    auto pending = (*store)->BeginUpdate();
    REQUIRE(pending.ok());
    storage::ColumnSpec spec;
    spec.name = "scratch.pending";
    spec.dtype = storage::DType::kF32;
    spec.width = 16;
    auto w = (*pending)->AddColumn(spec);
    REQUIRE(w.ok());
    std::vector<float> junk(16 * 20000, 1.5f);
    REQUIRE((*w)->AppendValues<float>(junk).ok());

    std::atomic<int> failures{0};
    std::string outputs;
    tbb::task_group readers;
    readers.run([&] {
      for (int i = 0; i < 4; ++i) {
        std::string out;
        if (RunCommand(query, &out) != 0 || out != before) {
          ++failures;
          outputs += out;
        }
      }
    });
    for (int i = 0; i < 6; ++i) {
      auto u = (*store)->BeginUpdate();
      REQUIRE(u.ok());
      spec.name = "scratch." + std::to_string(i);
      auto cw = (*u)->AddColumn(spec);
      REQUIRE(cw.ok());
      REQUIRE((*cw)->AppendValues<float>(junk).ok());
      (*u)->SetMeta("scratch.round", std::to_string(i));
      REQUIRE((*u)->Publish().ok());
    }
    readers.wait();
    INFO(outputs);
    CHECK(failures == 0);
    REQUIRE((*pending)->Publish().ok());
    std::string after;
    REQUIRE(RunCommand(query, &after) == 0);
    CHECK(after == before);
  }
}

}  // namespace
}  // namespace pgraph::ann
