// ExactSearch: brute force by blocked matrix product, one bounded heap per query.
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>

#include "ann/ann.h"
#include "ann/kernels.h"
#include "ann/topk.h"

namespace pgraph::ann {
namespace {

// Rows per block: about 128 KiB of f32 rows, so a block stays in L2 while every query of
// a query group streams past it.
std::uint64_t BlockRows(std::uint32_t dim) {
  return std::clamp<std::uint64_t>((128u << 10) / (4ull * dim), 16, 2048);
}
constexpr std::size_t kQueryGroup = 64;

struct Block {
  std::uint64_t first;
  std::uint64_t rows;
};

struct ThreadState {
  std::vector<internal::TopK> heaps;
  std::vector<float> scores;
  std::vector<float> converted;  // f16 rows as f32
};

}  // namespace

Result<std::vector<std::vector<Neighbor>>> ExactSearch(const Embeddings& embeddings,
                                                       std::span<const float> queries,
                                                       std::uint32_t k,
                                                       std::span<const NodeId> exclude) {
  const std::uint32_t d = embeddings.dim();
  if (k < 1) return Status::InvalidArgument("exact search: k must be >= 1");
  if (d == 0) return Status::InvalidArgument("exact search: no embeddings");
  if (queries.size() % d != 0) {
    return Status::InvalidArgument("exact search: query length " +
                                   std::to_string(queries.size()) + " is not a multiple of dim " +
                                   std::to_string(d));
  }
  const std::size_t m = queries.size() / d;
  if (!exclude.empty() && exclude.size() != m) {
    return Status::InvalidArgument("exact search: exclude must hold one id per query");
  }
  std::vector<std::vector<Neighbor>> results(m);
  if (m == 0 || embeddings.rows() == 0) return results;

  // Blocks never straddle a chunk, so each is one contiguous run of rows.
  const std::uint64_t block_rows = BlockRows(d);
  std::vector<Block> blocks;
  for (std::uint64_t r = 0; r < embeddings.rows();) {
    const auto run = embeddings.Contiguous(r, block_rows);
    blocks.push_back({r, run.rows});
    r += run.rows;
  }

  tbb::enumerable_thread_specific<ThreadState> states([&] {
    ThreadState s;
    s.heaps.assign(m, internal::TopK(k));
    s.scores.resize(kQueryGroup * block_rows);
    if (embeddings.is_f16()) s.converted.resize(block_rows * d);
    return s;
  });

  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, blocks.size(), 1),
                    [&](const tbb::blocked_range<std::size_t>& range) {
    ThreadState& st = states.local();
    for (std::size_t b = range.begin(); b != range.end(); ++b) {
      const Block blk = blocks[b];
      const auto run = embeddings.Contiguous(blk.first, blk.rows);
      const float* rows = static_cast<const float*>(run.data);
      if (embeddings.is_f16()) {
        internal::HalfToFloat(static_cast<const std::uint16_t*>(run.data), blk.rows * d,
                              st.converted.data());
        rows = st.converted.data();
      }
      for (std::size_t q0 = 0; q0 < m; q0 += kQueryGroup) {
        const std::size_t qn = std::min(kQueryGroup, m - q0);
        internal::DotBlock(queries.data() + q0 * d, qn, rows, blk.rows, d, st.scores.data());
        for (std::size_t qi = 0; qi < qn; ++qi) {
          internal::TopK& heap = st.heaps[q0 + qi];
          const NodeId skip = exclude.empty() ? kInvalidNode : exclude[q0 + qi];
          const float* s = st.scores.data() + qi * blk.rows;
          for (std::uint64_t j = 0; j < blk.rows; ++j) {
            if (!heap.MayEnter(s[j])) continue;
            const auto id = static_cast<NodeId>(blk.first + j);
            if (id != skip) heap.Push(id, s[j]);
          }
        }
      }
    }
  });

  std::vector<internal::TopK> merged(m, internal::TopK(k));
  for (ThreadState& st : states) {
    for (std::size_t q = 0; q < m; ++q) merged[q].Merge(st.heaps[q]);
  }
  for (std::size_t q = 0; q < m; ++q) results[q] = merged[q].Take();
  return results;
}

}  // namespace pgraph::ann
