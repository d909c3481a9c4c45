#pragma once
// Helpers for walker tests: stores built from small TSV edge lists (through ingest) or
// directly from CSR arrays (for shapes ingest cannot produce, such as items without edges).

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storage/store.h"
#include "test/support/temp_dir.h"
#include "walker/walker.h"

namespace pgraph::walker::testing {

// A store in its own temp dir, opened writable, with its WalkGraph.
struct TestStore {
  test::TempDir tmp;
  std::string dir;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<WalkGraph> graph;
  std::unique_ptr<storage::IdMap> ids;  // null for CSR-built stores

  NodeId Id(const std::string& name) const {
    auto r = ids->Find(name);
    REQUIRE(r.ok());
    return r.value();
  }
  std::string Name(NodeId id) const { return ids->Name(id).value(); }
  void Reopen() {
    graph.reset();
    ids.reset();
    store.reset();
    auto s = storage::Store::Open(dir, storage::StoreOptions{});
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto g = WalkGraph::Open(*store);
    REQUIRE(g.ok());
    graph = std::move(g).value();
    if (store->HasColumn(storage::columns::kItemIdIndex)) {
      auto m = storage::IdMap::Open(*store, NodeKind::kItem);
      REQUIRE(m.ok());
      ids = std::move(m).value();
    }
  }
};

// `edges`: "item<TAB>context" lines. Codec none keeps the adjacency zero-copy.
inline std::unique_ptr<TestStore> StoreFromEdges(const std::string& edges,
                                                 storage::Codec codec = storage::Codec::kZstd) {
  auto t = std::make_unique<TestStore>();
  test::WriteFile(t->tmp.Sub("edges.tsv"), edges);
  t->dir = t->tmp.Sub("store");
  storage::IngestOptions o;
  o.store_dir = t->dir;
  o.edges_path = t->tmp.Sub("edges.tsv");
  o.header = 0;
  o.delimiter = '\t';
  o.progress = false;
  o.threads = 1;
  o.store.codec = codec;
  auto r = storage::Ingest(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  t->Reopen();
  return t;
}

// A store holding only the adjacency, from item -> contexts lists (context ids < contexts).
inline std::unique_ptr<TestStore> StoreFromLists(const std::vector<std::vector<NodeId>>& item_ctx,
                                                 std::uint64_t contexts) {
  auto t = std::make_unique<TestStore>();
  t->dir = t->tmp.Sub("store");
  std::vector<std::uint64_t> ioff{0}, coff(contexts + 1, 0);
  std::vector<NodeId> itgt;
  for (const auto& l : item_ctx) {
    for (NodeId c : l) {
      itgt.push_back(c);
      ++coff[c + 1];
    }
    ioff.push_back(itgt.size());
  }
  for (std::uint64_t c = 0; c < contexts; ++c) coff[c + 1] += coff[c];
  std::vector<NodeId> ctgt(itgt.size());
  std::vector<std::uint64_t> fill(coff.begin(), coff.end() - 1);
  for (NodeId i = 0; i < item_ctx.size(); ++i) {
    for (NodeId c : item_ctx[i]) ctgt[fill[c]++] = i;
  }
  storage::StoreOptions so;
  so.codec = storage::Codec::kNone;
  auto s = storage::Store::Create(t->dir, so, false);
  REQUIRE(s.ok());
  auto store = std::move(s).value();
  auto u = store->BeginUpdate();
  REQUIRE(u.ok());
  auto put = [&](const char* name, storage::DType dt, auto& v) {
    auto w = u.value()->AddColumn(storage::ColumnSpec{name, dt, 1, 0, -1});
    REQUIRE(w.ok());
    using T = typename std::remove_reference_t<decltype(v)>::value_type;
    REQUIRE(w.value()->template AppendValues<T>(v).ok());
  };
  put(storage::columns::kItemOffsets, storage::DType::kU64, ioff);
  put(storage::columns::kItemTargets, storage::DType::kU32, itgt);
  put(storage::columns::kContextOffsets, storage::DType::kU64, coff);
  put(storage::columns::kContextTargets, storage::DType::kU32, ctgt);
  u.value()->SetCount("items", item_ctx.size());
  u.value()->SetCount("contexts", contexts);
  u.value()->SetCount("edges", itgt.size());
  REQUIRE(u.value()->Publish().ok());
  u.value().reset();
  REQUIRE(store->Seal().ok());
  store.reset();
  t->Reopen();
  return t;
}

// Row r of a Neighborhoods result as (neighbour, weight), valid entries only.
inline std::vector<std::pair<NodeId, float>> Row(const Neighborhoods& nb, std::uint64_t r) {
  std::vector<std::pair<NodeId, float>> out;
  for (std::uint32_t j = 0; j < nb.counts[r]; ++j) {
    out.emplace_back(nb.neighbors[r * nb.width + j], nb.weights[r * nb.width + j]);
  }
  return out;
}

}  // namespace pgraph::walker::testing
