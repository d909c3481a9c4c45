#pragma once
// Private to ann/: the in-memory layout of an LshIndex, shared by build, search and I/O.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "ann/ann.h"
#include "storage/blas_runtime.h"

namespace pgraph::ann {

// The item ids of all tables, L * items entries: either owned (after Build) or pinned
// store chunks of a power-of-two size (after Load).
struct ChunkedIds {
  std::vector<const std::uint32_t*> chunks;
  unsigned shift = 63;
  std::uint64_t mask = ~0ull >> 1;
  std::uint64_t size = 0;
  std::vector<std::uint32_t> owned;
  std::vector<std::shared_ptr<const void>> holds;  // pinned store chunks, shared with cache

  std::uint32_t operator[](std::uint64_t i) const { return chunks[i >> shift][i & mask]; }

  // Calls f(id) for positions [begin, end), in order.
  template <typename F>
  void ForEach(std::uint64_t begin, std::uint64_t end, F&& f) const {
    while (begin < end) {
      const std::uint64_t c = begin >> shift;
      const std::uint64_t stop = shift >= 63 ? end : std::min(end, (c + 1) << shift);
      const std::uint32_t* p = chunks[c] + (begin & mask);
      for (std::uint64_t i = 0, n = stop - begin; i < n; ++i) f(p[i]);
      begin = stop;
    }
  }
};

struct LshIndex::Impl {
  std::uint32_t tables = 0, bits = 0, dim = 0;
  std::uint64_t items = 0;
  std::vector<float> planes;   // tables*bits x dim, plane j of table t at row t*bits + j
  std::vector<float> center;   // dim (zeros when centering is off)
  std::vector<float> offsets;  // tables*bits: <plane, center>
  std::vector<float> plane_norms;  // tables*bits: |plane|
  std::vector<std::uint64_t> table_starts;   // tables + 1, into bucket_keys
  std::vector<std::uint32_t> bucket_keys;    // ascending within a table
  std::vector<std::uint64_t> bucket_starts;  // buckets + 1, into ids
  ChunkedIds ids;                            // tables * items
  // With bits <= kDenseBits: per table 2^bits + 1 offsets (relative to the table's first
  // position) so a lookup is one load instead of a binary search. Derived, never stored.
  static constexpr std::uint32_t kDenseBits = 18;
  std::vector<std::uint32_t> dense;

  // Fills `dense` from bucket_keys / bucket_starts (no-op past kDenseBits).
  void BuildDirectory();

  // Positions [first, second) in `ids` of bucket `key` of `table`; empty when absent.
  std::pair<std::uint64_t, std::uint64_t> Find(std::uint32_t table, std::uint32_t key) const {
    if (!dense.empty()) {
      const std::uint32_t* d = dense.data() + std::size_t{table} * ((std::size_t{1} << bits) + 1);
      const std::uint64_t base = std::uint64_t{table} * items;
      return {base + d[key], base + d[key + 1]};
    }
    const auto begin = bucket_keys.begin() + static_cast<std::ptrdiff_t>(table_starts[table]);
    const auto end = bucket_keys.begin() + static_cast<std::ptrdiff_t>(table_starts[table + 1]);
    const auto it = std::lower_bound(begin, end, key);
    if (it == end || *it != key) return {0, 0};
    const auto b = static_cast<std::size_t>(it - bucket_keys.begin());
    return {bucket_starts[b], bucket_starts[b + 1]};
  }

  // Projections of one vector on every hyperplane, relative to the center
  // (tables*bits values into proj), and its signature per table.
  void Hash(const float* v, float* proj, std::uint32_t* sigs) const;

  // Signatures of `count` rows (row-major, dim floats each) in every table: row i of table t
  // into sigs[t * stride + i]. The bits Hash gives each row: with `sgemm` the projections are
  // one BLAS product per block, and a projection within the product's rounding error of its
  // offset is computed again as Hash computes it, so no sign can differ; without, the
  // projections come from DotBlock. `scratch` is reused between calls.
  void Signatures(const float* rows, std::size_t count, storage::SgemmFn sgemm,
                  std::vector<float>& scratch, std::uint32_t* sigs, std::size_t stride) const;

  // Fills planes, center-independent parts; center/offsets are set by the caller.
  void MakePlanes(std::uint64_t seed);
  void SetCenter(std::vector<float> c);
};

// Parses and checks the lsh.params words. InvalidArgument naming the bad word.
struct StoredParams {
  LshParams params;
  std::uint32_t dim = 0;
  std::uint64_t items = 0;
  std::uint64_t embedding_version = 0;
};
Result<StoredParams> ParseParams(const std::string& text);
std::string FormatParams(const StoredParams& p);

Status CheckParams(const LshParams& p);

namespace internal {
// Whether Build hashes through the BLAS when one can be loaded (default true). Tests set
// false to compare with the DotBlock path. Process-wide.
void SetHashWithBlas(bool on);
bool HashWithBlas();
}  // namespace internal

}  // namespace pgraph::ann
