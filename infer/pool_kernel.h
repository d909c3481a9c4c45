#pragma once
// PoolNeighbors: the pooling step of CONVOLVE for a block of items, over the rows of p^(k)
// that one pass holds in memory. Torch-free; private to infer/.
//
// It promises the sums the model's pooling does, in the same order per item (neighbour
// order), so layer-by-layer inference matches Algorithm 2 to float rounding. It is
// memory-bound (each neighbour is one random row of p, 2 flops per 4 bytes), so it
// prefetches rows a few neighbours ahead, and runs the widest vector ISA the CPU has
// (function clones chosen at load time, so the build needs no -march).

#include <cstdint>

#include "storage/ids.h"
#include "train/trainer.h"

namespace pgraph::infer {

struct PoolInputs {
  const NodeId* neighbors = nullptr;  // items x T, kInvalidNode = none
  const float* weights = nullptr;     // items x T (importance pooling)
  std::uint32_t T = 0;
  const float* p = nullptr;           // rows [lo, hi) of p^(k), m floats each
  NodeId lo = 0, hi = 0;
  std::uint32_t m = 0;
};

// For items [begin, end) of the block: adds each neighbour v in [lo, hi) into
// acc[u * stride .. + m): importance: += w_uv p_v; mean: += p_v and count[u] += 1;
// max: acc = max(acc, p_v). acc must start at 0 (sums) or at 0 (max over ReLU outputs,
// which are >= 0). Neighbours outside [lo, hi) are left to the pass that holds them.
void PoolNeighbors(const PoolInputs& in, train::Pooling pooling, std::uint64_t begin,
                   std::uint64_t end, float* acc, std::uint64_t stride, float* count);

// Stage (b)'s activation of one row: out[c] = normalise(ReLU(s[c] + pooled[c])), c < d (the
// self term W_self h + w plus the pooled neighbours, ReLU, L2 norm). One function for both
// layouts, so they round alike. `out` may be `s` or `pooled`.
void ActivateRow(const float* s, const float* pooled, float* out, std::uint32_t d);

// Stage (b) of a layer in locality order (walker.h), for linear pooling: rows,
// neighbour lists and outputs are all held by position, and the lists name positions. For
// positions i in [begin, end):
//   out[(i - begin) * d ..] = normalise(ReLU(s_i + pooled)), pooled = sum_t w_it r_{nbr_it}
// (mean pooling: the plain sum divided by the number of neighbours), in neighbour order and
// with the same float operations as PoolNeighbors followed by the item-order path's
// activation, so both layouts give the same rows.
struct OrderedPoolInputs {
  // The lists of positions [begin, end) (row `begin` first): neighbour positions, kInvalidNode
  // = none, and their weights; (end - begin) x T each.
  const NodeId* neighbors = nullptr;
  const float* weights = nullptr;
  std::uint32_t T = 0;
  const float* r = nullptr;          // positions x d: W_pool p of every node
  const float* s = nullptr;          // positions x d: W_self h + w of every node
  std::uint32_t d = 0;
  bool mean = false;                 // mean pooling (weights unused) instead of importance
};
// `out` may be in.s + begin * d (in place).
void PoolActivateOrdered(const OrderedPoolInputs& in, std::uint64_t begin, std::uint64_t end,
                         float* out);

}  // namespace pgraph::infer
