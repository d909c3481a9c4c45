#pragma once
// pgraph::ann: related-item retrieval over the stored item embeddings (PinSage 3.5).
//
// Two-level retrieval with random-hyperplane (SimHash) locality-sensitive hashing:
//  - Index: L tables; in table t every item gets a b-bit signature, bit j being the side of
//    hyperplane (t, j) on which the item lies (hyperplanes pass through the mean embedding
//    when `center` is on). Each table is a bucket -> item list, stored CSR-like as columns.
//  - Level one: the query's bucket in every table, plus (multi-probe) up to `probes`
//    buckets at Hamming distance 1 per table, chosen by the query's smallest margins. Each
//    candidate counts in how many tables it collided with the query (0..L).
//  - Level two (Weak-AND): keep candidates that collided in at least theta tables; theta
//    is adaptive (the largest theta that leaves at least `candidates` candidates) unless
//    fixed. The survivors are re-ranked by exact inner product with the embeddings.
// Exact search scans every row with a blocked matrix product and a bounded heap per query.
//
// Similarity is the inner product. Ties in score are broken by ascending item id, so every
// result list is deterministic. Results are sorted best first.
//
// The core (Embeddings, LshIndex, Searcher, ExactSearch) works on plain float spans and
// needs no store; the store integration (LshIndex::Save/Load, Retriever, BuildStoreIndex)
// reads the `embedding` column and writes the `lsh.*` columns and the `lsh.params` meta.
//
// Threading: all const methods are safe to call from many threads at once. Parallel work
// (exact scans, index build, batched searches) uses TBB and honours tbb::global_control.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"

namespace pgraph::storage {
class Column;
class Store;
class Update;
}  // namespace pgraph::storage

namespace pgraph::ann {

// Store names written by the index. Every column is written raw (no zstd) so that LMDB
// serves it zero-copy from the memory map.
namespace columns {
inline constexpr const char* kPlanes = "lsh.planes";              // f32, L*b rows x d
inline constexpr const char* kCenter = "lsh.center";              // f32, 1 row x d (0 if off)
inline constexpr const char* kTableStarts = "lsh.table_starts";   // u64, L+1: first bucket
inline constexpr const char* kBucketKeys = "lsh.bucket_keys";     // u32, a row per non-empty
                                                                  // bucket, ascending per table
inline constexpr const char* kBucketStarts = "lsh.bucket_starts"; // u64, buckets+1: first
                                                                  // position in lsh.items
inline constexpr const char* kItems = "lsh.items";                // u32, L*items: item ids,
                                                                  // per table, per bucket, asc
}  // namespace columns
// Meta key holding the index parameters as "key=value" words, e.g.
// "format=1 tables=24 bits=16 seed=1 center=1 dim=64 items=1000 embedding_version=3".
inline constexpr const char* kParamsMetaKey = "lsh.params";

// One result: an item and its inner product with the query.
struct Neighbor {
  NodeId id = kInvalidNode;
  float score = 0;
  bool operator==(const Neighbor&) const = default;
};

// A read-only matrix of `rows` embeddings of `dim` floats (stored as f32 or f16), either
// borrowed from memory or pinned from a store column. Copyable and cheap to copy (copies
// share the pinned chunks). Thread-safe.
class Embeddings {
 public:
  Embeddings() = default;

  // Borrows `data` (rows x dim, row-major); `data` must outlive this object and its copies.
  // InvalidArgument when dim is 0 or data.size() is not a multiple of dim.
  static Result<Embeddings> FromFloats(std::span<const float> data, std::uint32_t dim);

  // Pins every chunk of an f32 or f16 column (rows = items, width = dim): raw LMDB chunks
  // stay zero-copy in the map, others are decoded once and held outside the cache budget
  // (rows * dim * dtype bytes). The column's Store must outlive this object and its copies.
  // InvalidArgument for another dtype or width 0; Corruption / IOError from the store.
  // Cost: reads and verifies every chunk once.
  static Result<Embeddings> FromColumn(const storage::Column& column);

  std::uint64_t rows() const { return rows_; }
  std::uint32_t dim() const { return dim_; }
  bool is_f16() const { return half_; }

  // Row `row` as floats into out[0, dim). Requires: row < rows(), out.size() >= dim().
  void CopyRow(std::uint64_t row, std::span<float> out) const;
  // <query, row>. Requires: row < rows(), query.size() == dim().
  float Dot(std::span<const float> query, std::uint64_t row) const;
  // scores[i] = <query, row ids[i]>, prefetching ahead. Requires: every id < rows(),
  // scores.size() >= ids.size(), query.size() == dim().
  void Score(std::span<const float> query, std::span<const NodeId> ids,
             std::span<float> scores) const;

  // The longest run of rows [first, first + n) stored contiguously, n <= max_rows: its
  // bytes (n * dim f32 or u16 values). Requires: first < rows(), max_rows > 0.
  struct RowRun {
    const void* data = nullptr;
    std::uint64_t rows = 0;
  };
  RowRun Contiguous(std::uint64_t first, std::uint64_t max_rows) const;

 private:
  const std::byte* RowPtr(std::uint64_t row) const {
    return chunks_[row >> shift_] + (row & mask_) * row_bytes_;
  }
  std::uint64_t rows_ = 0;
  std::uint32_t dim_ = 0;
  bool half_ = false;
  std::size_t row_bytes_ = 0;
  unsigned shift_ = 63;
  std::uint64_t mask_ = ~0ull;
  std::vector<const std::byte*> chunks_;
  std::vector<std::shared_ptr<const void>> holds_;  // shared: cache entries, kept while any
                                                    // copy of the Embeddings lives
};

// Exact top-k by inner product for each of m queries (`queries` is m x dim, row-major),
// scanning all rows in cache-sized blocks (TBB-parallel over row blocks). `exclude` is
// empty or holds one id per query that is left out of that query's results (kInvalidNode
// for none). Returns m lists of min(k, eligible rows) neighbours, best first.
// InvalidArgument when k < 1, the query size is not a multiple of dim, or exclude has the
// wrong size. Cost: m * rows * dim multiply-adds; memory m * k per thread.
Result<std::vector<std::vector<Neighbor>>> ExactSearch(const Embeddings& embeddings,
                                                       std::span<const float> queries,
                                                       std::uint32_t k,
                                                       std::span<const NodeId> exclude = {});

// Index parameters. The defaults were chosen by measurement (docs/BENCHMARKS.md, "## ann",
// 1M x 64 embeddings with planted neighbourhoods): with the default SearchOptions,
// recall@10 0.999 / 0.969 / 0.79 when the 10th neighbour's inner product is 0.88 / 0.81 /
// 0.71, at 35-50x the single-query brute-force rate (more probes or b=14 buy recall for
// speed: 0.99 at ~25-35x on the middle set). More
// tables raise recall, build time and memory (4 bytes per item per table); more bits make
// buckets smaller (faster, lower recall); probes (SearchOptions) win back recall cheaply.
struct LshParams {
  std::uint32_t tables = 32;  // L, 1..255
  std::uint32_t bits = 0;     // b, 1..32; 0: AutoBits(items), 16 for 1M items
  std::uint64_t seed = 1;     // hyperplanes of table t depend only on (seed, t, bits, dim)
  bool center = true;         // hyperplanes through the mean embedding (balances buckets)
};

// The default signature width for n items: round(log2(n)) - 4, clamped to 1..32, so a
// bucket holds about 16 items on average.
std::uint32_t AutoBits(std::uint64_t items);

// Bucket statistics of an index.
struct IndexStats {
  std::uint64_t buckets = 0;     // non-empty buckets over all tables
  std::uint64_t max_bucket = 0;  // items in the largest bucket
  double mean_bucket = 0;        // items per non-empty bucket
};

// The L hash tables over n items. Immutable once built or loaded; thread-safe.
class LshIndex {
 public:
  ~LshIndex();
  LshIndex(const LshIndex&) = delete;
  LshIndex& operator=(const LshIndex&) = delete;

  // Hashes every row of `embeddings` (TBB-parallel; the projections through the process's
  // BLAS when there is one, storage/blas_runtime.h, with OpenBLAS held at one thread per call
  // meanwhile); bits 0 becomes AutoBits(rows) and params() reports the resolved value. An
  // item lands in the buckets Hash gives its vector, whichever path built the index. InvalidArgument when params are out of range or
  // embeddings are empty. Memory: ~8 bytes per item per table while building,
  // 4 bytes per item per table after. Cost: rows * L * b * dim multiply-adds + L sorts.
  static Result<std::unique_ptr<LshIndex>> Build(const Embeddings& embeddings,
                                                 const LshParams& params);

  // Writes the lsh.* columns and the lsh.params meta into `update` (the caller publishes).
  // `embedding_version` is recorded so a later Load can tell a stale index (0: unknown).
  // IOError / ResourceExhausted from the store.
  Status Save(storage::Update* update, std::uint64_t embedding_version) const;

  // Loads the index published in `store`; the lsh.items column is pinned (zero-copy for
  // LMDB), the rest copied. `store` must outlive the index. NotFound when there is no
  // index; Corruption when the columns disagree with the params or with each other.
  // Cost: reads every index chunk once and checks every item id.
  static Result<std::unique_ptr<LshIndex>> Load(const storage::Store& store);

  const LshParams& params() const { return params_; }
  std::uint32_t dim() const { return dim_; }
  std::uint64_t items() const { return items_; }
  // The embedding column version recorded at Save (0 for a built, unsaved index).
  std::uint64_t embedding_version() const { return embedding_version_; }
  IndexStats Stats() const;

  // Signature of `v` in every table into sigs[0, L); its projections (distance to each
  // hyperplane, L*b values) into `projections` when non-empty.
  // Requires: v.size() == dim(), sigs.size() >= L, projections empty or >= L*b.
  void Hash(std::span<const float> v, std::span<std::uint32_t> sigs,
            std::span<float> projections = {}) const;

  // Items in bucket `key` of `table`, ascending (empty when the bucket is). Requires:
  // table < L.
  std::vector<NodeId> Bucket(std::uint32_t table, std::uint32_t key) const;

 private:
  friend class Searcher;
  struct Impl;
  explicit LshIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  LshParams params_;
  std::uint32_t dim_ = 0;
  std::uint64_t items_ = 0;
  std::uint64_t embedding_version_ = 0;
};

// Query-time knobs of the approximate search. Defaults: see LshParams.
struct SearchOptions {
  std::uint32_t k = 10;             // results wanted, >= 1
  std::uint32_t probes = 4;         // extra Hamming-1 buckets per table (capped at bits)
  std::uint32_t theta = 0;          // 0: adaptive; else keep candidates seen in >= theta tables
  std::uint64_t candidates = 4000;  // adaptive theta: the largest theta leaving >= this many
  std::uint64_t max_candidates = 0; // re-rank at most this many (best counts first); 0: 2x
                                    // candidates with adaptive theta, no cap with fixed theta
  NodeId exclude = kInvalidNode;    // an id never returned (e.g. the query item)
};

// What one approximate search did.
struct SearchStats {
  std::uint64_t touched = 0;   // distinct candidates from level one
  std::uint64_t reranked = 0;  // survivors of level two, scored exactly
  std::uint32_t theta = 0;     // theta used
};

// Approximate top-k over an LshIndex, re-ranked with the embeddings it was built from.
// Thread-safe: each thread gets its own scratch (about `items` bytes plus candidate lists).
class Searcher {
 public:
  // Borrows both; they must outlive the Searcher. Requires: index.items() ==
  // embeddings.rows() and index.dim() == embeddings.dim().
  Searcher(const LshIndex& index, const Embeddings& embeddings);
  ~Searcher();
  Searcher(const Searcher&) = delete;
  Searcher& operator=(const Searcher&) = delete;

  // The best min(k, survivors) neighbours of `query`. InvalidArgument when query.size()
  // != dim or k < 1. Cost: L * (1 + probes) bucket scans plus `reranked`
  // dot products.
  Result<std::vector<Neighbor>> Search(std::span<const float> query,
                                       const SearchOptions& options,
                                       SearchStats* stats = nullptr) const;

  // Search for each of m queries (m x dim), TBB-parallel over queries; `exclude` as in
  // ExactSearch (it overrides options.exclude). First error wins.
  Result<std::vector<std::vector<Neighbor>>> SearchBatch(std::span<const float> queries,
                                                         const SearchOptions& options,
                                                         std::span<const NodeId> exclude = {})
      const;

 private:
  struct Scratch;
  struct ScratchPool;
  const LshIndex& index_;
  const Embeddings& embeddings_;
  std::unique_ptr<ScratchPool> scratch_;
};

// ---- Store integration ---------------------------------------------------------------

// What BuildStoreIndex did.
struct IndexReport {
  LshParams params;
  std::uint64_t items = 0;
  std::uint32_t dim = 0;
  IndexStats stats;
  std::uint64_t index_bytes = 0;  // raw bytes of the lsh.* columns
  double seconds = 0;
};

// Builds the LSH index over the store's `embedding` column and publishes it in one Update
// (lsh.* columns + lsh.params). This is what `pgraph infer` calls after publishing the
// embeddings, and what `pgraph index` runs. Requires: the store is open for writing.
// NotFound when there is no embedding column; InvalidArgument for bad params; IOError /
// ResourceExhausted from the store (the previous index, if any, stays in force).
Result<IndexReport> BuildStoreIndex(storage::Store* store, const LshParams& params);

// Retrieval over one store: its embeddings plus its LSH index when present and current.
// Thread-safe; the Store must outlive it.
class Retriever {
 public:
  ~Retriever();
  Retriever(const Retriever&) = delete;
  Retriever& operator=(const Retriever&) = delete;

  // Pins the embedding column and loads the index. NotFound when the store has no
  // embeddings; Corruption from a damaged index. A missing or stale index (built for an
  // older embedding column) is not an error: approximate searches then fail (see below).
  static Result<std::unique_ptr<Retriever>> Open(const storage::Store& store);

  const Embeddings& embeddings() const { return embeddings_; }
  std::uint32_t dim() const { return embeddings_.dim(); }
  // The index, or null when absent or stale.
  const LshIndex* index() const { return index_.get(); }
  // Why index() is null ("" when it is not).
  const std::string& index_problem() const { return index_problem_; }

  // Top-k for m queries (m x dim); exact scans every row, otherwise LSH. InvalidArgument
  // for bad sizes or k < 1; NotFound when !exact and there is no current index.
  Result<std::vector<std::vector<Neighbor>>> Search(std::span<const float> queries,
                                                    const SearchOptions& options,
                                                    bool exact) const;

  // Related items of stored items, queried with their own embeddings. With
  // exclude_self=false each list starts with the item itself (then k-1 others); with true
  // it never contains it (k others). InvalidArgument for an id >= rows.
  Result<std::vector<std::vector<Neighbor>>> SearchItems(std::span<const NodeId> items,
                                                         const SearchOptions& options,
                                                         bool exact, bool exclude_self) const;

 private:
  Retriever() = default;
  Embeddings embeddings_;
  std::unique_ptr<LshIndex> index_;
  std::unique_ptr<Searcher> searcher_;
  std::string index_problem_;
};

}  // namespace pgraph::ann
