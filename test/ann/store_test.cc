#include <catch2/catch.hpp>

#include "ann/ann.h"
#include "storage/store.h"
#include "test/ann/ann_test_util.h"
#include "test/ann/store_fixture.h"
#include "test/support/temp_dir.h"

namespace pgraph::ann {
namespace {

using storage::Backend;

std::unique_ptr<storage::Store> OpenReadOnly(const std::string& dir) {
  storage::StoreOptions so;
  so.read_only = true;
  auto s = storage::Store::Open(dir, so);
  REQUIRE(s.ok());
  return std::move(s).value();
}

TEST_CASE("store: bucket columns round-trip through both backends", "[ann][slow]") {
  // 45000 items x 6 tables: lsh.items spans two chunks; embeddings in 4096-row chunks.
  const std::uint64_t n = 45000;
  const std::uint32_t d = 24;
  for (Backend backend : {Backend::kLmdb, Backend::kRocksDb}) {
    for (bool f16 : {false, true}) {
      INFO(storage::BackendName(backend) << (f16 ? " f16" : " f32"));
      test::TempDir tmp;
      const std::string dir = tmp.Sub("store");
      testing::MakeItemStore(tmp, dir, n, backend);
      auto data = testing::Clustered(n, d, 300, 0.7f, 3);
      testing::WriteEmbeddings(dir, data, d, f16, 4096);
      if (f16) data = testing::RoundToHalf(data);

      LshParams p;
      p.tables = 6;
      p.bits = 11;
      p.seed = 77;
      {
        auto store = storage::Store::Open(dir, storage::StoreOptions{});
        REQUIRE(store.ok());
        auto report = BuildStoreIndex(store->get(), p);
        INFO(report.status().ToString());
        REQUIRE(report.ok());
        CHECK(report->items == n);
        CHECK(report->dim == d);
        CHECK(report->stats.buckets > 0);
      }
      auto store = OpenReadOnly(dir);
      auto loaded = LshIndex::Load(*store);
      INFO(loaded.status().ToString());
      REQUIRE(loaded.ok());
      const LshIndex& ix = **loaded;
      CHECK(ix.params().tables == 6);
      CHECK(ix.params().bits == 11);
      CHECK(ix.params().seed == 77);
      CHECK(ix.params().center);
      CHECK(ix.items() == n);

      auto mem_emb = Embeddings::FromFloats(data, d).value();
      auto built = LshIndex::Build(mem_emb, p).value();
      for (std::uint32_t t = 0; t < p.tables; ++t) {
        for (std::uint32_t key = 0; key < (1u << p.bits); ++key) {
          REQUIRE(ix.Bucket(t, key) == built->Bucket(t, key));
        }
      }
      CHECK(ix.Stats().buckets == built->Stats().buckets);

      auto retriever = Retriever::Open(*store);
      REQUIRE(retriever.ok());
      REQUIRE((*retriever)->index() != nullptr);
      CHECK((*retriever)->embeddings().is_f16() == f16);
      Searcher mem_searcher(*built, mem_emb);
      SearchOptions o;
      o.candidates = 500;
      std::vector<float> queries(data.begin(), data.begin() + 40 * d);
      auto from_store = (*retriever)->Search(queries, o, false);
      auto in_memory = mem_searcher.SearchBatch(queries, o);
      REQUIRE(from_store.ok());
      REQUIRE(in_memory.ok());
      CHECK(*from_store == *in_memory);
      auto exact_store = (*retriever)->Search(queries, o, true);
      auto exact_mem = ExactSearch(mem_emb, queries, o.k);
      REQUIRE(exact_store.ok());
      CHECK(*exact_store == *exact_mem);
    }
  }
}

TEST_CASE("store: no embeddings is NotFound", "[ann]") {
  test::TempDir tmp;
  const std::string dir = tmp.Sub("store");
  testing::MakeItemStore(tmp, dir, 20, Backend::kLmdb);
  {
    auto store = storage::Store::Open(dir, storage::StoreOptions{});
    REQUIRE(store.ok());
    auto r = BuildStoreIndex(store->get(), LshParams{});
    CHECK(r.status().IsNotFound());
    CHECK(r.status().message().find("pgraph infer") != std::string::npos);
  }
  auto store = OpenReadOnly(dir);
  CHECK(Retriever::Open(*store).status().IsNotFound());
  CHECK(LshIndex::Load(*store).status().IsNotFound());
}

TEST_CASE("store: a stale or missing index is reported, exact search still works", "[ann]") {
  test::TempDir tmp;
  const std::string dir = tmp.Sub("store");
  const std::uint32_t d = 8;
  testing::MakeItemStore(tmp, dir, 500, Backend::kLmdb);
  auto data = testing::Clustered(500, d, 10, 0.5f, 1);
  testing::WriteEmbeddings(dir, data, d, false, 0);
  std::vector<float> q(data.begin(), data.begin() + d);
  {
    auto store = OpenReadOnly(dir);
    auto r = Retriever::Open(*store);
    REQUIRE(r.ok());
    CHECK((*r)->index() == nullptr);
    CHECK((*r)->index_problem().find("pgraph index") != std::string::npos);
    CHECK((*r)->Search(q, SearchOptions{}, false).status().IsNotFound());
    CHECK((*r)->Search(q, SearchOptions{}, true).ok());
  }
  {
    auto store = storage::Store::Open(dir, storage::StoreOptions{});
    REQUIRE(store.ok());
    REQUIRE(BuildStoreIndex(store->get(), LshParams{}).ok());
  }
  {
    auto store = OpenReadOnly(dir);
    auto r = Retriever::Open(*store);
    REQUIRE(r.ok());
    CHECK((*r)->index() != nullptr);
  }
  testing::WriteEmbeddings(dir, data, d, false, 0);  // new embedding version, old index
  auto store = OpenReadOnly(dir);
  auto r = Retriever::Open(*store);
  REQUIRE(r.ok());
  CHECK((*r)->index() == nullptr);
  CHECK((*r)->index_problem().find("other embeddings") != std::string::npos);
  CHECK((*r)->Search(q, SearchOptions{}, false).status().IsNotFound());
  auto exact = (*r)->Search(q, SearchOptions{}, true);
  REQUIRE(exact.ok());
  CHECK((*exact)[0][0].id == 0);
}

TEST_CASE("store: item queries list the item first, or exclude it", "[ann]") {
  test::TempDir tmp;
  const std::string dir = tmp.Sub("store");
  const std::uint32_t d = 16;
  testing::MakeItemStore(tmp, dir, 3000, Backend::kLmdb);
  auto data = testing::Clustered(3000, d, 100, 0.5f, 2);
  testing::WriteEmbeddings(dir, data, d, false, 0);
  {
    auto store = storage::Store::Open(dir, storage::StoreOptions{});
    REQUIRE(store.ok());
    LshParams p;
    p.bits = 8;
    REQUIRE(BuildStoreIndex(store->get(), p).ok());
  }
  auto store = OpenReadOnly(dir);
  auto r = Retriever::Open(*store).value();
  std::vector<NodeId> items = {0, 17, 2999};
  SearchOptions o;
  o.k = 5;
  o.candidates = 100;
  for (bool exact : {false, true}) {
    auto with = r->SearchItems(items, o, exact, false);
    auto without = r->SearchItems(items, o, exact, true);
    REQUIRE(with.ok());
    REQUIRE(without.ok());
    for (std::size_t i = 0; i < items.size(); ++i) {
      REQUIRE((*with)[i].size() == 5);
      CHECK((*with)[i][0].id == items[i]);
      REQUIRE((*without)[i].size() == 5);
      for (const auto& nb : (*without)[i]) CHECK(nb.id != items[i]);
      // The others are the same neighbours either way.
      CHECK(std::vector<Neighbor>((*with)[i].begin() + 1, (*with)[i].end()) ==
            std::vector<Neighbor>((*without)[i].begin(), (*without)[i].begin() + 4));
    }
  }
  o.k = 1;
  auto only_self = r->SearchItems(items, o, true, false);
  REQUIRE(only_self.ok());
  CHECK((*only_self)[1] == std::vector<Neighbor>{{17, (*only_self)[1][0].score}});
  std::vector<NodeId> bad = {3000};
  CHECK(r->SearchItems(bad, o, true, false).status().IsInvalidArgument());
  o.k = 0;
  CHECK(r->SearchItems(items, o, true, false).status().IsInvalidArgument());
}

TEST_CASE("store: damaged params are Corruption", "[ann]") {
  test::TempDir tmp;
  const std::string dir = tmp.Sub("store");
  testing::MakeItemStore(tmp, dir, 100, Backend::kLmdb);
  auto data = testing::Clustered(100, 4, 3, 0.5f, 2);
  testing::WriteEmbeddings(dir, data, 4, false, 0);
  {
    auto store = storage::Store::Open(dir, storage::StoreOptions{});
    REQUIRE(store.ok());
    LshParams p;
    p.bits = 6;
    REQUIRE(BuildStoreIndex(store->get(), p).ok());
    auto update = (*store)->BeginUpdate();
    REQUIRE(update.ok());
    (*update)->SetMeta(kParamsMetaKey, "format=1 tables=9 bits=6 dim=4 items=100");
    REQUIRE((*update)->Publish().ok());
  }
  auto store = OpenReadOnly(dir);
  auto loaded = LshIndex::Load(*store);
  CHECK(loaded.status().IsCorruption());
  CHECK(Retriever::Open(*store).status().IsCorruption());
}

}  // namespace
}  // namespace pgraph::ann
