// Store integration: embeddings from a column, index save/load, BuildStoreIndex, Retriever.
#include <bit>
#include <chrono>
#include <cstring>

#include "ann/lsh_impl.h"
#include "storage/store.h"

namespace pgraph::ann {
namespace {

using storage::Column;
using storage::ColumnInfo;
using storage::DType;

std::size_t ElementBytes(DType t) {
  switch (t) {
    case DType::kU8: return 1;
    case DType::kF16: return 2;
    case DType::kU32:
    case DType::kF32: return 4;
    case DType::kU64: return 8;
  }
  return 1;
}

// Every chunk of `column`, checked for size, with a pointer aligned for `align`-byte
// elements (a misaligned chunk is copied). Pointers stay valid while `holds` and the
// column's Store live.
Status PinChunks(const Column& column, std::size_t align, std::vector<const std::byte*>* ptrs,
                 std::vector<std::shared_ptr<const void>>* holds, unsigned* shift) {
  const ColumnInfo& info = column.info();
  const std::size_t row_bytes = std::size_t{info.width} * ElementBytes(info.dtype);
  if (info.rows > 0 && (info.rows_per_chunk == 0 || !std::has_single_bit(info.rows_per_chunk))) {
    return Status::Corruption("column " + info.name + ": rows_per_chunk " +
                              std::to_string(info.rows_per_chunk) + " is not a power of two");
  }
  *shift = info.rows_per_chunk ? static_cast<unsigned>(std::countr_zero(info.rows_per_chunk))
                               : 0;
  const std::uint64_t chunks = info.num_chunks();
  ptrs->reserve(chunks);
  for (std::uint64_t c = 0; c < chunks; ++c) {
    PGRAPH_ASSIGN_OR_RETURN(storage::ChunkRef ref, column.ReadChunk(c));
    const std::uint64_t first = c * info.rows_per_chunk;
    const std::uint64_t want = std::min<std::uint64_t>(info.rows_per_chunk, info.rows - first);
    if (ref.bytes.size() != want * row_bytes) {
      return Status::Corruption("column " + info.name + " chunk " + std::to_string(c) + ": " +
                                std::to_string(ref.bytes.size()) + " bytes, expected " +
                                std::to_string(want * row_bytes));
    }
    const std::byte* p = ref.bytes.data();
    if (reinterpret_cast<std::uintptr_t>(p) % align != 0) {
      // Copy into 8-byte-aligned storage (u64 words) so typed reads are well-defined.
      auto copy = std::make_shared<std::vector<std::uint64_t>>((ref.bytes.size() + 7) / 8);
      std::memcpy(copy->data(), p, ref.bytes.size());
      p = reinterpret_cast<const std::byte*>(copy->data());
      holds->push_back(std::move(copy));
    } else if (ref.hold) {
      holds->push_back(std::move(ref.hold));
    }
    ptrs->push_back(p);
  }
  return Status::OK();
}

Result<const Column*> OpenTyped(const storage::Store& store, const char* name, DType dtype,
                                std::uint32_t width, std::uint64_t rows) {
  auto col = store.OpenColumn(name);
  if (!col.ok()) {
    return Status::Corruption(std::string("lsh index: column ") + name + " missing: " +
                              col.status().message());
  }
  const ColumnInfo& info = (*col)->info();
  if (info.dtype != dtype || info.width != width || info.rows != rows) {
    return Status::Corruption(std::string("lsh index: column ") + name + " is " +
                              storage::DTypeName(info.dtype) + " x" +
                              std::to_string(info.width) + ", " + std::to_string(info.rows) +
                              " rows; expected " + storage::DTypeName(dtype) + " x" +
                              std::to_string(width) + ", " + std::to_string(rows) + " rows");
  }
  return *col;
}

template <typename T>
Status ReadAll(const Column& col, std::vector<T>* out) {
  out->resize(col.info().rows * col.info().width);
  return col.ReadRows(0, col.info().rows, std::as_writable_bytes(std::span<T>(*out)));
}

template <typename T>
Status WriteColumn(storage::Update* update, const char* name, DType dtype, std::uint32_t width,
                   std::span<const T> values) {
  storage::ColumnSpec spec;
  spec.name = name;
  spec.dtype = dtype;
  spec.width = width;
  spec.codec = static_cast<int>(storage::Codec::kNone);  // raw: zero-copy under LMDB
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * w, update->AddColumn(spec));
  return w->AppendValues(values);
}

}  // namespace

// ---- Embeddings ------------------------------------------------------------------------

Result<Embeddings> Embeddings::FromColumn(const storage::Column& column) {
  const ColumnInfo& info = column.info();
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16) {
    return Status::InvalidArgument("embeddings: column " + info.name + " is " +
                                   storage::DTypeName(info.dtype) + ", expected f32 or f16");
  }
  if (info.width == 0) return Status::InvalidArgument("embeddings: column " + info.name +
                                                      " has width 0");
  Embeddings e;
  e.rows_ = info.rows;
  e.dim_ = info.width;
  e.half_ = info.dtype == DType::kF16;
  e.row_bytes_ = std::size_t{info.width} * ElementBytes(info.dtype);
  unsigned shift = 0;
  PGRAPH_RETURN_IF_ERROR(
      PinChunks(column, ElementBytes(info.dtype), &e.chunks_, &e.holds_, &shift));
  e.shift_ = shift;
  e.mask_ = (std::uint64_t{1} << shift) - 1;
  if (e.chunks_.empty()) {  // no rows: keep RowPtr well-defined for callers that check rows
    e.shift_ = 63;
    e.mask_ = ~0ull >> 1;
  }
  return e;
}

// ---- LshIndex save / load ---------------------------------------------------------------

Status LshIndex::Save(storage::Update* update, std::uint64_t embedding_version) const {
  const Impl& ix = *impl_;
  const std::uint64_t np = std::uint64_t{ix.tables} * ix.bits;
  PGRAPH_RETURN_IF_ERROR(WriteColumn<float>(update, columns::kPlanes, DType::kF32, ix.dim,
                                            std::span<const float>(ix.planes.data(), np * ix.dim)));
  PGRAPH_RETURN_IF_ERROR(
      WriteColumn<float>(update, columns::kCenter, DType::kF32, ix.dim, ix.center));
  PGRAPH_RETURN_IF_ERROR(
      WriteColumn<std::uint64_t>(update, columns::kTableStarts, DType::kU64, 1, ix.table_starts));
  PGRAPH_RETURN_IF_ERROR(
      WriteColumn<std::uint32_t>(update, columns::kBucketKeys, DType::kU32, 1, ix.bucket_keys));
  PGRAPH_RETURN_IF_ERROR(WriteColumn<std::uint64_t>(update, columns::kBucketStarts, DType::kU64,
                                                    1, ix.bucket_starts));
  storage::ColumnSpec spec;
  spec.name = columns::kItems;
  spec.dtype = DType::kU32;
  spec.width = 1;
  spec.codec = static_cast<int>(storage::Codec::kNone);
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * w, update->AddColumn(spec));
  std::vector<std::uint32_t> buf;
  constexpr std::uint64_t kPiece = 1 << 20;
  for (std::uint64_t b = 0; b < ix.ids.size; b += kPiece) {
    const std::uint64_t e = std::min(ix.ids.size, b + kPiece);
    buf.clear();
    ix.ids.ForEach(b, e, [&](std::uint32_t id) { buf.push_back(id); });
    PGRAPH_RETURN_IF_ERROR(w->AppendValues<std::uint32_t>(buf));
  }
  StoredParams sp;
  sp.params = params_;
  sp.dim = ix.dim;
  sp.items = ix.items;
  sp.embedding_version = embedding_version;
  update->SetMeta(kParamsMetaKey, FormatParams(sp));
  return Status::OK();
}

Result<std::unique_ptr<LshIndex>> LshIndex::Load(const storage::Store& store) {
  auto text = store.GetMeta(kParamsMetaKey);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound("store " + store.dir() + " has no LSH index (run `pgraph index`)");
    }
    return text.status();
  }
  auto parsed = ParseParams(*text);
  if (!parsed.ok()) return Status::Corruption(parsed.status().message());
  const StoredParams sp = *parsed;
  if (sp.dim == 0 || sp.items == 0 || sp.items >= kInvalidNode) {
    return Status::Corruption("lsh.params: bad dim or items in '" + *text + "'");
  }
  auto impl = std::make_unique<Impl>();
  Impl& ix = *impl;
  ix.tables = sp.params.tables;
  ix.bits = sp.params.bits;
  ix.dim = sp.dim;
  ix.items = sp.items;
  const std::uint64_t L = ix.tables, n = ix.items;

  PGRAPH_ASSIGN_OR_RETURN(const Column* planes,
                          OpenTyped(store, columns::kPlanes, DType::kF32, ix.dim, L * ix.bits));
  ix.planes.resize(L * ix.bits * ix.dim);
  PGRAPH_RETURN_IF_ERROR(planes->ReadRowsAsFloat(0, L * ix.bits, ix.planes));
  PGRAPH_ASSIGN_OR_RETURN(const Column* center,
                          OpenTyped(store, columns::kCenter, DType::kF32, ix.dim, 1));
  std::vector<float> c(ix.dim);
  PGRAPH_RETURN_IF_ERROR(center->ReadRowsAsFloat(0, 1, c));
  ix.SetCenter(std::move(c));

  PGRAPH_ASSIGN_OR_RETURN(const Column* tstarts,
                          OpenTyped(store, columns::kTableStarts, DType::kU64, 1, L + 1));
  PGRAPH_RETURN_IF_ERROR(ReadAll(*tstarts, &ix.table_starts));
  const std::uint64_t buckets = ix.table_starts.back();
  PGRAPH_ASSIGN_OR_RETURN(const Column* keys,
                          OpenTyped(store, columns::kBucketKeys, DType::kU32, 1, buckets));
  PGRAPH_RETURN_IF_ERROR(ReadAll(*keys, &ix.bucket_keys));
  PGRAPH_ASSIGN_OR_RETURN(const Column* bstarts,
                          OpenTyped(store, columns::kBucketStarts, DType::kU64, 1, buckets + 1));
  PGRAPH_RETURN_IF_ERROR(ReadAll(*bstarts, &ix.bucket_starts));

  // Structure checks: every table's buckets are non-empty, ascending, and cover exactly its
  // n positions; so no lookup can leave the arrays.
  auto bad = [&](const std::string& what) {
    return Status::Corruption("lsh index in " + store.dir() + ": " + what);
  };
  if (ix.table_starts[0] != 0) return bad("table_starts[0] != 0");
  for (std::uint64_t t = 0; t < L; ++t) {
    const std::uint64_t b0 = ix.table_starts[t], b1 = ix.table_starts[t + 1];
    if (b1 <= b0 || b1 > buckets) return bad("table " + std::to_string(t) + " has no buckets");
    if (ix.bucket_starts[b0] != t * n) return bad("table " + std::to_string(t) + " start");
    for (std::uint64_t b = b0; b < b1; ++b) {
      if (ix.bucket_starts[b + 1] <= ix.bucket_starts[b]) return bad("empty bucket");
      if (b > b0 && ix.bucket_keys[b] <= ix.bucket_keys[b - 1]) return bad("unsorted keys");
      if (ix.bits < 32 && (ix.bucket_keys[b] >> ix.bits) != 0) return bad("key too wide");
    }
  }
  if (ix.bucket_starts[buckets] != L * n) return bad("bucket_starts end");

  PGRAPH_ASSIGN_OR_RETURN(const Column* items,
                          OpenTyped(store, columns::kItems, DType::kU32, 1, L * n));
  std::vector<const std::byte*> ptrs;
  unsigned shift = 0;
  PGRAPH_RETURN_IF_ERROR(PinChunks(*items, 4, &ptrs, &ix.ids.holds, &shift));
  for (const std::byte* p : ptrs) ix.ids.chunks.push_back(reinterpret_cast<const std::uint32_t*>(p));
  ix.ids.shift = shift;
  ix.ids.mask = (std::uint64_t{1} << shift) - 1;
  ix.ids.size = L * n;
  bool in_range = true;
  ix.ids.ForEach(0, L * n, [&](std::uint32_t id) { in_range &= id < n; });
  if (!in_range) return bad("item id out of range");
  ix.BuildDirectory();

  auto index = std::unique_ptr<LshIndex>(new LshIndex(std::move(impl)));
  index->params_ = sp.params;
  index->embedding_version_ = sp.embedding_version;
  return index;
}

// ---- BuildStoreIndex ----------------------------------------------------------------------

Result<IndexReport> BuildStoreIndex(storage::Store* store, const LshParams& params) {
  const auto start = std::chrono::steady_clock::now();
  PGRAPH_RETURN_IF_ERROR(CheckParams(params));
  auto col = store->OpenColumn(storage::columns::kEmbedding);
  if (!col.ok()) {
    if (col.status().IsNotFound()) {
      return Status::NotFound("store " + store->dir() +
                              " has no item embeddings (column 'embedding'): run `pgraph infer`");
    }
    return col.status();
  }
  PGRAPH_ASSIGN_OR_RETURN(Embeddings emb, Embeddings::FromColumn(**col));
  PGRAPH_ASSIGN_OR_RETURN(std::unique_ptr<LshIndex> index, LshIndex::Build(emb, params));
  PGRAPH_ASSIGN_OR_RETURN(std::unique_ptr<storage::Update> update, store->BeginUpdate());
  PGRAPH_RETURN_IF_ERROR(index->Save(update.get(), (*col)->info().version));
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  IndexReport r;
  r.params = index->params();
  r.items = emb.rows();
  r.dim = emb.dim();
  r.stats = index->Stats();
  const std::uint64_t L = r.params.tables;
  r.index_bytes = L * r.params.bits * emb.dim() * 4 + emb.dim() * 4 + (L + 1) * 8 +
                  r.stats.buckets * 12 + 8 + L * emb.rows() * 4;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// ---- Retriever ------------------------------------------------------------------------------

Retriever::~Retriever() = default;

Result<std::unique_ptr<Retriever>> Retriever::Open(const storage::Store& store) {
  auto col = store.OpenColumn(storage::columns::kEmbedding);
  if (!col.ok()) {
    if (col.status().IsNotFound()) {
      return Status::NotFound("store " + store.dir() +
                              " has no item embeddings (column 'embedding'): run `pgraph infer`");
    }
    return col.status();
  }
  auto r = std::unique_ptr<Retriever>(new Retriever());
  PGRAPH_ASSIGN_OR_RETURN(r->embeddings_, Embeddings::FromColumn(**col));
  auto index = LshIndex::Load(store);
  if (!index.ok()) {
    if (!index.status().IsNotFound()) return index.status();
    r->index_problem_ = index.status().message();
    return r;
  }
  const LshIndex& ix = **index;
  const std::uint64_t version = (*col)->info().version;
  if (ix.embedding_version() != version || ix.items() != r->embeddings_.rows() ||
      ix.dim() != r->embeddings_.dim()) {
    r->index_problem_ = "the LSH index of " + store.dir() +
                        " was built for other embeddings (embedding version " +
                        std::to_string(ix.embedding_version()) + ", now " +
                        std::to_string(version) + "): run `pgraph index` again";
    return r;
  }
  r->index_ = std::move(index).value();
  r->searcher_ = std::make_unique<Searcher>(*r->index_, r->embeddings_);
  return r;
}

Result<std::vector<std::vector<Neighbor>>> Retriever::Search(std::span<const float> queries,
                                                             const SearchOptions& options,
                                                             bool exact) const {
  if (options.k < 1) return Status::InvalidArgument("k must be >= 1");
  if (exact) return ExactSearch(embeddings_, queries, options.k);
  if (!searcher_) return Status::NotFound(index_problem_);
  return searcher_->SearchBatch(queries, options);
}

Result<std::vector<std::vector<Neighbor>>> Retriever::SearchItems(std::span<const NodeId> items,
                                                                  const SearchOptions& options,
                                                                  bool exact,
                                                                  bool exclude_self) const {
  if (options.k < 1) return Status::InvalidArgument("k must be >= 1");
  if (!exact && !searcher_) return Status::NotFound(index_problem_);
  const std::uint32_t d = embeddings_.dim();
  std::vector<float> queries(items.size() * d);
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i] >= embeddings_.rows()) {
      return Status::InvalidArgument("item " + std::to_string(items[i]) + " out of range (" +
                                     std::to_string(embeddings_.rows()) + " items)");
    }
    embeddings_.CopyRow(items[i], std::span<float>(queries).subspan(i * d, d));
  }
  SearchOptions o = options;
  if (!exclude_self) o.k = options.k - 1;  // the item itself takes the first place
  std::vector<std::vector<Neighbor>> out(items.size());
  if (o.k > 0) {
    if (exact) {
      PGRAPH_ASSIGN_OR_RETURN(out, ExactSearch(embeddings_, queries, o.k, items));
    } else {
      PGRAPH_ASSIGN_OR_RETURN(out, searcher_->SearchBatch(queries, o, items));
    }
  }
  if (!exclude_self) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const float self = embeddings_.Dot(std::span<const float>(queries).subspan(i * d, d),
                                         items[i]);
      out[i].insert(out[i].begin(), Neighbor{items[i], self});
    }
  }
  return out;
}

}  // namespace pgraph::ann
