#pragma once
// The pgraph store: the public contract of the storage library.
//
// A store is a directory holding one key-value database (LMDB by default, or RocksDB) in
// which every piece of data is a named *column*: a table of `rows` rows, each `width`
// elements of one dtype, split into fixed-row chunks. Each chunk is zstd-compressed or raw
// and carries an xxHash64 checksum that is verified before its bytes are used. The
// manifest (FlatBuffers) lists the columns, their metadata and small key/value metadata.
//
// Reading: raw chunks in LMDB are served zero-copy from the memory map; compressed chunks
// (and every RocksDB chunk) are decoded into a shared, bounded LRU ChunkCache whose size is
// the store's memory budget.
//
// Writing is atomic at two levels:
//  - A new store is built in a hidden sibling directory and renamed into place by Seal(),
//    so a failed or killed ingest leaves no store (or the previous one, with overwrite).
//  - Later columns (walks, checkpoints, embeddings) are written through an Update: chunks
//    go in under a fresh version, and Publish() swaps the manifest in one transaction.
//    A killed writer leaves only unreferenced chunks, removed at the next writable open.
// One writing process at a time holds the store (a file lock); any number may read.
//
// Thread safety: a Store and its Columns are safe for concurrent reads from many threads.
// An Update belongs to one thread at a time.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"

namespace pgraph::storage {

enum class Backend { kLmdb, kRocksDb };
enum class Codec { kNone, kZstd };
enum class DType { kU8, kU32, kU64, kF32, kF16 };

std::size_t DTypeSize(DType t);
const char* DTypeName(DType t);
const char* CodecName(Codec c);
const char* BackendName(Backend b);
Result<Backend> ParseBackend(std::string_view s);
Result<Codec> ParseCodec(std::string_view s);

// Parses "512M", "4G", "1048576", "64k" (binary units). InvalidArgument on anything else.
Result<std::uint64_t> ParseByteSize(std::string_view s);
// 1536 -> "1.5 KiB".
std::string FormatBytes(std::uint64_t bytes);

// float <-> IEEE half, round to nearest even.
std::uint16_t FloatToHalf(float f);
float HalfToFloat(std::uint16_t h);

// Well-known column and metadata names written by ingest and read by later stages.
namespace columns {
inline constexpr const char* kItemIdBytes = "item_ids.bytes";       // u8, external ids
inline constexpr const char* kItemIdOffsets = "item_ids.offsets";   // u64, items+1 rows
inline constexpr const char* kItemIdIndex = "item_ids.index";       // u64 x2 (hash, id), sorted
inline constexpr const char* kContextIdBytes = "context_ids.bytes";
inline constexpr const char* kContextIdOffsets = "context_ids.offsets";
inline constexpr const char* kContextIdIndex = "context_ids.index";
inline constexpr const char* kItemOffsets = "item_to_context.offsets";     // u64, items+1
inline constexpr const char* kItemTargets = "item_to_context.targets";     // u32 context ids
inline constexpr const char* kItemWeights = "item_to_context.weights";     // f32, if weighted
inline constexpr const char* kContextOffsets = "context_to_item.offsets";  // u64, contexts+1
inline constexpr const char* kContextTargets = "context_to_item.targets";  // u32 item ids
inline constexpr const char* kContextWeights = "context_to_item.weights";  // f32, if weighted
inline constexpr const char* kFeatures = "features";  // f32 or f16, items x feature_dim
inline constexpr const char* kWalkNeighbors = "walk.neighbors";  // u32 x T, kInvalidNode pad
inline constexpr const char* kWalkWeights = "walk.weights";      // f32 x T, 0 pad, rows sum 1
inline constexpr const char* kTrainPairs = "pairs.train";        // u32 x 2 (q, i)
inline constexpr const char* kHeldOutPairs = "pairs.heldout";    // u32 x 2 (q, i), never trained
inline constexpr const char* kEmbedding = "embedding";           // f32 or f16, items x d
}  // namespace columns

struct StoreOptions {
  Backend backend = Backend::kLmdb;  // used by Create only; Open reads it from the store
  Codec codec = Codec::kZstd;        // default codec for new columns
  int zstd_level = 3;                // 1 (fast) .. 19 (small)
  std::uint64_t memory_budget = 512ull << 20;  // bytes for the chunk cache
  bool read_only = false;            // Open only: no lock, no writes, no clean-up
};

// What a column holds. Immutable once published.
struct ColumnInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::uint32_t width = 1;           // elements per row
  std::uint64_t rows = 0;
  std::uint32_t rows_per_chunk = 0;  // a power of two
  Codec codec = Codec::kNone;
  std::uint64_t raw_bytes = 0;       // rows * width * dtype size
  std::uint64_t stored_bytes = 0;    // sum of stored chunk payloads
  std::uint64_t version = 0;         // distinguishes successive writes of one name
  std::uint64_t num_chunks() const {
    return rows_per_chunk == 0 ? 0 : (rows + rows_per_chunk - 1) / rows_per_chunk;
  }
  std::size_t row_bytes() const { return width * DTypeSize(dtype); }
};

// One chunk's decoded bytes. `bytes` stays valid while this object (or a copy) lives:
// `hold` keeps a cache entry alive, or is empty when the bytes live in LMDB's map, which
// outlives every Column of the Store.
struct ChunkRef {
  std::uint64_t first_row = 0;
  std::uint64_t rows = 0;
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> hold;
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(bytes.data()), bytes.size() / sizeof(T)};
  }
};

class ChunkCache;
class Store;

// A read handle on one published column. Thread-safe. Obtained from Store::OpenColumn and
// valid while the Store lives.
class Column {
 public:
  virtual ~Column() = default;
  virtual const ColumnInfo& info() const = 0;

  // The decoded chunk `chunk`. Corruption (naming column and chunk) when the checksum or
  // the decoded size does not match; IOError from the backend. Cost: at most one KV read
  // and one decompression per cache miss; raw LMDB chunks are verified once, then free.
  virtual Result<ChunkRef> ReadChunk(std::uint64_t chunk) const = 0;

  // Copies rows [first, first+count) into `out` (count * row_bytes bytes, stored dtype).
  // Requires: first + count <= rows.
  Status ReadRows(std::uint64_t first, std::uint64_t count, std::span<std::byte> out) const;

  // As ReadRows, converting f16 or f32 rows to float (`out` holds count * width floats).
  Status ReadRowsAsFloat(std::uint64_t first, std::uint64_t count, std::span<float> out) const;

  // Rows `ids` (any order, repeats allowed) as floats into `out` (ids.size() * width).
  // Touches each chunk once per call, in chunk order.
  Status GatherAsFloat(std::span<const NodeId> ids, std::span<float> out) const;

  // Rows `ids` (any order, repeats allowed) as stored into `out` (ids.size() * row bytes),
  // touching each chunk once per call: reading row by row instead costs one chunk
  // decompression per row once the rows outgrow the chunk cache.
  Status GatherRows(std::span<const NodeId> ids, std::span<std::byte> out) const;

  // Typed single element of a width-1 column. Slow path; use ColumnView for hot loops.
  template <typename T>
  Result<T> Get(std::uint64_t row) const {
    T v{};
    Status s = ReadRows(row, 1, std::as_writable_bytes(std::span<T>(&v, 1)));
    if (!s.ok()) return s;
    return v;
  }
};

// Fast random element access to a column of T (width 1) for hot loops such as random
// walks. Every chunk is decoded and checked once at construction: raw LMDB chunks stay
// zero-copy in the map, others are pinned in memory for the view's life (Make refuses with
// ResourceExhausted when they would not fit in `max_pinned_bytes`).
template <typename T>
class ColumnView {
 public:
  static Result<ColumnView<T>> Make(const Column& column, std::uint64_t max_pinned_bytes);
  ColumnView() = default;
  T operator[](std::uint64_t i) const { return chunks_[i >> shift_][i & mask_]; }
  const T* row_ptr(std::uint64_t i) const { return chunks_[i >> shift_] + (i & mask_); }
  std::uint64_t size() const { return size_; }
  // Elements [first, first+count) when they lie in one chunk (always true for count <= 1),
  // else empty: callers then fall back to operator[].
  std::span<const T> Contiguous(std::uint64_t first, std::uint64_t count) const {
    if (count == 0) return {};
    if ((first >> shift_) != ((first + count - 1) >> shift_)) return {};
    return {row_ptr(first), count};
  }
  std::uint64_t pinned_bytes() const { return pinned_bytes_; }

 private:
  std::vector<const T*> chunks_;
  std::vector<std::shared_ptr<const void>> holds_;
  std::uint64_t size_ = 0, mask_ = 0, pinned_bytes_ = 0;
  unsigned shift_ = 0;
};

// Appends rows to a new column version. Not thread-safe. Nothing is visible to readers
// until the owning Update is published.
class ColumnWriter {
 public:
  virtual ~ColumnWriter() = default;
  virtual const ColumnInfo& info() const = 0;
  // Appends `data` (a whole number of rows in the column's dtype). IOError or
  // ResourceExhausted (disk full) from the backend.
  virtual Status Append(std::span<const std::byte> data) = 0;
  template <typename T>
  Status AppendValues(std::span<const T> values) {
    return Append(std::as_bytes(values));
  }
};

struct ColumnSpec {
  std::string name;
  DType dtype = DType::kU8;
  std::uint32_t width = 1;
  std::uint32_t rows_per_chunk = 0;  // 0: about 1 MiB of raw data per chunk
  int codec = -1;                    // -1: the store's default; else a Codec value
};

// A group of column writes and metadata changes published atomically. Destroying an
// unpublished Update abandons its chunks (they are removed now or at the next open).
class Update {
 public:
  virtual ~Update() = default;
  // A writer for a new version of `spec.name`, replacing the published one on Publish.
  // The pointer is owned by the Update.
  virtual Result<ColumnWriter*> AddColumn(const ColumnSpec& spec) = 0;
  virtual void DropColumn(std::string_view name) = 0;
  virtual void SetMeta(std::string_view key, std::string_view value) = 0;
  virtual void SetCount(std::string_view key, std::uint64_t value) = 0;
  // Flushes pending chunks and swaps the manifest in one transaction. After success the
  // Store's readers see the new columns. IOError / ResourceExhausted leave the previous
  // manifest in force.
  virtual Status Publish() = 0;
};

struct DegreeSummary {
  std::uint64_t min = 0, max = 0, zero = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Starts building a new store that will appear at `dir` on Seal(). InvalidArgument when
  // `dir` exists and `overwrite` is false (checked now and again at Seal).
  static Result<std::unique_ptr<Store>> Create(std::string_view dir, const StoreOptions& options,
                                               bool overwrite);
  // Opens an existing store (backend read from it). NotFound when `dir` holds no store;
  // Corruption when its manifest does not verify; IOError when another process holds the
  // writer lock and read_only is false.
  static Result<std::unique_ptr<Store>> Open(std::string_view dir, const StoreOptions& options);

  // Created stores only: publishes everything, closes the database and renames the build
  // directory to its final name (replacing an old store when overwrite was given). The
  // Store must not be used afterwards except to be destroyed.
  virtual Status Seal() = 0;

  virtual const std::string& dir() const = 0;
  virtual Backend backend() const = 0;
  virtual const StoreOptions& options() const = 0;
  virtual std::uint32_t format_version() const = 0;

  // Named counts (items, contexts, edges, feature_dim, ...); 0 when absent.
  virtual std::uint64_t count(std::string_view key) const = 0;
  std::uint64_t num_items() const { return count("items"); }
  std::uint64_t num_contexts() const { return count("contexts"); }
  std::uint64_t num_edges() const { return count("edges"); }
  std::uint64_t feature_dim() const { return count("feature_dim"); }
  virtual std::map<std::string, std::uint64_t> counts() const = 0;

  // Small string metadata (configs, parameters). NotFound when absent.
  virtual Result<std::string> GetMeta(std::string_view key) const = 0;

  virtual std::vector<ColumnInfo> ListColumns() const = 0;
  virtual bool HasColumn(std::string_view name) const = 0;
  // A reader for the column as published when it was first opened through this Store
  // (or after the last Refresh). NotFound when absent.
  virtual Result<const Column*> OpenColumn(std::string_view name) const = 0;

  // Re-reads the manifest so later OpenColumn calls see newer publications.
  virtual Status Refresh() = 0;

  // Starts an update. Requires: not read_only.
  virtual Result<std::unique_ptr<Update>> BeginUpdate() = 0;

  // Reads and verifies every chunk of every column; Corruption names the first bad one.
  virtual Status Verify() const = 0;

  virtual ChunkCache& cache() const = 0;

 protected:
  Store() = default;
};

// The shared, bounded LRU cache of decoded chunks. Thread-safe. Entries still referenced
// by readers outlive their eviction, but the cache itself never holds more than its budget.
class ChunkCache {
 public:
  explicit ChunkCache(std::uint64_t budget_bytes);
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  using Value = std::shared_ptr<const std::vector<std::byte>>;
  // The cached entry for key, or null.
  Value Lookup(std::uint64_t key);
  // Inserts (or replaces) key; evicts least recently used entries to stay within budget.
  // A value larger than the whole budget is returned but not kept.
  void Insert(std::uint64_t key, Value value);
  std::uint64_t budget() const { return budget_; }
  std::uint64_t used_bytes() const;
  std::uint64_t hits() const;
  std::uint64_t misses() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint64_t budget_;
};

// ---- Graph access --------------------------------------------------------------------

// The bipartite CSR adjacency of a store, both directions. Thread-safe, read-only. Offsets
// and targets are read through ColumnViews: zero-copy for raw LMDB stores, otherwise pinned
// within the memory budget (ResourceExhausted when they do not fit).
class Graph {
 public:
  static Result<std::unique_ptr<Graph>> Open(const Store& store);
  std::uint64_t num_items() const { return num_items_; }
  std::uint64_t num_contexts() const { return num_contexts_; }
  std::uint64_t num_edges() const { return num_edges_; }
  bool weighted() const { return weighted_; }

  std::uint64_t ItemDegree(NodeId item) const {
    return item_offsets_[item + 1] - item_offsets_[item];
  }
  std::uint64_t ContextDegree(NodeId ctx) const {
    return ctx_offsets_[ctx + 1] - ctx_offsets_[ctx];
  }
  // The r-th context of item (r < degree), in ascending id order.
  NodeId ItemNeighbor(NodeId item, std::uint64_t r) const {
    return item_targets_[item_offsets_[item] + r];
  }
  NodeId ContextNeighbor(NodeId ctx, std::uint64_t r) const {
    return ctx_targets_[ctx_offsets_[ctx] + r];
  }
  EdgeIndex ItemEdgeBegin(NodeId item) const { return item_offsets_[item]; }
  EdgeIndex ContextEdgeBegin(NodeId ctx) const { return ctx_offsets_[ctx]; }
  // Appends all neighbours (and weights, 1 when unweighted) to the vectors.
  void ItemNeighbors(NodeId item, std::vector<NodeId>* out,
                     std::vector<float>* weights = nullptr) const;
  void ContextNeighbors(NodeId ctx, std::vector<NodeId>* out,
                        std::vector<float>* weights = nullptr) const;
  DegreeSummary ItemDegrees() const;
  DegreeSummary ContextDegrees() const;

 private:
  Graph() = default;
  std::uint64_t num_items_ = 0, num_contexts_ = 0, num_edges_ = 0;
  bool weighted_ = false;
  ColumnView<std::uint64_t> item_offsets_, ctx_offsets_;
  ColumnView<std::uint32_t> item_targets_, ctx_targets_;
  ColumnView<float> item_weights_, ctx_weights_;
};

// External id <-> dense id for items or contexts. Thread-safe, read-only.
class IdMap {
 public:
  static Result<std::unique_ptr<IdMap>> Open(const Store& store, NodeKind kind);
  std::uint64_t size() const { return size_; }
  // Dense id of external id `name`; NotFound naming it when absent.
  Result<NodeId> Find(std::string_view name) const;
  // External id of dense id. InvalidArgument when out of range.
  Result<std::string> Name(NodeId id) const;

 private:
  IdMap() = default;
  const char* kind_name_ = "item";
  std::uint64_t size_ = 0;
  const Column* bytes_ = nullptr;
  const Column* offsets_ = nullptr;
  const Column* index_ = nullptr;
};

// 64-bit hash used by the id index (xxHash64, seed 0).
std::uint64_t HashId(std::string_view name);

// ---- Ingest --------------------------------------------------------------------------

enum class MissingFeatures { kError, kZero, kMean };

struct IngestOptions {
  std::string store_dir;
  std::string edges_path;       // "-" reads stdin; .zst and .gz are decompressed
  std::string features_path;    // empty: no features; .npy needs feature_ids_path
  std::string feature_ids_path; // one external item id per line, for .npy features
  char delimiter = 0;           // 0: detect tab, comma or space from the first data line
  int header = -1;              // -1: detect; 0: no header line; 1: first data line is a header
  bool overwrite = false;
  bool skip_bad_lines = false;
  bool features_f16 = false;    // store features as float16
  MissingFeatures missing_features = MissingFeatures::kError;
  // Feature rows for items that have no edges add them as isolated (cold-start) items
  // instead of failing as unknown items.
  bool isolated_items = false;
  StoreOptions store;
  int threads = 0;              // 0: all cores
  bool progress = true;         // log lines to stderr
};

struct IngestReport {
  std::uint64_t lines = 0, bad_lines = 0, edges = 0, duplicate_edges = 0;
  std::uint64_t items = 0, contexts = 0, feature_dim = 0, filled_features = 0;
  double seconds = 0;
};

// Builds a store from an edge list (and features). InvalidArgument naming file and line for
// bad input; InvalidArgument when the store exists without overwrite; IOError /
// ResourceExhausted from the file system. On any error no store is left at store_dir (or
// the previous one is untouched).
Result<IngestReport> Ingest(const IngestOptions& options);

}  // namespace pgraph::storage
