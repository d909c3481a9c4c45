#pragma once
// LocalityOrder: a permutation of the items that places each item near its neighbours.
// Private to infer/; torch-free.
//
// Why: pooling reads, for every item, the rows of its T neighbours. In item-id order those
// rows are spread over the whole matrix of a layer, so at scale every read misses the cache
// and pooling runs at DRAM latency. Neighbourhoods of recommendation graphs are clustered
// (an item's random-walk neighbours share its communities), so when items are processed, and
// their rows laid out, in an order that keeps clusters together, most reads hit rows that a
// nearby item has just brought into cache.
//
// How (linear time, no parameters): every item points at its heaviest neighbour; the pointers
// form a forest once each cycle is cut at its smallest id; a depth-first walk of the forest
// (roots and children by increasing id) puts each tree, i.e. items whose strongest links run
// to the same hubs, in one stretch. Rounds of weighted label propagation over the full
// neighbour lists (until they settle, at most 4; walk neighbourhoods, whose popular items are
// hubs, settle after one) then move each item to the tree that holds most of its neighbour
// weight, which joins the several trees that one cluster often splits into. The result is
// deterministic: it depends on the neighbour lists only, never on the thread count.
// Cost: a few passes over the lists (O(items x T)), under 30 bytes of scratch per item.

#include <cstdint>
#include <vector>

#include "storage/ids.h"

namespace pgraph::infer {

struct LocalityOrder {
  std::vector<NodeId> order;  // order[i]: the item at position i
  std::vector<NodeId> pos;    // pos[u]: the position of item u (the inverse of order)
};

// `nbrs` and `wts` are items x T, row-major (kInvalidNode: no neighbour; ids < items).
// Runs its parallel loop on the calling thread's TBB arena.
LocalityOrder ComputeLocalityOrder(const NodeId* nbrs, const float* wts, std::uint64_t items,
                                   std::uint32_t T);

// A bound on the bytes ComputeLocalityOrder allocates besides its result (29 per item).
std::uint64_t LocalityOrderScratchBytes(std::uint64_t items);

// Of the valid neighbour entries of items 0, stride, 2 stride, ...: the share whose position
// lies within `window` positions of their item's. 1 for a perfect clustering, about
// 2 * window / items for a random order. For reports and tests; `nbrs` hold item ids.
double LocalityShare(const LocalityOrder& o, const NodeId* nbrs, std::uint64_t items,
                     std::uint32_t T, std::uint64_t window, std::uint64_t stride = 1);

}  // namespace pgraph::infer
