#include "infer/pool_kernel.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "infer/infer.h"
#include "storage/huge_pages.h"

namespace pgraph::infer {
namespace {

// ISA levels, which GCC dispatches on from feature flags; "arch=<cpu>" clones go by CPU
// model, and CPUs newer than the compiler (Emerald Rapids here) then run the SSE2 default.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PGRAPH_VECTOR_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
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

// Importance pooling (weights given) or the sums of mean pooling (weights null: w = 1, which
// multiplies exactly, and count[u] counts the neighbours).
PGRAPH_VECTOR_CLONES
void PoolLinear(const PoolInputs& in, const float* weights, std::uint64_t begin,
                std::uint64_t end, float* acc, std::uint64_t stride, float* count) {
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
      const float w = weights != nullptr ? weights[e] : 1.0f;
      for (std::uint32_t i = 0; i < m; ++i) a[i] += w * pv[i];
      if (weights == nullptr) count[u] += 1;
    }
  }
}

// Its own loop, not a template shared with PoolLinear: GCC does not clone templates.
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

// Entries ahead of the summation whose rows the ordered kernel prefetches: further than
// PoolLinear's, since most of its rows are cache hits and go by quickly; the misses among
// them need as much warning.
constexpr std::uint32_t kOrderedAhead = 16;

// Eight floats in one AVX register (two SSE registers in the default clone).
using Float8 = float __attribute__((vector_size(32)));

// The ordered kernel for a width known at compile time (D > 0, a multiple of 8: the pooled
// row is D / 8 vector accumulators in registers) or given at run time (D == 0). Inlined into
// each ISA clone below.
template <std::uint32_t D>
__attribute__((always_inline)) inline void PoolActivateOrderedBody(
    const OrderedPoolInputs& in, std::uint64_t begin, std::uint64_t end, float* out) {
  static_assert(D % 8 == 0, "vector accumulators hold 8 floats");
  const std::uint32_t T = in.T, d = D > 0 ? D : in.d;
  const std::uint64_t end_e = (end - begin) * T;  // entries e of the lists, from `begin`'s
  std::vector<float> heap_acc(D > 0 ? 0 : d);
  for (std::uint64_t e = 0; e < std::min<std::uint64_t>(kOrderedAhead, end_e); ++e) {
    const NodeId v = in.neighbors[e];
    if (v != kInvalidNode) PrefetchRow(in.r + static_cast<std::uint64_t>(v) * d, d);
  }
  for (std::uint64_t i = begin; i < end; ++i) {
    constexpr std::uint32_t kVectors = D > 0 ? D / 8 : 1;
    Float8 acc[kVectors];
#pragma GCC unroll 16
    for (std::uint32_t j = 0; j < kVectors; ++j) acc[j] = Float8{};
    float* __restrict a = heap_acc.data();
    if constexpr (D == 0) std::fill(heap_acc.begin(), heap_acc.end(), 0.0f);
    float count = 0;
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::uint64_t e = (i - begin) * T + t;
      if (e + kOrderedAhead < end_e) {
        const NodeId ahead = in.neighbors[e + kOrderedAhead];
        if (ahead != kInvalidNode) PrefetchRow(in.r + static_cast<std::uint64_t>(ahead) * d, d);
      }
      const NodeId v = in.neighbors[e];
      if (v == kInvalidNode) continue;
      const float* __restrict rv = in.r + static_cast<std::uint64_t>(v) * d;
      const float wt = in.mean ? 1.0f : in.weights[e];
      if constexpr (D > 0) {
        const Float8 w = Float8{} + wt;
#pragma GCC unroll 16
        for (std::uint32_t j = 0; j < kVectors; ++j) {
          Float8 r;
          std::memcpy(&r, rv + 8 * j, sizeof r);
          acc[j] += w * r;
        }
      } else {
        for (std::uint32_t c = 0; c < d; ++c) a[c] += wt * rv[c];
      }
      count += 1;
    }
    float pooled_row[D > 0 ? D : 1];
    float* pooled = a;
    if constexpr (D > 0) {
      std::memcpy(pooled_row, acc, sizeof acc);
      pooled = pooled_row;
    }
    if (in.mean && count > 0) {
      for (std::uint32_t c = 0; c < d; ++c) pooled[c] /= count;
    }
    ActivateRow(in.s + i * d, pooled, out + (i - begin) * d, d);
  }
}

PGRAPH_VECTOR_CLONES
void PoolActivateOrdered32(const OrderedPoolInputs& in, std::uint64_t b, std::uint64_t e,
                           float* out) {
  PoolActivateOrderedBody<32>(in, b, e, out);
}
PGRAPH_VECTOR_CLONES
void PoolActivateOrdered64(const OrderedPoolInputs& in, std::uint64_t b, std::uint64_t e,
                           float* out) {
  PoolActivateOrderedBody<64>(in, b, e, out);
}
PGRAPH_VECTOR_CLONES
void PoolActivateOrdered128(const OrderedPoolInputs& in, std::uint64_t b, std::uint64_t e,
                            float* out) {
  PoolActivateOrderedBody<128>(in, b, e, out);
}
PGRAPH_VECTOR_CLONES
void PoolActivateOrderedAny(const OrderedPoolInputs& in, std::uint64_t b, std::uint64_t e,
                            float* out) {
  PoolActivateOrderedBody<0>(in, b, e, out);
}

}  // namespace

void ActivateRow(const float* s, const float* pooled, float* out, std::uint32_t d) {
  // Four partial sums of squares in a fixed order (lane j takes elements c = j mod 4):
  // vectorised, and the same on every CPU. Branch-free: a ReLU branch per element is
  // mispredicted half the time.
  double part[4] = {0, 0, 0, 0};
  std::uint32_t c = 0;
#if defined(__SSE2__)
  __m128d sum01 = _mm_setzero_pd(), sum23 = _mm_setzero_pd();
  for (; c + 4 <= d; c += 4) {
    // max(0, x) is std::max(x, 0.0f), NaN included (MAXPS returns its second operand).
    const __m128 x = _mm_max_ps(_mm_setzero_ps(),
                                _mm_add_ps(_mm_loadu_ps(s + c), _mm_loadu_ps(pooled + c)));
    const __m128d lo = _mm_cvtps_pd(x), hi = _mm_cvtps_pd(_mm_movehl_ps(x, x));
    sum01 = _mm_add_pd(sum01, _mm_mul_pd(lo, lo));
    sum23 = _mm_add_pd(sum23, _mm_mul_pd(hi, hi));
    _mm_storeu_ps(out + c, x);
  }
  _mm_storeu_pd(part, sum01);
  _mm_storeu_pd(part + 2, sum23);
#else
  for (; c + 4 <= d; c += 4) {
    float x[4];
    for (std::uint32_t j = 0; j < 4; ++j) x[j] = std::max(s[c + j] + pooled[c + j], 0.0f);
    for (std::uint32_t j = 0; j < 4; ++j) part[j] += static_cast<double>(x[j]) * x[j];
    std::memcpy(out + c, x, sizeof x);
  }
#endif
  for (; c < d; ++c) {
    const float x = std::max(s[c] + pooled[c], 0.0f);
    out[c] = x;
    part[0] += static_cast<double>(x) * x;
  }
  const double ss = (part[0] + part[1]) + (part[2] + part[3]);
  const float inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
  for (c = 0; c < d; ++c) out[c] *= inv;
}

void PoolActivateOrdered(const OrderedPoolInputs& in, std::uint64_t begin, std::uint64_t end,
                         float* out) {
  switch (in.d) {
    case 32:
      return PoolActivateOrdered32(in, begin, end, out);
    case 64:
      return PoolActivateOrdered64(in, begin, end, out);
    case 128:
      return PoolActivateOrdered128(in, begin, end, out);
    default:
      return PoolActivateOrderedAny(in, begin, end, out);
  }
}

void PoolNeighbors(const PoolInputs& in, train::Pooling pooling, std::uint64_t begin,
                   std::uint64_t end, float* acc, std::uint64_t stride, float* count) {
  switch (pooling) {
    case train::Pooling::kImportance:
      PoolLinear(in, in.weights, begin, end, acc, stride, count);
      break;
    case train::Pooling::kMean:
      PoolLinear(in, nullptr, begin, end, acc, stride, count);
      break;
    case train::Pooling::kMax:
      PoolMax(in, begin, end, acc, stride);
      break;
  }
}

Result<double> GatherRowsPerSecond(std::uint64_t items, std::uint32_t width, std::uint32_t T,
                                   int threads, double min_seconds) {
  if (items == 0 || width == 0 || T == 0 || items >= kInvalidNode) {
    return Status::InvalidArgument("empty or too large gather shape");
  }
  std::vector<float> p;
  storage::ResizeHuge(&p, items * width);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (float& x : p) x = unit(rng);
  // One block of neighbour lists, reused for every block of items: the rows it names are
  // spread over the whole matrix, as a real graph's are.
  const std::uint64_t B = std::min<std::uint64_t>(items, 65536);
  std::vector<NodeId> nbrs(B * T);
  std::vector<float> wts(B * T, 1.0f / static_cast<float>(T));
  for (NodeId& v : nbrs) v = static_cast<NodeId>(rng() % items);
  std::vector<float> acc(B * width);
  PoolInputs in;
  in.neighbors = nbrs.data();
  in.weights = wts.data();
  in.T = T;
  in.p = p.data();
  in.lo = 0;
  in.hi = static_cast<NodeId>(items);
  in.m = width;
  tbb::task_arena arena(std::max(1, threads));
  const auto t0 = std::chrono::steady_clock::now();
  double seconds = 0;
  std::uint64_t rows = 0;
  do {
    for (std::uint64_t b = 0; b < items; b += B) {
      const std::uint64_t nb = std::min(B, items - b);
      std::fill(acc.begin(), acc.begin() + nb * width, 0.0f);
      arena.execute([&] {
        tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, nb, 64), [&](const auto& r) {
          PoolNeighbors(in, train::Pooling::kImportance, r.begin(), r.end(), acc.data(), width,
                        nullptr);
        });
      });
      rows += nb * T;
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (seconds < min_seconds);
  return static_cast<double>(rows) / seconds;
}

}  // namespace pgraph::infer
