// Embeddings: the in-memory half (FromFloats, row access). FromColumn is in store_io.cc.
#include <cstring>

#include "ann/ann.h"
#include "ann/kernels.h"

namespace pgraph::ann {

Result<Embeddings> Embeddings::FromFloats(std::span<const float> data, std::uint32_t dim) {
  if (dim == 0) return Status::InvalidArgument("embeddings: dim must be >= 1");
  if (data.size() % dim != 0) {
    return Status::InvalidArgument("embeddings: " + std::to_string(data.size()) +
                                   " floats is not a whole number of rows of " +
                                   std::to_string(dim));
  }
  Embeddings e;
  e.rows_ = data.size() / dim;
  e.dim_ = dim;
  e.half_ = false;
  e.row_bytes_ = std::size_t{dim} * sizeof(float);
  e.shift_ = 63;
  e.mask_ = ~0ull >> 1;
  e.chunks_.push_back(reinterpret_cast<const std::byte*>(data.data()));
  return e;
}

void Embeddings::CopyRow(std::uint64_t row, std::span<float> out) const {
  const std::byte* p = RowPtr(row);
  if (half_) {
    internal::HalfToFloat(reinterpret_cast<const std::uint16_t*>(p), dim_, out.data());
  } else {
    std::memcpy(out.data(), p, row_bytes_);
  }
}

float Embeddings::Dot(std::span<const float> query, std::uint64_t row) const {
  const std::byte* p = RowPtr(row);
  return half_ ? internal::DotHalf(query.data(), reinterpret_cast<const std::uint16_t*>(p), dim_)
               : internal::Dot(query.data(), reinterpret_cast<const float*>(p), dim_);
}

void Embeddings::Score(std::span<const float> query, std::span<const NodeId> ids,
                       std::span<float> scores) const {
  constexpr std::size_t kAhead = 8;
  const std::size_t n = ids.size();
  const std::size_t lines = (row_bytes_ + 63) / 64;
  auto prefetch = [&](std::size_t i) {
    const char* p = reinterpret_cast<const char*>(RowPtr(ids[i]));
    for (std::size_t l = 0; l < lines && l < 8; ++l) __builtin_prefetch(p + 64 * l);
  };
  for (std::size_t i = 0; i < n && i < kAhead; ++i) prefetch(i);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch(i + kAhead);
    scores[i] = Dot(query, ids[i]);
  }
}

Embeddings::RowRun Embeddings::Contiguous(std::uint64_t first, std::uint64_t max_rows) const {
  const std::uint64_t chunk_end =
      shift_ >= 63 ? rows_ : std::min<std::uint64_t>(rows_, ((first >> shift_) + 1) << shift_);
  const std::uint64_t n = std::min<std::uint64_t>(max_rows, chunk_end - first);
  return RowRun{RowPtr(first), n};
}

}  // namespace pgraph::ann
