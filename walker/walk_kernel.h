#pragma once
// Private to walker/: the interleaved walk kernel, its RNG, visit counters and adjacency
// adaptors. Not part of the public API.
//
// A walk is a sequence of steps item -> context -> item. The kernel keeps many walks
// ("lanes") in flight and advances each by half a hop per visit, issuing a prefetch for the
// next load of that lane before moving on, so up to `lanes` cache misses overlap:
//   kItem:     read offsets of the current item (prefetched), pick an edge, prefetch target
//   kItemEdge: read the context, prefetch its offsets
//   kCtx:      read the context's offsets, pick an edge, prefetch target
//   kCtxEdge:  read the item, count it, end the walk or prefetch the item's offsets
// On a weighted graph kItem and kCtx prefetch the node's cumulative weights instead of
// picking, and kItemPick / kCtxPick pick the edge (binary search) a turn later.
// A walk that starts from the item its lane's previous walk started from (the common case:
// a lane runs all walks of one source in turn) takes its first hop at once (BeginLane): that
// item's offsets and targets are still in cache, so waiting two turns would only lengthen
// the round. The draws are the same either way.
// A Driver decides where walks start, counts visits and says what a lane does next.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "storage/ids.h"
#include "storage/store.h"
#include "walker/walker.h"

namespace pgraph::walker {

// ---- Randomness: pure functions of (seed, source, walk) --------------------------------

inline std::uint64_t Mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Seed of walk `walk` from `source` under the user's `seed`.
inline std::uint64_t WalkSeed(std::uint64_t seed, std::uint64_t source, std::uint64_t walk) {
  return Mix64(Mix64(Mix64(seed ^ 0x5EED5EED5EEDull) + source) + walk);
}

// SplitMix64 stream.
inline std::uint64_t NextRandom(std::uint64_t* state) {
  *state += 0x9E3779B97F4A7C15ull;
  return Mix64(*state);
}

// Uniform in [0, n) from the high 32 bits of `draw` (n < 2^32; bias < n / 2^32).
inline std::uint64_t PickBelow(std::uint64_t draw, std::uint64_t n) {
  return ((draw >> 32) * n) >> 32;
}

// Threshold on the low 32 bits of a draw: `draw32 < t` has probability p.
inline std::uint64_t ProbabilityThreshold(double p) {
  if (p <= 0) return 0;
  if (p >= 1) return 1ull << 32;
  return static_cast<std::uint64_t>(p * 4294967296.0);
}

// ---- Visit counters --------------------------------------------------------------------

// Open-addressing (linear probing) map item -> visit count, packed in one u64 per slot so a
// probe touches one cache line. Reused across sources: Clear() costs O(entries touched).
// Grows (rehash) when half full; never allocates otherwise.
class VisitCounter {
 public:
  static constexpr std::uint64_t kEmpty = 0xFFFFFFFFull;  // key kInvalidNode, count 0

  // Room for `expected_keys` distinct keys without growing.
  void Reserve(std::uint64_t expected_keys) {
    std::uint64_t cap = 16;
    unsigned bits = 4;
    while (cap < 2 * expected_keys + 2) {
      cap <<= 1;
      ++bits;
    }
    if (cap <= slots_.size()) return;
    Rehash(cap, bits);
  }

  // Adds one visit to `key`; returns its new count.
  std::uint32_t Add(NodeId key) {
    std::uint64_t i = Slot(key);
    for (;;) {
      std::uint64_t s = slots_[i];
      if (static_cast<NodeId>(s) == key) {
        s += 1ull << 32;
        slots_[i] = s;
        return static_cast<std::uint32_t>(s >> 32);
      }
      if (s == kEmpty) {
        slots_[i] = (1ull << 32) | key;
        used_.push_back(static_cast<std::uint32_t>(i));
        if (2 * used_.size() > slots_.size()) Rehash(slots_.size() * 2, bits_ + 1);
        return 1;
      }
      i = (i + 1) & mask_;
    }
  }

  std::uint32_t Get(NodeId key) const {
    std::uint64_t i = Slot(key);
    for (;;) {
      std::uint64_t s = slots_[i];
      if (static_cast<NodeId>(s) == key) return static_cast<std::uint32_t>(s >> 32);
      if (s == kEmpty) return 0;
      i = (i + 1) & mask_;
    }
  }

  std::uint64_t size() const { return used_.size(); }

  // Calls f(key, count) for every key counted since the last Clear, in insertion order.
  template <typename F>
  void ForEach(F&& f) const {
    for (std::uint32_t i : used_) {
      std::uint64_t s = slots_[i];
      f(static_cast<NodeId>(s), static_cast<std::uint32_t>(s >> 32));
    }
  }

  void Clear() {
    for (std::uint32_t i : used_) slots_[i] = kEmpty;
    used_.clear();
  }

  // ForEach then Clear, in one pass over the slots.
  template <typename F>
  void Drain(F&& f) {
    for (std::uint32_t i : used_) {
      const std::uint64_t s = slots_[i];
      slots_[i] = kEmpty;
      f(static_cast<NodeId>(s), static_cast<std::uint32_t>(s >> 32));
    }
    used_.clear();
  }

 private:
  std::uint64_t Slot(NodeId key) const {
    return (static_cast<std::uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> (64 - bits_);
  }
  void Rehash(std::uint64_t cap, unsigned bits) {
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    std::vector<std::uint32_t> old_used;
    old_used.swap(used_);
    slots_.assign(cap, kEmpty);
    mask_ = cap - 1;
    bits_ = bits;
    used_.reserve(cap / 2 + 1);
    for (std::uint32_t i : old_used) {
      std::uint64_t s = old[i];
      std::uint64_t j = Slot(static_cast<NodeId>(s));
      while (slots_[j] != kEmpty) j = (j + 1) & mask_;
      slots_[j] = s;
      used_.push_back(static_cast<std::uint32_t>(j));
    }
  }

  std::vector<std::uint64_t> slots_;
  std::vector<std::uint32_t> used_;  // slots in use, in insertion order
  std::uint64_t mask_ = 0;
  unsigned bits_ = 0;
};

// Index in [0, d) of the edge a weighted step takes: cum holds the node's running sums of
// edge weights, so edge k is taken with probability (cum[k] - cum[k-1]) / cum[d-1]. Uses the
// draw's high 32 bits, as PickBelow does (restarts use the low ones). A node whose weights
// are all 0 steps uniformly.
inline std::uint64_t PickWeighted(const float* cum, std::uint64_t d, std::uint64_t draw) {
  const float total = cum[d - 1];
  if (!(total > 0)) return PickBelow(draw, d);
  const float x = static_cast<float>((draw >> 32) * 0x1.0p-32 * total);
  // k = the first entry > x (std::upper_bound), without branches: the draws are random, so a
  // branchy search mispredicts about every other comparison, and that made weighted walks
  // 4x slower than uniform ones. Most nodes have few edges: count them (vectorised).
  std::uint64_t k = 0;
  if (d <= 32) {
    for (std::uint64_t i = 0; i < d; ++i) k += cum[i] <= x;
  } else {
    const float* base = cum;
    for (std::uint64_t n = d; n > 1;) {
      const std::uint64_t half = n / 2;
      base = base[half] <= x ? base + half : base;
      n -= half;
    }
    k = static_cast<std::uint64_t>(base - cum) + (*base <= x);
  }
  return std::min(k, d - 1);
}

// ---- Adjacency adaptors ----------------------------------------------------------------

// WalkGraph: direct ColumnView access with prefetching. kWeighted: steps choose edges by the
// graph's cumulative weights (the graph was opened weighted). A template parameter, not a
// run-time test, so uniform walks run the loop they ran before weights existed (a run-time
// test cost them 4-7% per CPU-second). WithViewAdjacency picks the instance.
template <bool kWeightedSteps>
struct ViewAdjacencyT {
  static constexpr bool kWeighted = kWeightedSteps;
  explicit ViewAdjacencyT(const WalkGraph& g) : g_(g) {}
  std::uint64_t num_items() const { return g_.num_items_; }
  std::uint64_t ItemBegin(NodeId u) const { return g_.item_offsets_[u]; }
  std::uint64_t ItemEnd(NodeId u) const { return g_.item_offsets_[u + 1]; }
  std::uint64_t CtxBegin(NodeId c) const { return g_.ctx_offsets_[c]; }
  std::uint64_t CtxEnd(NodeId c) const { return g_.ctx_offsets_[c + 1]; }
  NodeId ItemTarget(NodeId, std::uint64_t e) const { return g_.item_targets_[e]; }
  NodeId CtxTarget(NodeId, std::uint64_t e) const { return g_.ctx_targets_[e]; }
  // The edge a step from the node whose edges are [b, b + d) takes (d >= 1), by `draw`.
  std::uint64_t PickItemEdge(std::uint64_t b, std::uint64_t d, std::uint64_t draw) const {
    if constexpr (kWeighted) return b + PickWeighted(&g_.item_cum_[b], d, draw);
    return b + PickBelow(draw, d);
  }
  std::uint64_t PickCtxEdge(std::uint64_t b, std::uint64_t d, std::uint64_t draw) const {
    if constexpr (kWeighted) return b + PickWeighted(&g_.ctx_cum_[b], d, draw);
    return b + PickBelow(draw, d);
  }
  // Weighted steps read the node's cumulative weights: one more random load per hop, which
  // the kernel prefetches (the first probe of the binary search and the last entry).
  void PrefetchItemCum(std::uint64_t b, std::uint64_t d) const {
    __builtin_prefetch(&g_.item_cum_[b + d / 2]);
    __builtin_prefetch(&g_.item_cum_[b + d - 1]);
  }
  void PrefetchCtxCum(std::uint64_t b, std::uint64_t d) const {
    __builtin_prefetch(&g_.ctx_cum_[b + d / 2]);
    __builtin_prefetch(&g_.ctx_cum_[b + d - 1]);
  }
  void PrefetchItem(NodeId u) const { PrefetchPair(g_.item_offsets_, u); }
  void PrefetchCtx(NodeId c) const { PrefetchPair(g_.ctx_offsets_, c); }
  // Offsets i and i + 1; the second only when i is the last one of its cache line.
  static void PrefetchPair(const storage::ColumnView<std::uint64_t>& v, NodeId i) {
    const std::uint64_t* p = v.row_ptr(i);
    __builtin_prefetch(p);
    if ((reinterpret_cast<std::uintptr_t>(p) & 63) > 64 - 2 * sizeof(std::uint64_t)) {
      __builtin_prefetch(v.row_ptr(i + 1));
    }
  }
  void PrefetchItemTarget(std::uint64_t e) const {
    __builtin_prefetch(g_.item_targets_.row_ptr(e));
  }
  void PrefetchCtxTarget(std::uint64_t e) const { __builtin_prefetch(g_.ctx_targets_.row_ptr(e)); }

  const WalkGraph& g_;
};
using ViewAdjacency = ViewAdjacencyT<false>;

// f(adjacency) with the adaptor for `g`'s weighting; both instances must give f's result type.
template <typename F>
decltype(auto) WithViewAdjacency(const WalkGraph& g, F&& f) {
  if (g.weighting() == EdgeWeighting::kUniform) return f(ViewAdjacencyT<false>(g));
  return f(ViewAdjacencyT<true>(g));
}

// storage::Graph: its public accessors only (no prefetch). Same walks, same results as a
// uniform WalkGraph (it has no weighted steps).
struct GraphAdjacency {
  explicit GraphAdjacency(const storage::Graph& g) : g_(g) {}
  std::uint64_t num_items() const { return g_.num_items(); }
  std::uint64_t ItemBegin(NodeId u) const { return g_.ItemEdgeBegin(u); }
  std::uint64_t ItemEnd(NodeId u) const { return g_.ItemEdgeBegin(u) + g_.ItemDegree(u); }
  std::uint64_t CtxBegin(NodeId c) const { return g_.ContextEdgeBegin(c); }
  std::uint64_t CtxEnd(NodeId c) const { return g_.ContextEdgeBegin(c) + g_.ContextDegree(c); }
  NodeId ItemTarget(NodeId u, std::uint64_t e) const {
    return g_.ItemNeighbor(u, e - g_.ItemEdgeBegin(u));
  }
  NodeId CtxTarget(NodeId c, std::uint64_t e) const {
    return g_.ContextNeighbor(c, e - g_.ContextEdgeBegin(c));
  }
  std::uint64_t PickItemEdge(std::uint64_t b, std::uint64_t d, std::uint64_t draw) const {
    return b + PickBelow(draw, d);
  }
  std::uint64_t PickCtxEdge(std::uint64_t b, std::uint64_t d, std::uint64_t draw) const {
    return b + PickBelow(draw, d);
  }
  static constexpr bool kWeighted = false;
  void PrefetchItemCum(std::uint64_t, std::uint64_t) const {}
  void PrefetchCtxCum(std::uint64_t, std::uint64_t) const {}
  void PrefetchItem(NodeId) const {}
  void PrefetchCtx(NodeId) const {}
  void PrefetchItemTarget(std::uint64_t) const {}
  void PrefetchCtxTarget(std::uint64_t) const {}

  const storage::Graph& g_;
};

// ---- The kernel ------------------------------------------------------------------------

// kItemPick / kCtxPick: weighted graphs only, between reading a node's offsets and choosing
// its edge, while the node's cumulative weights (prefetched) arrive.
enum class Phase : std::uint8_t { kIdle, kItem, kItemPick, kItemEdge, kCtx, kCtxPick, kCtxEdge };

struct Lane {
  std::uint64_t rng = 0;
  std::uint64_t edge = 0;       // edge index to read in kItemEdge / kCtxEdge; in the pick
                                // phases the node's first edge
  std::uint64_t degree = 0;     // pick phases: the node's edge count
  std::uint64_t draw = 0;       // last draw of a hop (the context hop's low bits decide
                                // restarts)
  NodeId node = 0;              // current item (kItem, kItemEdge) or context
  NodeId source = 0;            // where the current walk started
  std::uint32_t steps_left = 0; // steps this walk may still take
  std::uint32_t slot = 0;       // driver's bookkeeping (source slot / counter index)
  std::uint32_t walk = 0;       // walk index from `source`
  NodeId hot = kInvalidNode;    // item whose offsets and targets this lane read last at a
                                // walk's start (still in cache: its next walk's first hop
                                // is taken at once instead of waiting a turn)
  Phase phase = Phase::kIdle;
};

// The first hop of a walk that starts where the lane's previous walk started: the item's
// offsets and targets were just read, so the hop runs now (same draws as the kItem and
// kItemEdge phases would make) and the lane goes straight to kCtx. Otherwise the item's
// offsets are prefetched and the lane waits in kItem.
template <typename Adj>
inline void BeginLane(const Adj& adj, Lane* l) {
  if (l->node != l->hot) {
    adj.PrefetchItem(l->node);
    return;
  }
  const std::uint64_t b = adj.ItemBegin(l->node);
  const std::uint64_t e = adj.PickItemEdge(b, adj.ItemEnd(l->node) - b, NextRandom(&l->rng));
  const NodeId c = adj.ItemTarget(l->node, e);
  adj.PrefetchCtx(c);
  l->node = c;
  l->phase = Phase::kCtx;
}

// Runs every walk the driver hands out. Driver interface:
// Lane k gets slot k (drivers may index per-lane state with it).
//   bool Start(Lane* lane): set up the lane's next walk (source, walk, rng, steps_left >= 1,
//                           node = source, phase = kItem); false when it has none.
//   void Visit(Lane* lane, NodeId item): count a visit.
//   `restart_threshold`: after each step the walk ends when (uint32)draw < threshold.
// When a walk ends (steps exhausted or restart) the kernel calls Start again for that lane.
// Returns the number of steps taken.
template <typename Adj, typename Driver>
std::uint64_t RunLanes(const Adj& adj, Driver* driver, std::vector<Lane>* lanes_storage,
                       std::uint32_t lanes, std::uint64_t restart_threshold) {
  std::vector<Lane>& lanes_v = *lanes_storage;
  lanes_v.assign(lanes, Lane{});
  std::uint32_t active = 0;
  for (std::uint32_t k = 0; k < lanes; ++k) {
    Lane& l = lanes_v[k];
    l.slot = k;
    if (driver->Start(&l)) {
      BeginLane(adj, &l);
      ++active;
    } else {
      l.phase = Phase::kIdle;
    }
  }
  std::uint64_t steps = 0;
  while (active > 0) {
    for (Lane& l : lanes_v) {
      switch (l.phase) {
        case Phase::kIdle:
          break;
        case Phase::kItem: {
          if (l.node == l.source) l.hot = l.node;
          std::uint64_t b = adj.ItemBegin(l.node);
          std::uint64_t d = adj.ItemEnd(l.node) - b;
          // d >= 1: sources are checked by the driver, later items were reached via an edge.
          l.draw = NextRandom(&l.rng);
          if constexpr (Adj::kWeighted) {
            adj.PrefetchItemCum(b, d);
            l.edge = b;
            l.degree = d;
            l.phase = Phase::kItemPick;
            break;
          }
          std::uint64_t e = adj.PickItemEdge(b, d, l.draw);
          adj.PrefetchItemTarget(e);
          l.edge = e;
          l.phase = Phase::kItemEdge;
          break;
        }
        case Phase::kItemPick: {
          std::uint64_t e = adj.PickItemEdge(l.edge, l.degree, l.draw);
          adj.PrefetchItemTarget(e);
          l.edge = e;
          l.phase = Phase::kItemEdge;
          break;
        }
        case Phase::kItemEdge: {
          NodeId c = adj.ItemTarget(l.node, l.edge);
          adj.PrefetchCtx(c);
          l.node = c;
          l.phase = Phase::kCtx;
          break;
        }
        case Phase::kCtx: {
          std::uint64_t b = adj.CtxBegin(l.node);
          std::uint64_t d = adj.CtxEnd(l.node) - b;
          l.draw = NextRandom(&l.rng);
          if constexpr (Adj::kWeighted) {
            adj.PrefetchCtxCum(b, d);
            l.edge = b;
            l.degree = d;
            l.phase = Phase::kCtxPick;
            break;
          }
          std::uint64_t e = adj.PickCtxEdge(b, d, l.draw);
          adj.PrefetchCtxTarget(e);
          l.edge = e;
          l.phase = Phase::kCtxEdge;
          break;
        }
        case Phase::kCtxPick: {
          std::uint64_t e = adj.PickCtxEdge(l.edge, l.degree, l.draw);
          adj.PrefetchCtxTarget(e);
          l.edge = e;
          l.phase = Phase::kCtxEdge;
          break;
        }
        case Phase::kCtxEdge: {
          NodeId v = adj.CtxTarget(l.node, l.edge);
          ++steps;
          driver->Visit(&l, v);
          if (--l.steps_left == 0 ||
              (l.draw & 0xFFFFFFFFull) < restart_threshold) {
            if (driver->Start(&l)) {
              BeginLane(adj, &l);
            } else {
              l.phase = Phase::kIdle;
              --active;
            }
          } else {
            l.node = v;
            adj.PrefetchItem(v);
            l.phase = Phase::kItem;
          }
          break;
        }
      }
    }
  }
  return steps;
}

inline std::uint32_t DefaultLanes(std::uint32_t lanes) { return lanes == 0 ? 32 : lanes; }

// ComputeNeighborhoods that also returns the raw visit count of every kept neighbour in
// `visits` (rows * T, 0 padding); used for co-occurrence training pairs.
Result<Neighborhoods> ComputeNeighborhoodsWithVisits(const WalkGraph& graph, NodeId first,
                                                     std::uint64_t count, const WalkOptions& o,
                                                     std::vector<std::uint32_t>* visits);

}  // namespace pgraph::walker
