#include "infer/pool_kernel.h"

#include <algorithm>

namespace pgraph::infer {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PGRAPH_VECTOR_CLONES \
  __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define PGRAPH_VECTOR_CLONES
#endif

// How many neighbour entries ahead a row is prefetched: enough to cover a DRAM miss at
// ~100 ns with a row's work of ~10-20 ns, few enough to stay in L1.
constexpr std::uint64_t kPrefetchAhead = 8;

inline void PrefetchRow(const float* row, std::uint32_t m) {
  const char* c = reinterpret_cast<const char*>(row);
  for (std::uint32_t off = 0; off < m * sizeof(float); off += 64) __builtin_prefetch(c + off);
}

// The entry e = u * T + t (relative to the block) whose row is prefetched while e - ahead
// is summed.
inline void PrefetchEntry(const PoolInputs& in, std::uint64_t e, std::uint64_t end_e) {
  if (e >= end_e) return;
  const NodeId v = in.neighbors[e];
  if (v != kInvalidNode && v >= in.lo && v < in.hi) {
    PrefetchRow(in.p + static_cast<std::uint64_t>(v - in.lo) * in.m, in.m);
  }
}

PGRAPH_VECTOR_CLONES
void PoolWeighted(const PoolInputs& in, std::uint64_t begin, std::uint64_t end, float* acc,
                  std::uint64_t stride) {
  const std::uint32_t T = in.T, m = in.m;
  const std::uint64_t end_e = end * T;
  for (std::uint64_t e = begin * T; e < std::min(begin * T + kPrefetchAhead, end_e); ++e) {
    PrefetchEntry(in, e, end_e);
  }
  for (std::uint64_t u = begin; u < end; ++u) {
    float* __restrict a = acc + u * stride;
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::uint64_t e = u * T + t;
      PrefetchEntry(in, e + kPrefetchAhead, end_e);
      const NodeId v = in.neighbors[e];
      if (v == kInvalidNode || v < in.lo || v >= in.hi) continue;
      const float* __restrict pv = in.p + static_cast<std::uint64_t>(v - in.lo) * m;
      const float w = in.weights[e];
      for (std::uint32_t i = 0; i < m; ++i) a[i] += w * pv[i];
    }
  }
}

PGRAPH_VECTOR_CLONES
void PoolSum(const PoolInputs& in, std::uint64_t begin, std::uint64_t end, float* acc,
             std::uint64_t stride, float* count) {
  const std::uint32_t T = in.T, m = in.m;
  const std::uint64_t end_e = end * T;
  for (std::uint64_t e = begin * T; e < std::min(begin * T + kPrefetchAhead, end_e); ++e) {
    PrefetchEntry(in, e, end_e);
  }
  for (std::uint64_t u = begin; u < end; ++u) {
    float* __restrict a = acc + u * stride;
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::uint64_t e = u * T + t;
      PrefetchEntry(in, e + kPrefetchAhead, end_e);
      const NodeId v = in.neighbors[e];
      if (v == kInvalidNode || v < in.lo || v >= in.hi) continue;
      const float* __restrict pv = in.p + static_cast<std::uint64_t>(v - in.lo) * m;
      for (std::uint32_t i = 0; i < m; ++i) a[i] += pv[i];
      count[u] += 1;
    }
  }
}

PGRAPH_VECTOR_CLONES
void PoolMax(const PoolInputs& in, std::uint64_t begin, std::uint64_t end, float* acc,
             std::uint64_t stride) {
  const std::uint32_t T = in.T, m = in.m;
  const std::uint64_t end_e = end * T;
  for (std::uint64_t u = begin; u < end; ++u) {
    float* __restrict a = acc + u * stride;
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::uint64_t e = u * T + t;
      PrefetchEntry(in, e + kPrefetchAhead, end_e);
      const NodeId v = in.neighbors[e];
      if (v == kInvalidNode || v < in.lo || v >= in.hi) continue;
      const float* __restrict pv = in.p + static_cast<std::uint64_t>(v - in.lo) * m;
      for (std::uint32_t i = 0; i < m; ++i) a[i] = std::max(a[i], pv[i]);
    }
  }
}

}  // namespace

void PoolNeighbors(const PoolInputs& in, train::Pooling pooling, std::uint64_t begin,
                   std::uint64_t end, float* acc, std::uint64_t stride, float* count) {
  switch (pooling) {
    case train::Pooling::kImportance:
      PoolWeighted(in, begin, end, acc, stride);
      break;
    case train::Pooling::kMean:
      PoolSum(in, begin, end, acc, stride, count);
      break;
    case train::Pooling::kMax:
      PoolMax(in, begin, end, acc, stride);
      break;
  }
}

}  // namespace pgraph::infer
