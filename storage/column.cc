// Column reads (zero-copy or through the chunk cache), column writes (chunked, encoded in
// parallel, written in large batches) and the typed helpers declared in store.h.
#include <tbb/parallel_for.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>

#include "storage/chunk_codec.h"
#include "storage/store_impl.h"

namespace pgraph::storage {

namespace {
void PutBE64(std::string* s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
// Raw bytes of encoded chunks gathered before one backend write.
constexpr std::uint64_t kWriteBatchBytes = 64ull << 20;
}  // namespace

std::string ChunkKey(std::uint64_t version, std::uint64_t chunk) {
  std::string k = "c";
  PutBE64(&k, version);
  PutBE64(&k, chunk);
  return k;
}

std::string ChunkPrefix(std::uint64_t version) {
  std::string k = "c";
  PutBE64(&k, version);
  return k;
}

std::string PendingKey(std::uint64_t version) {
  std::string k = "p";
  PutBE64(&k, version);
  return k;
}

std::uint64_t NewVersion() {
  static std::mt19937_64 rng{std::random_device{}() ^
                             (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::uint64_t v = 0;
  while (v == 0) v = rng();
  return v;
}

// ---- ColumnImpl ------------------------------------------------------------------------

ColumnImpl::ColumnImpl(const KvBackend* kv, ChunkCache* cache, ColumnMeta meta)
    : kv_(kv), cache_(cache), meta_(std::move(meta)) {
  std::uint64_t v = meta_.info.version;
  cache_base_ = XXH64(&v, sizeof v, 0x5047);
  std::uint64_t n = meta_.info.num_chunks();
  zero_copy_ = std::make_unique<std::atomic<const std::byte*>[]>(n);
  for (std::uint64_t i = 0; i < n; ++i) zero_copy_[i].store(nullptr);
}

std::string ColumnImpl::What(std::uint64_t chunk) const {
  return "column '" + meta_.info.name + "' chunk " + std::to_string(chunk);
}

Result<ChunkRef> ColumnImpl::ReadChunk(std::uint64_t chunk) const {
  const ColumnInfo& ci = meta_.info;
  if (chunk >= ci.num_chunks()) {
    return Status::InvalidArgument(What(chunk) + ": out of range (" +
                                   std::to_string(ci.num_chunks()) + " chunks)");
  }
  ChunkRef ref;
  ref.first_row = chunk * ci.rows_per_chunk;
  ref.rows = std::min<std::uint64_t>(ci.rows_per_chunk, ci.rows - ref.first_row);
  std::uint64_t raw_size = ref.rows * ci.row_bytes();
  std::uint64_t expected = meta_.checksums[chunk];

  if (kv_->zero_copy()) {
    if (const std::byte* p = zero_copy_[chunk].load(std::memory_order_acquire)) {
      ref.bytes = {p, raw_size};
      return ref;
    }
  }
  std::uint64_t ckey = cache_base_ ^ (chunk * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
  if (ChunkCache::Value hit = cache_->Lookup(ckey)) {
    ref.bytes = {hit->data(), hit->size()};
    ref.hold = hit;
    return ref;
  }
  std::string key = ChunkKey(ci.version, chunk);
  std::string copy;
  std::span<const std::byte> stored;
  if (kv_->zero_copy()) {
    auto pinned = kv_->GetPinned(key);
    if (!pinned.ok()) return pinned.status().WithContext(What(chunk));
    stored = pinned.value();
  } else {
    Status s = kv_->Get(key, &copy);
    if (!s.ok()) return s.WithContext(What(chunk));
    stored = std::as_bytes(std::span<const char>(copy.data(), copy.size()));
  }
  std::span<const std::byte> payload;
  Codec codec;
  PGRAPH_RETURN_IF_ERROR(CheckChunk(stored, expected, raw_size, What(chunk), &payload, &codec));
  bool aligned = reinterpret_cast<std::uintptr_t>(payload.data()) % 8 == 0;
  if (codec == Codec::kNone && kv_->zero_copy() && aligned) {
    zero_copy_[chunk].store(payload.data(), std::memory_order_release);
    ref.bytes = payload;
    return ref;
  }
  auto decoded = std::make_shared<std::vector<std::byte>>();
  if (codec == Codec::kZstd) {
    PGRAPH_RETURN_IF_ERROR(DecodeZstd(payload, raw_size, What(chunk), decoded.get()));
  } else {
    decoded->assign(payload.begin(), payload.end());
  }
  ChunkCache::Value value = std::move(decoded);
  cache_->Insert(ckey, value);
  ref.bytes = {value->data(), value->size()};
  ref.hold = value;
  return ref;
}

// ---- Column helpers ----------------------------------------------------------------------

Status Column::ReadRows(std::uint64_t first, std::uint64_t count,
                        std::span<std::byte> out) const {
  const ColumnInfo& ci = info();
  if (first + count > ci.rows) {
    return Status::InvalidArgument("column '" + ci.name + "': rows [" + std::to_string(first) +
                                   ", " + std::to_string(first + count) + ") out of range (" +
                                   std::to_string(ci.rows) + " rows)");
  }
  std::size_t rb = ci.row_bytes();
  if (out.size() < count * rb) return Status::InvalidArgument("ReadRows: output too small");
  std::uint64_t row = first, end = first + count;
  std::byte* dst = out.data();
  while (row < end) {
    std::uint64_t chunk = row / ci.rows_per_chunk;
    PGRAPH_ASSIGN_OR_RETURN(ChunkRef ref, ReadChunk(chunk));
    std::uint64_t in_chunk = row - ref.first_row;
    std::uint64_t n = std::min(end - row, ref.rows - in_chunk);
    std::memcpy(dst, ref.bytes.data() + in_chunk * rb, n * rb);
    dst += n * rb;
    row += n;
  }
  return Status::OK();
}

namespace {
void ConvertRow(DType dtype, const std::byte* src, std::size_t elems, float* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, elems * 4);
  } else {
    for (std::size_t i = 0; i < elems; ++i) {
      std::uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = HalfToFloat(h);
    }
  }
}
}  // namespace

Status Column::ReadRowsAsFloat(std::uint64_t first, std::uint64_t count,
                               std::span<float> out) const {
  const ColumnInfo& ci = info();
  if (ci.dtype != DType::kF32 && ci.dtype != DType::kF16) {
    return Status::InvalidArgument("column '" + ci.name + "' is " + DTypeName(ci.dtype) +
                                   ", not a float column");
  }
  if (first + count > ci.rows) {
    return Status::InvalidArgument("column '" + ci.name + "': rows out of range");
  }
  if (out.size() < count * ci.width) return Status::InvalidArgument("ReadRowsAsFloat: out too small");
  std::uint64_t row = first, end = first + count;
  float* dst = out.data();
  while (row < end) {
    PGRAPH_ASSIGN_OR_RETURN(ChunkRef ref, ReadChunk(row / ci.rows_per_chunk));
    std::uint64_t in_chunk = row - ref.first_row;
    std::uint64_t n = std::min(end - row, ref.rows - in_chunk);
    ConvertRow(ci.dtype, ref.bytes.data() + in_chunk * ci.row_bytes(), n * ci.width, dst);
    dst += n * ci.width;
    row += n;
  }
  return Status::OK();
}

namespace {
// Calls visit(chunk_bytes_of_row, position in ids) for every id, each chunk read once, in
// chunk order. InvalidArgument naming the column for an id out of range.
template <typename Visit>
Status ForEachRowByChunk(const Column& column, std::span<const NodeId> ids, Visit visit) {
  const ColumnInfo& ci = column.info();
  std::vector<std::pair<NodeId, std::uint32_t>> order(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= ci.rows) {
      return Status::InvalidArgument("column '" + ci.name + "': row " + std::to_string(ids[i]) +
                                     " out of range");
    }
    order[i] = {ids[i], static_cast<std::uint32_t>(i)};
  }
  std::sort(order.begin(), order.end());
  ChunkRef ref;
  std::uint64_t current = ~0ull;
  for (auto [row, pos] : order) {
    std::uint64_t chunk = row / ci.rows_per_chunk;
    if (chunk != current) {
      PGRAPH_ASSIGN_OR_RETURN(ref, column.ReadChunk(chunk));
      current = chunk;
    }
    visit(ref.bytes.data() + (row - ref.first_row) * ci.row_bytes(), pos);
  }
  return Status::OK();
}
}  // namespace

Status Column::GatherAsFloat(std::span<const NodeId> ids, std::span<float> out) const {
  const ColumnInfo& ci = info();
  if (ci.dtype != DType::kF32 && ci.dtype != DType::kF16) {
    return Status::InvalidArgument("column '" + ci.name + "' is not a float column");
  }
  if (out.size() < ids.size() * ci.width) return Status::InvalidArgument("GatherAsFloat: out too small");
  return ForEachRowByChunk(*this, ids, [&](const std::byte* src, std::uint32_t pos) {
    ConvertRow(ci.dtype, src, ci.width, out.data() + static_cast<std::size_t>(pos) * ci.width);
  });
}

Status Column::GatherRows(std::span<const NodeId> ids, std::span<std::byte> out) const {
  const std::size_t rb = info().row_bytes();
  if (out.size() < ids.size() * rb) return Status::InvalidArgument("GatherRows: out too small");
  return ForEachRowByChunk(*this, ids, [&](const std::byte* src, std::uint32_t pos) {
    std::memcpy(out.data() + static_cast<std::size_t>(pos) * rb, src, rb);
  });
}

template <typename T>
Result<ColumnView<T>> ColumnView<T>::Make(const Column& column, std::uint64_t max_pinned_bytes) {
  const ColumnInfo& ci = column.info();
  if (ci.row_bytes() != sizeof(T) || ci.width != 1) {
    return Status::InvalidArgument("column '" + ci.name + "' has rows of " +
                                   std::to_string(ci.row_bytes()) + " bytes, expected " +
                                   std::to_string(sizeof(T)));
  }
  ColumnView<T> view;
  view.size_ = ci.rows;
  unsigned shift = 0;
  while ((1ull << shift) < ci.rows_per_chunk) ++shift;
  view.shift_ = shift;
  view.mask_ = (1ull << shift) - 1;
  for (std::uint64_t c = 0; c < ci.num_chunks(); ++c) {
    PGRAPH_ASSIGN_OR_RETURN(ChunkRef ref, column.ReadChunk(c));
    if (ref.hold) {
      view.pinned_bytes_ += ref.bytes.size();
      if (view.pinned_bytes_ > max_pinned_bytes) {
        return Status::ResourceExhausted(
            "column '" + ci.name + "' needs " + FormatBytes(ci.raw_bytes) +
            " in memory (compressed or not memory-mapped) but the budget allows " +
            FormatBytes(max_pinned_bytes) + "; raise --memory-budget or ingest with --compression none");
      }
      view.holds_.push_back(ref.hold);
    }
    view.chunks_.push_back(reinterpret_cast<const T*>(ref.bytes.data()));
  }
  return view;
}

template class ColumnView<std::uint32_t>;
template class ColumnView<std::uint64_t>;
template class ColumnView<float>;

// ---- ColumnWriterImpl --------------------------------------------------------------------

ColumnWriterImpl::ColumnWriterImpl(KvBackend* kv, ColumnMeta meta)
    : kv_(kv), meta_(std::move(meta)) {
  chunk_bytes_ = static_cast<std::uint64_t>(meta_.info.rows_per_chunk) * meta_.info.row_bytes();
}

Status ColumnWriterImpl::Append(std::span<const std::byte> data) {
  if (!error_.ok()) return error_;
  if (finished_) return Status::Internal("append after finish to column " + meta_.info.name);
  std::size_t rb = meta_.info.row_bytes();
  if (data.size() % rb != 0) {
    return Status::InvalidArgument("column '" + meta_.info.name + "': append of " +
                                   std::to_string(data.size()) + " bytes is not whole rows of " +
                                   std::to_string(rb));
  }
  meta_.info.rows += data.size() / rb;
  if (pending_.empty() && data.size() >= std::max<std::uint64_t>(kWriteBatchBytes, chunk_bytes_)) {
    // A batch is due at once: its whole chunks are encoded straight from the caller's
    // buffer, without staging (same backend writes as through pending_).
    std::uint64_t consumed = 0;
    error_ = WriteChunks(data, false, &consumed);
    if (!error_.ok()) return error_;
    data = data.subspan(consumed);
  }
  pending_.insert(pending_.end(), data.begin(), data.end());
  if (pending_.size() >= std::max<std::uint64_t>(kWriteBatchBytes, chunk_bytes_)) {
    error_ = FlushChunks(false);
  }
  return error_;
}

Status ColumnWriterImpl::FlushChunks(bool final) {
  std::uint64_t consumed = 0;
  PGRAPH_RETURN_IF_ERROR(WriteChunks(pending_, final, &consumed));
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed));
  return Status::OK();
}

Status ColumnWriterImpl::WriteChunks(std::span<const std::byte> src, bool final,
                                     std::uint64_t* consumed) {
  *consumed = 0;
  std::uint64_t whole = src.size() / chunk_bytes_;
  std::uint64_t n = whole + (final && src.size() % chunk_bytes_ != 0 ? 1 : 0);
  if (n == 0) return Status::OK();
  std::vector<KvOp> ops(n);
  std::vector<Status> errors(n);
  std::uint64_t first_chunk = meta_.checksums.size();
  meta_.checksums.resize(first_chunk + n);
  std::vector<std::uint64_t> sizes(n);
  tbb::parallel_for(std::uint64_t{0}, n, [&](std::uint64_t i) {
    std::uint64_t begin = i * chunk_bytes_;
    std::uint64_t len = std::min<std::uint64_t>(chunk_bytes_, src.size() - begin);
    ops[i].key = ChunkKey(meta_.info.version, first_chunk + i);
    errors[i] = EncodeChunk(src.subspan(begin, len),
                            meta_.info.codec, meta_.zstd_level, &ops[i].value,
                            &meta_.checksums[first_chunk + i], &sizes[i]);
  });
  for (auto& e : errors) PGRAPH_RETURN_IF_ERROR(e);
  for (auto s : sizes) meta_.info.stored_bytes += s;
  if (!wrote_marker_) {
    KvOp marker;
    marker.key = PendingKey(meta_.info.version);
    marker.value = meta_.info.name;
    ops.insert(ops.begin(), std::move(marker));
    wrote_marker_ = true;
  }
  Status s = kv_->Write(ops);
  if (!s.ok()) return s.WithContext("writing column '" + meta_.info.name + "'");
  *consumed = std::min<std::uint64_t>(src.size(), n * chunk_bytes_);
  return Status::OK();
}

Status ColumnWriterImpl::Finish() {
  if (finished_) return error_;
  if (error_.ok()) error_ = FlushChunks(true);
  finished_ = true;
  meta_.info.raw_bytes = meta_.info.rows * meta_.info.row_bytes();
  return error_;
}

}  // namespace pgraph::storage
