// Parallel ingest: the store must not depend on the thread count, the block size or the
// parse path taken (integer fast path or general), and id interning must assign dense ids in
// first-appearance order whatever structure holds an id.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

#include "storage/ingest/id_table.h"
#include "storage/store.h"
#include "test/support/temp_dir.h"

using namespace pgraph;
using namespace pgraph::storage;

namespace {

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

// Every column of a store, by name: its raw bytes.
std::map<std::string, std::vector<std::byte>> ReadColumns(const std::string& dir) {
  StoreOptions so;
  so.read_only = true;
  auto store = Store::Open(dir, so);
  REQUIRE(store.ok());
  std::map<std::string, std::vector<std::byte>> out;
  for (const ColumnInfo& ci : store.value()->ListColumns()) {
    auto col = store.value()->OpenColumn(ci.name);
    REQUIRE(col.ok());
    std::vector<std::byte> bytes(ci.rows * ci.row_bytes());
    REQUIRE(col.value()->ReadRows(0, ci.rows, bytes).ok());
    out[ci.name] = std::move(bytes);
  }
  return out;
}

struct Run {
  IngestReport report;
  std::map<std::string, std::vector<std::byte>> columns;
};

Run IngestWith(const test::TempDir& tmp, const std::string& edges, int threads,
               std::size_t block_bytes, const std::string& name) {
  ScopedEnv env("PGRAPH_TEST_BLOCK_BYTES", std::to_string(block_bytes));
  IngestOptions o;
  o.store_dir = tmp.Sub(name);
  o.edges_path = edges;
  o.progress = false;
  o.threads = threads;
  o.store.codec = Codec::kNone;
  auto r = Ingest(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return Run{r.value(), ReadColumns(o.store_dir)};
}

// Lines that take both parse paths: plain integer lines (fast path) and lines the general
// parser must handle (CRLF, blanks around fields, comments, blank lines, leading zeros,
// string ids, ids too long for an integer, weights in other notations).
std::string MixedEdges(std::mt19937& rng, int lines, bool weighted, char delim) {
  std::ostringstream text;
  for (int k = 0; k < lines; ++k) {
    std::uint64_t item = rng() % 500;
    std::uint64_t ctx = rng() % 300;
    switch (rng() % 12) {
      case 0: item += 1'000'000'000'000ull; break;  // a large integer: the hash table
      case 1: ctx *= 1'000'003; break;               // sparse integers
      default: break;
    }
    std::string is = std::to_string(item), cs = std::to_string(ctx);
    int style = static_cast<int>(rng() % 10);
    if (style == 0) is = "0" + is;                       // leading zero: a string id
    if (style == 1) cs = "c" + cs;                       // a string id
    if (style == 2) is = "1234567890123456789" + is;     // 19+ digits: a string id
    if (style == 3) is = " " + is + " ";                 // blanks around a field
    std::string line = is + delim + cs;
    if (weighted) {
      static const char* kWeights[] = {"1", "2.5", "0.125", "3e-1", "7", "0"};
      line += delim;
      line += kWeights[rng() % 6];
    }
    text << line;
    int end = static_cast<int>(rng() % 8);
    if (end == 0) text << "\r\n";
    else text << "\n";
    if (rng() % 50 == 0) text << "# a comment " << k << "\n";
    if (rng() % 70 == 0) text << "\n";
  }
  return text.str();
}

}  // namespace

TEST_CASE("parallel ingest: same columns whatever the threads and block size", "[storage]") {
  bool weighted = GENERATE(false, true);
  char delim = GENERATE('\t', ',');
  bool final_newline = GENERATE(true, false);
  test::TempDir tmp;
  std::mt19937 rng(weighted * 7 + (delim == ',') * 3 + final_newline);
  std::string text = MixedEdges(rng, 6000, weighted, delim);
  if (!final_newline) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    text += delim == '\t' ? "\n42\t7" : "\n42,7";  // the last line has no newline
    if (weighted) text += std::string(1, delim) + "2";
  }
  test::WriteFile(tmp.Sub("e.txt"), text);
  // The reference: one thread, one block.
  Run ref = IngestWith(tmp, tmp.Sub("e.txt"), 1, 64 << 20, "ref");
  CHECK(ref.report.edges > 0);
  CHECK(ref.columns.count("item_to_context.targets"));
  CHECK(ref.columns.count("item_to_context.weights") == (weighted ? 1 : 0));
  int threads = GENERATE(2, 8);
  std::size_t block = GENERATE(std::size_t{97}, std::size_t{4096}, std::size_t{64} << 20);
  Run run = IngestWith(tmp, tmp.Sub("e.txt"), threads, block, "run");
  CHECK(run.report.lines == ref.report.lines);
  CHECK(run.report.items == ref.report.items);
  CHECK(run.report.contexts == ref.report.contexts);
  CHECK(run.report.edges == ref.report.edges);
  CHECK(run.report.duplicate_edges == ref.report.duplicate_edges);
  REQUIRE(run.columns.size() == ref.columns.size());
  for (const auto& [name, bytes] : ref.columns) {
    INFO("column " << name << ", threads " << threads << ", block " << block);
    CHECK(run.columns.at(name) == bytes);
  }
}

TEST_CASE("parallel ingest: a stream (FIFO) and a mapped file give the same store", "[storage]") {
  test::TempDir tmp;
  std::mt19937 rng(5);
  test::WriteFile(tmp.Sub("e.tsv"), MixedEdges(rng, 3000, false, '\t'));
  Run file = IngestWith(tmp, tmp.Sub("e.tsv"), 4, 1000, "file");
  // A FIFO is read as a stream (no memory map): blocks are interned one at a time.
  std::string fifo = tmp.Sub("fifo");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  pid_t pid = fork();
  std::string src = tmp.Sub("e.tsv");
  if (pid == 0) {  // only async-signal-safe calls after fork
    int in = open(src.c_str(), O_RDONLY);
    int out = open(fifo.c_str(), O_WRONLY);
    char buf[4096];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
      if (write(out, buf, static_cast<std::size_t>(n)) != n) _exit(1);
    }
    _exit(0);
  }
  Run stream = IngestWith(tmp, fifo, 4, 1000, "stream");
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(stream.report.edges == file.report.edges);
  CHECK(stream.columns == file.columns);
}

TEST_CASE("parallel ingest: line numbers of bad lines across blocks", "[storage]") {
  test::TempDir tmp;
  std::ostringstream text;
  for (int k = 1; k <= 2000; ++k) text << k % 37 << "\t" << k % 11 << "\n";
  text << "5\t6\t7\t8\n";  // line 2001: four fields
  for (int k = 0; k < 100; ++k) text << "1\t2\n";
  test::WriteFile(tmp.Sub("e.tsv"), text.str());
  for (std::size_t block : {std::size_t{50}, std::size_t{1000}, std::size_t{64} << 20}) {
    ScopedEnv env("PGRAPH_TEST_BLOCK_BYTES", std::to_string(block));
    IngestOptions o;
    o.store_dir = tmp.Sub("store");
    o.edges_path = tmp.Sub("e.tsv");
    o.progress = false;
    o.threads = 3;
    auto r = Ingest(o);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("line 2001: expected 2 fields"));
    o.skip_bad_lines = true;
    auto s = Ingest(o);
    REQUIRE(s.ok());
    CHECK(s.value().bad_lines == 1);
    CHECK(s.value().lines == 2101);
    std::filesystem::remove_all(o.store_dir);
  }
}

TEST_CASE("id table: first-appearance ids for small, large and string keys", "[storage]") {
  std::mt19937_64 rng(3);
  IdTable table;
  std::unordered_map<std::string, NodeId> naive;
  std::vector<std::string> order;
  std::string text;
  std::vector<std::uint64_t> keys;
  std::vector<std::string> names;
  for (int k = 0; k < 200000; ++k) {
    std::string name;
    switch (rng() % 6) {
      // Values far above the direct array first, then ever smaller ones: entries move from
      // the hash table to the growing direct array.
      case 0: name = std::to_string(rng() % (1ull << 24)); break;
      case 1: name = std::to_string(rng() % (1ull << 50)); break;
      case 2: name = std::to_string(rng() % 5000); break;
      case 3: name = std::to_string(k); break;
      case 4: name = "s" + std::to_string(rng() % 20000); break;
      default: name = "0" + std::to_string(rng() % 100); break;
    }
    names.push_back(name);
    std::uint64_t v;
    if (IdTable::ParseInt(name, &v)) {
      keys.push_back(v);
    } else {
      keys.push_back(IdTable::StringKey(static_cast<std::uint32_t>(text.size()),
                                        static_cast<std::uint32_t>(name.size())));
      text += name;
    }
    if (naive.emplace(name, static_cast<NodeId>(naive.size())).second) order.push_back(name);
  }
  std::vector<NodeId> out(keys.size());
  // In two batches, so the second sees ids interned by the first.
  std::size_t half = keys.size() / 2;
  table.InternKeys(std::span(keys).first(half), text, out.data());
  table.InternKeys(std::span(keys).subspan(half), text, out.data() + half);
  REQUIRE(table.size() == naive.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    REQUIRE(out[i] == naive.at(names[i]));
    REQUIRE(table.Find(names[i]) == out[i]);
    REQUIRE(table.Intern(names[i]) == out[i]);
  }
  for (NodeId id = 0; id < order.size(); ++id) {
    std::string back;
    table.AppendName(id, &back);
    REQUIRE(back == order[id]);
  }
  CHECK(table.Find("99999999999999999") == kInvalidNode);
  for (std::uint64_t v = 0;; ++v) {  // the smallest integer never interned
    if (naive.count(std::to_string(v))) continue;
    CHECK(table.Find(std::to_string(v)) == kInvalidNode);
    break;
  }
  CHECK(table.size() == naive.size());
}

TEST_CASE("parallel ingest: the integer fast path and the general parser agree", "[storage]") {
  bool weighted = GENERATE(false, true);
  test::TempDir tmp;
  std::mt19937 rng(9);
  std::ostringstream plain, padded;
  for (int k = 0; k < 5000; ++k) {
    std::uint64_t item = rng() % 800, ctx = rng() % (k % 3 == 0 ? 1'000'000'000'000ull : 400);
    std::string w = weighted ? std::to_string(1 + rng() % 4) + ".5" : "";
    plain << item << '\t' << ctx << (weighted ? "\t" + w : "") << "\n";
    // Blanks around the fields send every line through the general parser.
    padded << item << " \t" << ctx << ' ' << (weighted ? "\t " + w : "") << "\n";
  }
  test::WriteFile(tmp.Sub("plain.tsv"), plain.str());
  test::WriteFile(tmp.Sub("padded.tsv"), padded.str());
  Run fast = IngestWith(tmp, tmp.Sub("plain.tsv"), 2, 3000, "fast");
  Run general = IngestWith(tmp, tmp.Sub("padded.tsv"), 2, 3000, "general");
  CHECK(fast.report.edges == general.report.edges);
  CHECK(fast.columns == general.columns);
}
