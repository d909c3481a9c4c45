// Ingest through the library: CSR against a naive adjacency, ids, weights, features, real data.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "storage/store.h"
#include "test/support/temp_dir.h"

using namespace pgraph;
using namespace pgraph::storage;

namespace {

IngestOptions Options(const test::TempDir& tmp, const std::string& edges) {
  IngestOptions o;
  o.store_dir = tmp.Sub("store");
  o.edges_path = edges;
  o.progress = false;
  return o;
}

std::unique_ptr<Store> OpenRead(const std::string& dir) {
  StoreOptions so;
  so.read_only = true;
  auto s = Store::Open(dir, so);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(s).value();
}

}  // namespace

TEST_CASE("CSR in both directions equals a naive adjacency", "[storage]") {
  auto backend = GENERATE(Backend::kLmdb, Backend::kRocksDb);
  auto codec = GENERATE(Codec::kNone, Codec::kZstd);
  test::TempDir tmp;
  std::mt19937 rng(11);
  // String item ids, integer context ids, duplicates, weights.
  std::map<std::string, std::map<std::string, double>> naive;
  std::ostringstream text;
  text << "item,context,weight\n";
  for (int k = 0; k < 20000; ++k) {
    std::string item = "item-" + std::to_string(rng() % 3000);
    std::string ctx = std::to_string(rng() % 700);
    int w = 1 + static_cast<int>(rng() % 5);
    naive[item][ctx] += w;
    text << item << "," << ctx << "," << w << "\n";
    if (k % 5000 == 0) text << "# a comment\n\n";
  }
  test::WriteFile(tmp.Sub("e.csv"), text.str());
  IngestOptions o = Options(tmp, tmp.Sub("e.csv"));
  o.store.backend = backend;
  o.store.codec = codec;
  auto report = Ingest(o);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  CHECK(report.value().items == naive.size());

  auto store = OpenRead(o.store_dir);
  auto graph = Graph::Open(*store);
  REQUIRE(graph.ok());
  auto items = IdMap::Open(*store, NodeKind::kItem).value();
  auto ctxs = IdMap::Open(*store, NodeKind::kContext).value();
  const Graph& g = *graph.value();
  CHECK(g.weighted());
  std::uint64_t edges = 0;
  std::map<std::string, std::map<std::string, double>> reverse;
  for (const auto& [item, row] : naive) {
    edges += row.size();
    NodeId u = items->Find(item).value();
    CHECK(items->Name(u).value() == item);
    std::vector<NodeId> nb;
    std::vector<float> w;
    g.ItemNeighbors(u, &nb, &w);
    REQUIRE(nb.size() == row.size());
    CHECK(std::is_sorted(nb.begin(), nb.end()));
    for (std::size_t k = 0; k < nb.size(); ++k) {
      std::string c = ctxs->Name(nb[k]).value();
      REQUIRE(row.count(c));
      CHECK(w[k] == Approx(row.at(c)));
      reverse[c][item] = row.at(c);
    }
  }
  CHECK(g.num_edges() == edges);
  for (const auto& [ctx, row] : reverse) {
    NodeId c = ctxs->Find(ctx).value();
    std::vector<NodeId> nb;
    g.ContextNeighbors(c, &nb);
    REQUIRE(nb.size() == row.size());
    CHECK(std::is_sorted(nb.begin(), nb.end()));
    for (NodeId u : nb) CHECK(row.count(items->Name(u).value()));
  }
  CHECK(items->Find("item-99999").status().IsNotFound());
  CHECK_THAT(items->Find("item-99999").status().message(), Catch::Contains("item-99999"));
}

TEST_CASE("ids: integers, leading zeros and strings stay distinct", "[storage]") {
  test::TempDir tmp;
  test::WriteFile(tmp.Sub("e.tsv"), "7\tu\n007\tu\nx7\tv\n7\tv\n");
  auto r = Ingest(Options(tmp, tmp.Sub("e.tsv")));
  REQUIRE(r.ok());
  CHECK(r.value().items == 3);
  CHECK(r.value().edges == 4);
  auto store = OpenRead(tmp.Sub("store"));
  auto items = IdMap::Open(*store, NodeKind::kItem).value();
  CHECK(items->Find("7").value() == 0);
  CHECK(items->Find("007").value() == 1);
  CHECK(items->Find("x7").value() == 2);
  CHECK(items->Find("07").status().IsNotFound());
}

TEST_CASE("features are stored per dense item, float32 or float16, with fills", "[storage]") {
  test::TempDir tmp;
  test::WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\nc\ty\n");
  test::WriteFile(tmp.Sub("f.tsv"), "c\t0.5 1.5\na\t-1 2\n");
  IngestOptions o = Options(tmp, tmp.Sub("e.tsv"));
  o.features_path = tmp.Sub("f.tsv");
  CHECK(Ingest(o).status().IsInvalidArgument());  // b has no row
  o.missing_features = MissingFeatures::kMean;
  o.features_f16 = true;
  auto r = Ingest(o);
  REQUIRE(r.ok());
  CHECK(r.value().filled_features == 1);
  auto store = OpenRead(o.store_dir);
  CHECK(store->feature_dim() == 2);
  auto col = store->OpenColumn(columns::kFeatures).value();
  CHECK(col->info().dtype == DType::kF16);
  std::vector<float> f(6);
  REQUIRE(col->ReadRowsAsFloat(0, 3, f).ok());
  CHECK(f == std::vector<float>{-1, 2, -0.25f, 1.75f, 0.5f, 1.5f});  // b = mean of a and c
}

TEST_CASE("isolated items: feature rows without edges, on request", "[storage]") {
  test::TempDir tmp;
  test::WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\n");
  test::WriteFile(tmp.Sub("f.tsv"), "a\t1\nb\t2\ncold\t3\n");
  IngestOptions o = Options(tmp, tmp.Sub("e.tsv"));
  o.features_path = tmp.Sub("f.tsv");
  auto refused = Ingest(o);
  CHECK(refused.status().IsInvalidArgument());
  CHECK_THAT(refused.status().message(), Catch::Contains("unknown item 'cold'"));
  o.isolated_items = true;
  auto r = Ingest(o);
  REQUIRE(r.ok());
  CHECK(r.value().items == 3);
  auto store = OpenRead(o.store_dir);
  auto g = Graph::Open(*store).value();
  NodeId cold = IdMap::Open(*store, NodeKind::kItem).value()->Find("cold").value();
  CHECK(g->ItemDegree(cold) == 0);
  std::vector<float> f(1);
  REQUIRE(store->OpenColumn(columns::kFeatures).value()->ReadRowsAsFloat(cold, 1, f).ok());
  CHECK(f[0] == 3.0f);
}

TEST_CASE("npy features with an id file", "[storage]") {
  test::TempDir tmp;
  test::WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\n");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string npy("\x93NUMPY\x01\x00", 8);
  npy.push_back(static_cast<char>(header.size() & 0xff));
  npy.push_back(static_cast<char>(header.size() >> 8));
  npy += header;
  float vals[6] = {1, 2, 3, 4, 5, 6};
  npy.append(reinterpret_cast<const char*>(vals), sizeof vals);
  test::WriteFile(tmp.Sub("f.npy"), npy);
  test::WriteFile(tmp.Sub("ids.txt"), "b\na\n");
  IngestOptions o = Options(tmp, tmp.Sub("e.tsv"));
  o.features_path = tmp.Sub("f.npy");
  o.feature_ids_path = tmp.Sub("ids.txt");
  auto r = Ingest(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  auto store = OpenRead(o.store_dir);
  std::vector<float> f(6);
  REQUIRE(store->OpenColumn(columns::kFeatures).value()->ReadRowsAsFloat(0, 2, f).ok());
  CHECK(f == std::vector<float>{4, 5, 6, 1, 2, 3});
}

TEST_CASE("a real data set: MovieLens-100k", "[storage]") {
  std::string data = test::SharedDataDir();
  if (data.empty() || !std::filesystem::exists(data + "/movielens-100k/u.data")) {
    WARN("skipped: ../shared/data/movielens-100k is absent");
    return;
  }
  // u.data is user, item, rating, time: reorder to item, context(user), weight(rating).
  std::ifstream in(data + "/movielens-100k/u.data");
  std::ostringstream out;
  std::string u, i, r, t;
  std::set<std::string> users, movies;
  while (in >> u >> i >> r >> t) {
    out << i << "\t" << u << "\t" << r << "\n";
    users.insert(u);
    movies.insert(i);
  }
  test::TempDir tmp;
  test::WriteFile(tmp.Sub("e.tsv"), out.str());
  auto rep = Ingest(Options(tmp, tmp.Sub("e.tsv")));
  REQUIRE(rep.ok());
  CHECK(rep.value().edges == 100000);
  CHECK(rep.value().items == movies.size());
  CHECK(rep.value().contexts == users.size());
  CHECK(movies.size() == 1682);
  CHECK(users.size() == 943);
  auto store = OpenRead(tmp.Sub("store"));
  auto g = Graph::Open(*store).value();
  CHECK(g->ItemDegrees().max >= 500);  // Star Wars is rated by most users
  CHECK(g->ContextDegrees().min >= 20);  // every MovieLens user rated at least 20 movies
}
