#pragma once
// A small store for the ann tests: n items named "i0".."i{n-1}" (dense ids 0..n-1, built by
// storage::Ingest from a generated edge list) plus an `embedding` column.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "storage/store.h"
#include "test/support/temp_dir.h"

namespace pgraph::ann::testing {

// Half-rounds every value (what an f16 column gives back).
inline std::vector<float> RoundToHalf(std::vector<float> v) {
  for (auto& x : v) x = storage::HalfToFloat(storage::FloatToHalf(x));
  return v;
}

// Writes (or rewrites) the embedding column of the store at `dir`.
inline void WriteEmbeddings(const std::string& dir, const std::vector<float>& data,
                            std::uint32_t d, bool f16, std::uint32_t rows_per_chunk) {
  auto store = storage::Store::Open(dir, storage::StoreOptions{});
  REQUIRE(store.ok());
  auto update = (*store)->BeginUpdate();
  REQUIRE(update.ok());
  storage::ColumnSpec spec;
  spec.name = storage::columns::kEmbedding;
  spec.dtype = f16 ? storage::DType::kF16 : storage::DType::kF32;
  spec.width = d;
  spec.rows_per_chunk = rows_per_chunk;
  auto w = (*update)->AddColumn(spec);
  REQUIRE(w.ok());
  if (f16) {
    std::vector<std::uint16_t> h(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) h[i] = storage::FloatToHalf(data[i]);
    REQUIRE((*w)->AppendValues<std::uint16_t>(h).ok());
  } else {
    REQUIRE((*w)->AppendValues<float>(data).ok());
  }
  REQUIRE((*update)->Publish().ok());
}

// Ingests n items into a new store at `dir` (no embeddings yet).
inline void MakeItemStore(const test::TempDir& tmp, const std::string& dir, std::uint64_t n,
                          storage::Backend backend) {
  std::string edges;
  for (std::uint64_t i = 0; i < n; ++i) {
    edges += "i" + std::to_string(i) + "\tc" + std::to_string(i % 7) + "\n";
  }
  const std::string path = tmp.Sub("edges-" + std::to_string(n) + ".tsv");
  test::WriteFile(path, edges);
  storage::IngestOptions o;
  o.store_dir = dir;
  o.edges_path = path;
  o.header = 0;
  o.store.backend = backend;
  o.progress = false;
  o.threads = 1;
  auto r = storage::Ingest(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->items == n);
}

}  // namespace pgraph::ann::testing
