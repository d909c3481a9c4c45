// Converters (tools/lib/convert.h): exact output on tiny files in each data set's shape,
// error cases, and the real data sets in ../shared/data (skipped when absent).
#include "tools/lib/convert.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/store.h"
#include "test/support/temp_dir.h"

namespace pgraph::tools {
namespace {

using test::ReadFile;
using test::TempDir;
using test::WriteFile;

std::string Genres(const std::vector<int>& on) {
  std::string s;
  for (int g = 0; g < 19; ++g) {
    s += std::find(on.begin(), on.end(), g) != on.end() ? "|1" : "|0";
  }
  return s;
}

ConvertReport MustConvert(const ConvertOptions& o) {
  auto r = Convert(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

std::size_t CountLines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST_CASE("convert: movielens leave-last-out, by hand", "[tools]") {
  TempDir in, out;
  // user item rating time. User 1's latest is 11 (after 12); user 2's is 13 (after 10);
  // user 3 has one rating and keeps it; user 4's two ratings tie in time: the later line
  // (21) is held out.
  WriteFile(in.Sub("u.data"),
            "1\t10\t5\t100\n1\t11\t3\t300\n1\t12\t4\t200\n2\t10\t2\t50\n2\t13\t1\t60\n"
            "3\t11\t4\t10\n4\t20\t3\t5\n4\t21\t3\t5\n");
  WriteFile(in.Sub("u.item"), "10|Toy Story (1995)|01-Jan-1995||http://x" + Genres({3, 4, 5}) +
                                  "\n" + "11|Heat (1995)|15-Dec-1995||http://x" + Genres({1}) +
                                  "\n" + "12|Old Movie (1975)|01-Jan-1975||http://x" + Genres({}) +
                                  "\n" + "13|unknown|||" + Genres({0}) + "\n" + "20|No Date|||" +
                                  Genres({18}) + "\n");
  auto o = PresetOptions("movielens", in.path(), out.path());
  REQUIRE(o.ok());
  ConvertReport r = MustConvert(*o);
  CHECK(r.split == "leave-last-out");
  CHECK(r.interactions == 8);
  CHECK(r.train_edges == 5);
  CHECK(r.test_rows == 3);
  CHECK(r.pairs == 3);
  CHECK(r.users == 4);
  CHECK(r.items == 4);  // 10 12 11 20 (13 and 21 were only held out)
  CHECK(r.test_items_not_in_train == 2);
  CHECK(r.feature_dim == 21);
  CHECK(r.items_without_metadata == 0);

  CHECK(ReadFile(out.Sub("edges.tsv")) == "10\t1\t5\n12\t1\t4\n10\t2\t2\n11\t3\t4\n20\t4\t3\n");
  CHECK(ReadFile(out.Sub("test.tsv")) == "1\t11\n2\t13\n4\t21\n");
  CHECK(ReadFile(out.Sub("pairs.tsv")) == "12\t11\t1\n10\t13\t2\n20\t21\t4\n");
  // Consecutive training interactions by time; only user 1 has two left.
  CHECK(ReadFile(out.Sub("train_pairs.tsv")) == "10\t12\t1\n");
  CHECK(r.train_pairs == 1);
  // 19 genre flags, year scaled over 1975..1995, year-missing flag.
  CHECK(ReadFile(out.Sub("features.tsv")) ==
        "10\t0 0 0 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0\n"
        "12\t0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        "11\t0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0\n"
        "20\t0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 1\n");
  CHECK(!std::filesystem::exists(out.Sub("edges.tsv.tmp")));

  SECTION("hashed title tokens are unit length and optional") {
    o->items.title_hash_dim = 16;
    ConvertReport h = MustConvert(*o);
    CHECK(h.feature_dim == 37);
    std::string text = ReadFile(out.Sub("features.tsv"));
    std::string first = text.substr(0, text.find('\n'));
    std::vector<float> v;
    const char* p = first.c_str() + first.find('\t') + 1;
    char* end = nullptr;
    for (float x = std::strtof(p, &end); end != p; x = std::strtof(p, &end)) {
      v.push_back(x);
      p = end;
    }
    REQUIRE(v.size() == 37);
    double norm = 0;
    for (int j = 21; j < 37; ++j) norm += v[j] * v[j];
    CHECK(norm == Approx(1.0).epsilon(1e-4));  // "toy", "story"
  }
}

TEST_CASE("convert: lastfm train/test files, no features", "[tools]") {
  TempDir in, out;
  WriteFile(in.Sub("data1.txt"), "7\t100\t993\n7\t101\t12\n8\t100\t5\n");
  WriteFile(in.Sub("test1.txt"), "8\t101\t3\n7\t102\t4\n8\t103\t1\n");
  WriteFile(out.Sub("features.tsv"), "stale\t1\n");  // from an earlier run
  WriteFile(out.Sub("pairs.tsv"), "stale\n");
  auto o = PresetOptions("lastfm-lightgcn", in.path(), out.path());
  REQUIRE(o.ok());
  ConvertReport r = MustConvert(*o);
  CHECK(r.split == "test-file");
  CHECK(r.train_edges == 3);
  CHECK(r.test_rows == 3);
  CHECK(r.pairs == 0);
  CHECK(r.feature_dim == 0);
  CHECK(r.test_items_not_in_train == 2);
  CHECK(ReadFile(out.Sub("edges.tsv")) == "100\t7\t993\n101\t7\t12\n100\t8\t5\n");
  CHECK(ReadFile(out.Sub("test.tsv")) == "8\t101\n8\t103\n7\t102\n");
  CHECK(!std::filesystem::exists(out.Sub("features.tsv")));
  CHECK(!std::filesystem::exists(out.Sub("pairs.tsv")));
  CHECK(!std::filesystem::exists(out.Sub("train_pairs.tsv")));
  o->write_weights = false;
  MustConvert(*o);
  CHECK(ReadFile(out.Sub("edges.tsv")) == "100\t7\n101\t7\n100\t8\n");
}

TEST_CASE("convert: generic tables in other shapes need no code", "[tools]") {
  TempDir in, out;
  // MovieLens-1M-like: user::item::rating::time with a header, metadata with a year column.
  WriteFile(in.Sub("ratings.dat"),
            "user::item::rating::ts\na::x::1::3\na::y::2::1\nb::x::5::9\n"
            "b::z::4::10\n");
  WriteFile(in.Sub("items.csv"), "id,year,kids,drama\nx,1990,1,0\ny,2000,0,1\nz,1995,0,0\n");
  ConvertOptions o;
  o.in_dir = in.path();
  o.out_dir = out.Sub("nested/out");
  o.train = {"ratings.dat", "::", true, 0, 1, 2, 3};
  o.items.path = "items.csv";
  o.items.sep = "comma";
  o.items.header = true;
  o.items.id_col = 0;
  o.items.year_col = 1;
  auto cols = ParseColumnList("2-3");
  REQUIRE(cols.ok());
  o.items.flag_cols = *cols;
  ConvertReport r = MustConvert(o);
  CHECK(r.train_edges == 2);
  // a: y (t=1) then x (t=3) -> x held out after y; b: x then z -> z held out after x.
  CHECK(ReadFile(out.Sub("nested/out/edges.tsv")) == "y\ta\t2\nx\tb\t5\n");
  CHECK(ReadFile(out.Sub("nested/out/test.tsv")) == "a\tx\nb\tz\n");
  CHECK(ReadFile(out.Sub("nested/out/pairs.tsv")) == "y\tx\ta\nx\tz\tb\n");
  // flags (kids, drama), then the year over 1990..2000 and the missing flag.
  CHECK(ReadFile(out.Sub("nested/out/features.tsv")) == "y\t0 1 1 0\nx\t1 0 0 0\n");

  auto list = ParseColumnList("1,3,7-9");
  REQUIRE(list.ok());
  CHECK(*list == std::vector<int>{1, 3, 7, 8, 9});
  CHECK(!ParseColumnList("3-1").ok());
  CHECK(!ParseColumnList("x").ok());
}

TEST_CASE("convert: bad input names the file and line", "[tools]") {
  TempDir in, out;
  WriteFile(in.Sub("u.data"), "1\t10\t5\t100\n1\t11\t3\tnoon\n");
  WriteFile(in.Sub("u.item"), "10|T (1995)|01-Jan-1995||u" + Genres({}) + "\n");
  auto o = PresetOptions("movielens", in.path(), out.path());
  REQUIRE(o.ok());
  auto r = Convert(*o);
  REQUIRE(!r.ok());
  CHECK(r.status().IsInvalidArgument());
  CHECK(r.status().message().find("u.data' line 2") != std::string::npos);
  CHECK(!std::filesystem::exists(out.Sub("edges.tsv")));

  WriteFile(in.Sub("u.data"), "1\t10\n");
  r = Convert(*o);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("expected at least 4 fields") != std::string::npos);

  TempDir empty;
  auto missing = PresetOptions("lastfm-lightgcn", empty.path(), out.path());
  REQUIRE(missing.ok());
  CHECK(Convert(*missing).status().IsNotFound());
  CHECK(PresetOptions("netflix", in.path(), out.path()).status().IsInvalidArgument());
}

// Ingests converted files, as `pgraph ingest` would.
storage::IngestReport MustIngest(const std::string& dir, const std::string& store, bool features) {
  storage::IngestOptions io;
  io.store_dir = store;
  io.edges_path = dir + "/edges.tsv";
  if (features) io.features_path = dir + "/features.tsv";
  io.progress = false;
  io.threads = 1;
  auto r = storage::Ingest(io);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("convert: the real MovieLens 100K and Last.fm files", "[tools]") {
  const std::string data = test::SharedDataDir();
  if (data.empty()) {
    WARN("../shared/data not found: real data set conversion not tested");
    return;
  }
  TempDir out;
  const std::string ml = data + "/movielens-100k";
  if (std::filesystem::exists(ml + "/u.data")) {
    auto o = PresetOptions("movielens", ml, out.Sub("ml"));
    REQUIRE(o.ok());
    ConvertReport r = MustConvert(*o);
    CHECK(r.interactions == 100000);
    CHECK(r.test_rows == 943);  // every user has >= 20 ratings: one held out each
    CHECK(r.pairs == 943);
    CHECK(r.train_edges == 100000 - 943);
    CHECK(r.train_pairs > 90000);
    CHECK(r.users == 943);
    CHECK(r.feature_dim == 21);
    CHECK(r.items_without_metadata == 0);
    CHECK(CountLines(ReadFile(out.Sub("ml/features.tsv"))) == r.items);
    storage::IngestReport ir = MustIngest(out.Sub("ml"), out.Sub("ml-store"), true);
    CHECK(ir.edges == r.train_edges);
    CHECK(ir.items == r.items);
    CHECK(ir.feature_dim == 21);
  } else {
    WARN("movielens-100k not found under " << data);
  }
  const std::string fm = data + "/lastfm-lightgcn";
  if (std::filesystem::exists(fm + "/data1.txt")) {
    auto o = PresetOptions("lastfm-lightgcn", fm, out.Sub("fm"));
    REQUIRE(o.ok());
    ConvertReport r = MustConvert(*o);
    CHECK(r.train_edges == 42135);
    CHECK(r.test_rows == 10533);
    CHECK(r.feature_dim == 0);
    CHECK(!std::filesystem::exists(out.Sub("fm/features.tsv")));
    storage::IngestReport ir = MustIngest(out.Sub("fm"), out.Sub("fm-store"), false);
    CHECK(ir.edges == 42135);
  } else {
    WARN("lastfm-lightgcn not found under " << data);
  }
}

}  // namespace
}  // namespace pgraph::tools
