// Tests of the synthetic graph generator (tools/lib/generator.h) and `pgraph generate`.
#include <tbb/global_control.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "test/support/temp_dir.h"
#include "tools/lib/generator.h"

namespace pgraph::tools {
namespace {

using test::ReadFile;
using test::RunCommand;
using test::TempDir;

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    REQUIRE(nl != std::string_view::npos);  // every line ends with '\n'
    out.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::uint64_t ParseU64(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  REQUIRE(ec == std::errc());
  REQUIRE(p == s.data() + s.size());
  return v;
}

// "a<TAB>b" lines as integer pairs.
std::vector<std::pair<std::uint64_t, std::uint64_t>> ReadPairs(const std::string& path) {
  std::string text = ReadFile(path);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (std::string_view line : Lines(text)) {
    std::size_t tab = line.find('\t');
    REQUIRE(tab != std::string_view::npos);
    out.emplace_back(ParseU64(line.substr(0, tab)), ParseU64(line.substr(tab + 1)));
  }
  return out;
}

// features.tsv as rows (checks ids are 0..n-1 in order and each row has `dim` values).
std::vector<std::vector<float>> ReadFeatures(const std::string& path, int dim) {
  std::string text = ReadFile(path);
  std::vector<std::vector<float>> rows;
  for (std::string_view line : Lines(text)) {
    std::size_t tab = line.find('\t');
    REQUIRE(tab != std::string_view::npos);
    REQUIRE(ParseU64(line.substr(0, tab)) == rows.size());
    std::string values(line.substr(tab + 1));
    std::vector<float> row;
    const char* p = values.c_str();
    char* end = nullptr;
    for (;;) {
      float v = std::strtof(p, &end);
      if (end == p) break;
      row.push_back(v);
      p = end;
    }
    REQUIRE(*p == '\0');
    REQUIRE(row.size() == static_cast<std::size_t>(dim));
    rows.push_back(std::move(row));
  }
  return rows;
}

GenerateOptions SmallOptions(const std::string& dir) {
  GenerateOptions o;
  o.out_dir = dir;
  o.items = 2000;
  o.contexts = 1500;
  o.edges = 20000;
  o.dim = 8;
  o.seed = 7;
  return o;
}

GenerateReport MustGenerate(const GenerateOptions& o) {
  Result<GenerateReport> r = Generate(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

const char* kAllFiles[] = {"edges.tsv", "truth.tsv", "features.tsv", "communities.tsv"};

TEST_CASE("generate: same seed gives identical files, any thread count", "[tools]") {
  TempDir a, b, c;
  GenerateOptions o = SmallOptions(a.path());
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    MustGenerate(o);
  }
  o.out_dir = b.path();
  {
    tbb::global_control two(tbb::global_control::max_allowed_parallelism, 2);
    MustGenerate(o);
  }
  for (const char* f : kAllFiles) {
    INFO(f);
    std::string x = ReadFile(a.Sub(f));
    CHECK(!x.empty());
    CHECK(x == ReadFile(b.Sub(f)));
  }
  o.out_dir = c.path();
  o.seed = 8;
  MustGenerate(o);
  CHECK(ReadFile(a.Sub("edges.tsv")) != ReadFile(c.Sub("edges.tsv")));
  CHECK(ReadFile(a.Sub("features.tsv")) != ReadFile(c.Sub("features.tsv")));
  CHECK(ReadFile(a.Sub("truth.tsv")) != ReadFile(c.Sub("truth.tsv")));
}

TEST_CASE("generate: exact edge count, ids in range, distinct edges", "[tools]") {
  TempDir dir;
  GenerateOptions o = SmallOptions(dir.path());
  GenerateReport r = MustGenerate(o);
  CHECK(r.edges_written == o.edges);
  CHECK(r.communities == DefaultCommunities(o.items));
  auto edges = ReadPairs(dir.Sub("edges.tsv"));
  REQUIRE(edges.size() == o.edges);
  std::set<std::pair<std::uint64_t, std::uint64_t>> distinct;
  std::vector<std::uint64_t> context_size(o.contexts, 0);
  std::uint64_t prev_context = 0;
  for (auto [item, context] : edges) {
    REQUIRE(item < o.items);
    REQUIRE(context < o.contexts);
    REQUIRE(context >= prev_context);  // grouped by context
    prev_context = context;
    ++context_size[context];
    distinct.insert({item, context});
  }
  CHECK(distinct.size() == edges.size());
  // Every context has an edge; sizes are heavy-tailed.
  CHECK(*std::min_element(context_size.begin(), context_size.end()) >= 1);
  std::uint64_t largest = *std::max_element(context_size.begin(), context_size.end());
  CHECK(largest == r.largest_context);
  CHECK(largest >= 5 * (o.edges / o.contexts));

  auto communities = ReadPairs(dir.Sub("communities.tsv"));
  REQUIRE(communities.size() == o.items);
  for (std::uint64_t i = 0; i < o.items; ++i) {
    REQUIRE(communities[i].first == i);
    REQUIRE(communities[i].second < r.communities);
  }
  // Equal community sizes (+-1).
  std::vector<std::uint64_t> members(r.communities, 0);
  for (auto [item, c] : communities) ++members[c];
  auto [lo, hi] = std::minmax_element(members.begin(), members.end());
  CHECK(*hi - *lo <= 1);

  // Skewed item popularity: the busiest item has far more edges than the median one.
  std::vector<std::uint64_t> degree(o.items, 0);
  for (auto [item, context] : edges) ++degree[item];
  std::sort(degree.begin(), degree.end());
  CHECK(degree.back() >= 3 * std::max<std::uint64_t>(1, degree[o.items / 2]));
}

TEST_CASE("generate: edge count is exact across shapes", "[tools]") {
  struct Shape {
    std::uint64_t items, contexts, edges, max_context;
  };
  // Sparse, one edge per context, dense (contexts hold most items), a single context.
  Shape shapes[] = {{1000, 100, 1000, 2000}, {500, 300, 300, 2000}, {50, 20, 900, 2000},
                    {100, 1, 100, 2000},     {30, 7, 200, 30},      {1, 3, 3, 5}};
  for (const Shape& s : shapes) {
    TempDir dir;
    GenerateOptions o = SmallOptions(dir.path());
    o.items = s.items;
    o.contexts = s.contexts;
    o.edges = s.edges;
    o.max_context = s.max_context;
    INFO(s.items << " items, " << s.contexts << " contexts, " << s.edges << " edges");
    GenerateReport r = MustGenerate(o);
    CHECK(r.edges_written == s.edges);
    auto edges = ReadPairs(dir.Sub("edges.tsv"));
    CHECK(edges.size() == s.edges);
    std::set<std::pair<std::uint64_t, std::uint64_t>> distinct(edges.begin(), edges.end());
    CHECK(distinct.size() == edges.size());
  }
}

// Share of a context's items that belong to its most common community, averaged over
// contexts with at least 3 edges.
double MeanMajorityShare(const TempDir& dir, std::uint64_t contexts) {
  auto edges = ReadPairs(dir.Sub("edges.tsv"));
  auto communities = ReadPairs(dir.Sub("communities.tsv"));
  std::vector<std::map<std::uint64_t, std::uint64_t>> counts(contexts);
  for (auto [item, context] : edges) ++counts[context][communities[item].second];
  double sum = 0;
  int n = 0;
  for (const auto& c : counts) {
    std::uint64_t total = 0, top = 0;
    for (auto [comm, k] : c) {
      total += k;
      top = std::max(top, k);
    }
    if (total < 3) continue;
    sum += static_cast<double>(top) / static_cast<double>(total);
    ++n;
  }
  REQUIRE(n > 50);
  return sum / n;
}

TEST_CASE("generate: contexts draw mostly from one community", "[tools]") {
  TempDir planted, mixed;
  GenerateOptions o = SmallOptions(planted.path());
  o.items = 20000;  // communities of ~140 items, larger than most contexts
  o.mixing = 0.15;
  MustGenerate(o);
  double share = MeanMajorityShare(planted, o.contexts);
  CHECK(share > 0.75);
  o.out_dir = mixed.path();
  o.mixing = 1.0;  // no structure: the majority share falls to chance level
  MustGenerate(o);
  double chance = MeanMajorityShare(mixed, o.contexts);
  CHECK(chance < 0.5);
  CHECK(share > chance + 0.3);
}

// Where a context's items come from, relative to its majority ("home") community on the
// ring of communities: shares of edges at ring distance 0, 1..related and beyond, plus the
// share of contexts whose near-but-not-home items all come from one community. Over
// contexts of 10-60 edges (large enough to find the home, smaller than a community).
struct RingShares {
  double home = 0, near = 0, far = 0, one_secondary = 0;
};

RingShares MeasureRing(const TempDir& dir, std::uint64_t contexts, std::uint64_t c,
                       std::uint64_t related) {
  auto edges = ReadPairs(dir.Sub("edges.tsv"));
  auto communities = ReadPairs(dir.Sub("communities.tsv"));
  std::vector<std::map<std::uint64_t, std::uint64_t>> counts(contexts);
  for (auto [item, context] : edges) ++counts[context][communities[item].second];
  std::uint64_t home_edges = 0, near_edges = 0, far_edges = 0, total = 0;
  std::uint64_t used = 0, single = 0;
  for (const auto& per : counts) {
    std::uint64_t size = 0, top = 0, home = 0;
    for (auto [comm, k] : per) {
      size += k;
      if (k > top) top = k, home = comm;
    }
    if (size < 10 || size > 60) continue;
    ++used;
    std::set<std::uint64_t> near_communities;
    for (auto [comm, k] : per) {
      std::uint64_t d = comm > home ? comm - home : home - comm;
      d = std::min(d, c - d);
      if (d == 0) {
        home_edges += k;
      } else if (d <= related) {
        near_edges += k;
        near_communities.insert(comm);
      } else {
        far_edges += k;
      }
      total += k;
    }
    if (near_communities.size() == 1) ++single;
  }
  REQUIRE(used > 100);
  RingShares r;
  r.home = static_cast<double>(home_edges) / static_cast<double>(total);
  r.near = static_cast<double>(near_edges) / static_cast<double>(total);
  r.far = static_cast<double>(far_edges) / static_cast<double>(total);
  r.one_secondary = static_cast<double>(single) / static_cast<double>(used);
  return r;
}

TEST_CASE("generate: secondary interests come from one related community", "[tools]") {
  TempDir plain, graded, any;
  GenerateOptions o = SmallOptions(plain.path());
  o.items = 20000;  // 141 communities of ~141 items
  o.mixing = 0.1;
  GenerateReport r = MustGenerate(o);
  const std::uint64_t c = r.communities;
  RingShares base = MeasureRing(plain, o.contexts, c, 2);
  CHECK(base.near < 0.02);  // noise lands near home only by chance (4 of 141 communities)

  o.out_dir = graded.path();
  o.secondary = 0.3;
  o.related = 2;
  MustGenerate(o);
  RingShares g = MeasureRing(graded, o.contexts, c, 2);
  INFO("home " << g.home << " near " << g.near << " far " << g.far << " one "
               << g.one_secondary);
  // The planted 60 / 30 / 10 split: home, the secondary (within 2 of home), noise.
  CHECK(g.home == Approx(0.6).margin(0.05));
  CHECK(g.near == Approx(0.3).margin(0.05));
  CHECK(g.far == Approx(0.1).margin(0.03));
  // One secondary community per context: near items outside home come from one community.
  CHECK(g.one_secondary > 0.9);

  // related = 0: the secondary is any community, so it is rarely near home.
  o.out_dir = any.path();
  o.related = 0;
  MustGenerate(o);
  RingShares a = MeasureRing(any, o.contexts, c, 2);
  CHECK(a.near < 0.05);
  CHECK(a.far == Approx(0.4).margin(0.06));
}

TEST_CASE("generate: secondary 0 ignores related (the default output is unchanged)",
          "[tools]") {
  TempDir a, b;
  GenerateOptions o = SmallOptions(a.path());
  MustGenerate(o);
  o.out_dir = b.path();
  o.related = 7;
  MustGenerate(o);
  for (const char* f : kAllFiles) {
    INFO(f);
    CHECK(ReadFile(a.Sub(f)) == ReadFile(b.Sub(f)));
  }
}

TEST_CASE("generate: truth pairs are held out of the edges", "[tools]") {
  // With one context, the held-out item is absent from edges.tsv and q is present.
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    TempDir dir;
    GenerateOptions o = SmallOptions(dir.path());
    o.items = 300;
    o.contexts = 1;
    o.edges = 40;
    o.holdout = 1.0;
    o.seed = seed;
    MustGenerate(o);
    auto edges = ReadPairs(dir.Sub("edges.tsv"));
    auto truth = ReadPairs(dir.Sub("truth.tsv"));
    REQUIRE(edges.size() == 40);
    REQUIRE(truth.size() == 1);
    auto [q, held] = truth[0];
    std::set<std::uint64_t> written;
    for (auto [item, context] : edges) written.insert(item);
    CHECK(written.count(q) == 1);
    CHECK(written.count(held) == 0);
  }

  // Many contexts: each pair has a context holding q but not i, the count follows
  // --holdout, and most pairs share a community.
  TempDir dir;
  GenerateOptions o = SmallOptions(dir.path());
  o.items = 20000;
  o.holdout = 0.3;
  GenerateReport r = MustGenerate(o);
  auto edges = ReadPairs(dir.Sub("edges.tsv"));
  auto truth = ReadPairs(dir.Sub("truth.tsv"));
  auto communities = ReadPairs(dir.Sub("communities.tsv"));
  CHECK(truth.size() == r.truth_pairs);
  double expected = 0.3 * static_cast<double>(o.contexts);
  CHECK(std::abs(static_cast<double>(truth.size()) - expected) < 5 * std::sqrt(expected));
  std::unordered_map<std::uint64_t, std::unordered_set<std::uint64_t>> items_of;
  for (auto [item, context] : edges) items_of[context].insert(item);
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> contexts_of;
  for (auto [item, context] : edges) contexts_of[item].push_back(context);
  std::size_t same = 0;
  for (auto [q, i] : truth) {
    REQUIRE(q < o.items);
    REQUIRE(i < o.items);
    CHECK(q != i);
    bool found = false;
    for (std::uint64_t c : contexts_of[q]) found = found || items_of[c].count(i) == 0;
    CHECK(found);
    if (communities[q].second == communities[i].second) ++same;
  }
  CHECK(static_cast<double>(same) > 0.6 * static_cast<double>(truth.size()));
}

TEST_CASE("generate: features lie near their community centroid", "[tools]") {
  TempDir dir;
  GenerateOptions o = SmallOptions(dir.path());
  o.items = 3000;
  o.communities = 10;
  o.dim = 16;
  o.feature_noise = 1.5;
  MustGenerate(o);
  auto rows = ReadFeatures(dir.Sub("features.tsv"), o.dim);
  auto communities = ReadPairs(dir.Sub("communities.tsv"));
  REQUIRE(rows.size() == o.items);
  std::vector<std::vector<double>> mean(o.communities, std::vector<double>(o.dim, 0));
  std::vector<double> count(o.communities, 0);
  for (std::uint64_t i = 0; i < o.items; ++i) {
    std::uint64_t c = communities[i].second;
    for (int d = 0; d < o.dim; ++d) mean[c][d] += rows[i][d];
    ++count[c];
  }
  for (std::uint64_t c = 0; c < o.communities; ++c) {
    for (double& v : mean[c]) v /= count[c];
  }
  auto dist2 = [&](std::uint64_t i, std::uint64_t c) {
    double s = 0;
    for (int d = 0; d < o.dim; ++d) s += (rows[i][d] - mean[c][d]) * (rows[i][d] - mean[c][d]);
    return s;
  };
  double own = 0, other = 0;
  std::size_t nearest_own = 0;
  for (std::uint64_t i = 0; i < o.items; ++i) {
    std::uint64_t c = communities[i].second;
    own += dist2(i, c);
    other += dist2(i, (c + 1) % o.communities);
    std::uint64_t best = 0;
    for (std::uint64_t k = 1; k < o.communities; ++k) {
      if (dist2(i, k) < dist2(i, best)) best = k;
    }
    nearest_own += best == c;
  }
  CHECK(own < 0.8 * other);
  // Informative but noisy: well above chance (10%), well below perfect.
  double accuracy = static_cast<double>(nearest_own) / static_cast<double>(o.items);
  CHECK(accuracy > 0.3);
  INFO("nearest-centroid accuracy " << accuracy << ", own/other " << own / other);
  CHECK(accuracy < 0.95);

  // Without noise every feature row is its unit-length centroid.
  TempDir clean;
  o.out_dir = clean.path();
  o.feature_noise = 0;
  MustGenerate(o);
  rows = ReadFeatures(clean.Sub("features.tsv"), o.dim);
  for (const auto& row : rows) {
    double n2 = 0;
    for (float v : row) n2 += double{v} * v;
    REQUIRE(std::abs(std::sqrt(n2) - 1.0) < 1e-4);
  }
}

TEST_CASE("generate: npy features match the tsv ones", "[tools]") {
  TempDir tsv, npy;
  GenerateOptions o = SmallOptions(tsv.path());
  o.items = 333;
  o.dim = 5;
  MustGenerate(o);
  o.out_dir = npy.path();
  o.npy = true;
  // A stale features.tsv from an earlier run is removed.
  test::WriteFile(npy.Sub("features.tsv"), "stale\n");
  GenerateReport r = MustGenerate(o);
  CHECK(!std::filesystem::exists(npy.Sub("features.tsv")));
  CHECK(std::find(r.files.begin(), r.files.end(), "features.npy") != r.files.end());
  CHECK(ReadFile(tsv.Sub("edges.tsv")) == ReadFile(npy.Sub("edges.tsv")));

  std::string data = ReadFile(npy.Sub("features.npy"));
  REQUIRE(data.size() > 10);
  CHECK(data.compare(0, 6, "\x93NUMPY") == 0);
  CHECK(data[6] == 1);
  CHECK(data[7] == 0);
  std::size_t header_len = static_cast<unsigned char>(data[8]) |
                           (static_cast<std::size_t>(static_cast<unsigned char>(data[9])) << 8);
  std::size_t offset = 10 + header_len;
  CHECK(offset % 64 == 0);
  std::string header = data.substr(10, header_len);
  CHECK(header.find("'descr': '<f4'") != std::string::npos);
  CHECK(header.find("'fortran_order': False") != std::string::npos);
  CHECK(header.find("'shape': (333, 5)") != std::string::npos);
  CHECK(header.back() == '\n');
  REQUIRE(data.size() == offset + 333 * 5 * sizeof(float));

  auto rows = ReadFeatures(tsv.Sub("features.tsv"), o.dim);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (int d = 0; d < o.dim; ++d) {
      float v;
      std::memcpy(&v, data.data() + offset + (i * o.dim + d) * sizeof(float), sizeof v);
      REQUIRE(std::abs(v - rows[i][d]) <= 1e-5f * std::max(1.0f, std::abs(v)));
    }
  }
  std::string ids_text = ReadFile(npy.Sub("feature_ids.txt"));
  auto ids = Lines(ids_text);
  REQUIRE(ids.size() == 333);
  for (std::size_t i = 0; i < ids.size(); ++i) REQUIRE(ParseU64(ids[i]) == i);

  // And back: a tsv run removes the npy files.
  o.npy = false;
  MustGenerate(o);
  CHECK(std::filesystem::exists(npy.Sub("features.tsv")));
  CHECK(!std::filesystem::exists(npy.Sub("features.npy")));
  CHECK(!std::filesystem::exists(npy.Sub("feature_ids.txt")));
}

TEST_CASE("generate: bad options are rejected", "[tools]") {
  TempDir dir;
  auto status = [&](auto edit) {
    GenerateOptions o = SmallOptions(dir.Sub("out"));
    edit(o);
    Result<GenerateReport> r = Generate(o);
    return r.ok() ? Status::OK() : r.status();
  };
  CHECK(status([](GenerateOptions& o) { o.items = 0; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.contexts = 0; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.edges = o.contexts - 1; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.edges = o.contexts * o.items + 1; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.dim = 0; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.communities = o.items + 1; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.mixing = 1.5; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.secondary = -0.1; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) {
          o.mixing = 0.5;
          o.secondary = 0.6;
        }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.holdout = -0.1; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.context_skew = 0; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.feature_noise = NAN; }).IsInvalidArgument());
  CHECK(status([](GenerateOptions& o) { o.items = std::uint64_t{1} << 33; }).IsInvalidArgument());
  CHECK(!std::filesystem::exists(dir.Sub("out")));  // nothing created on bad input

  // --out below a regular file cannot be created.
  test::WriteFile(dir.Sub("file"), "x");
  Status s = status([&](GenerateOptions& o) { o.out_dir = dir.Sub("file/sub"); });
  CHECK(s.IsIOError());
  CHECK(s.message().find("file/sub") != std::string::npos);
}

std::string Pgraph(const std::string& args) { return std::string(PGRAPH_BINARY) + " " + args; }

TEST_CASE("generate: the CLI writes the files and reports JSON", "[tools]") {
  TempDir dir;
  std::string out;
  int rc = RunCommand(Pgraph("generate --out " + dir.Sub("g") +
                             " --items 2k --contexts 300 --edges 3000 --dim 4 --seed 3 --json"),
                      &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("\"edges_written\": 3000") != std::string::npos);
  CHECK(out.find("\"items\": 2000") != std::string::npos);
  for (const char* f : kAllFiles) CHECK(std::filesystem::exists(dir.Sub(std::string("g/") + f)));
  CHECK(Lines(ReadFile(dir.Sub("g/edges.tsv"))).size() == 3000);
  // The CLI and the library agree.
  GenerateOptions o;
  o.out_dir = dir.Sub("lib");
  o.items = 2000;
  o.contexts = 300;
  o.edges = 3000;
  o.dim = 4;
  o.seed = 3;
  MustGenerate(o);
  CHECK(ReadFile(dir.Sub("g/edges.tsv")) == ReadFile(dir.Sub("lib/edges.tsv")));
  CHECK(ReadFile(dir.Sub("g/features.tsv")) == ReadFile(dir.Sub("lib/features.tsv")));
}

// Runs `pgraph generate ARGS`; returns the exit code and checks that it printed a message.
int RunBad(const std::string& args) {
  std::string out;
  int rc = RunCommand(Pgraph("generate " + args), &out);
  INFO(args << "\n" << out);
  CHECK(!out.empty());
  return rc;
}

TEST_CASE("generate: the CLI rejects bad arguments", "[tools]") {
  TempDir dir;
  test::WriteFile(dir.Sub("file"), "x");
  const std::string counts = " --items 100 --contexts 10 --edges 100";
  CHECK(RunBad("--out " + dir.Sub("a") + " --items 0 --contexts 10 --edges 100") == 2);
  CHECK(RunBad("--out " + dir.Sub("a") + " --items abc --contexts 10 --edges 100") == 2);
  CHECK(RunBad("--out " + dir.Sub("file/sub") + counts) == 1);  // IOError
  CHECK(!std::filesystem::exists(dir.Sub("a")));
}

// Each pgraph process loads libtorch (~0.5 s), so the longer list is [slow].
TEST_CASE("generate: the CLI rejects more bad arguments", "[tools][slow]") {
  TempDir dir;
  const std::string counts = " --items 100 --contexts 10 --edges 100";
  const std::string out = "--out " + dir.Sub("a");
  CHECK(RunBad(out + " --items 100 --contexts 200 --edges 100") == 2);
  CHECK(RunBad(out + counts + " --dim 0") == 2);
  CHECK(RunBad(out + " --items -5 --contexts 10 --edges 100") == 2);
  CHECK(RunBad(out + " --items 100 --contexts 10 --edges 1.5") == 2);
  CHECK(RunBad(out + counts + " --mixing 2") == 2);
  CHECK(RunBad(out + counts + " --threads -1") == 2);
  CHECK(RunBad(counts) == 2);  // --out missing
  CHECK(!std::filesystem::exists(dir.Sub("a")));
}

}  // namespace
}  // namespace pgraph::tools
