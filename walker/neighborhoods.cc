// Importance neighbourhoods: per-item walks, top-T by visit count.
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "walker/walk_kernel.h"
#include "walker/walker.h"

namespace pgraph::walker {

Status ValidateWalkOptions(const WalkOptions& o) {
  if (o.top_t < 1) return Status::InvalidArgument("--top-t must be >= 1 (got 0)");
  if (o.walk_length < 1) return Status::InvalidArgument("--walk-length must be >= 1 (got 0)");
  if (o.walks_per_node < 1) {
    return Status::InvalidArgument("--walks-per-node must be >= 1 (got 0)");
  }
  if (!(o.restart >= 0.0 && o.restart < 1.0)) {
    return Status::InvalidArgument("--restart must be in [0, 1) (got " +
                                   std::to_string(o.restart) + ")");
  }
  if (o.block_items < 1) return Status::InvalidArgument("block_items must be >= 1");
  return Status::OK();
}

namespace {

// Held-out pairs in both directions, sorted, for per-source look-up.
class ExcludeSet {
 public:
  explicit ExcludeSet(std::span<const Pair> pairs) {
    v_.reserve(pairs.size() * 2);
    for (auto [q, i] : pairs) {
      v_.emplace_back(q, i);
      v_.emplace_back(i, q);
    }
    std::sort(v_.begin(), v_.end());
    v_.erase(std::unique(v_.begin(), v_.end()), v_.end());
  }
  // Items excluded from N(u), sorted.
  std::span<const Pair> For(NodeId u) const {
    auto lo = std::lower_bound(v_.begin(), v_.end(), u,
                               [](const Pair& p, NodeId x) { return p.first < x; });
    auto hi = std::upper_bound(lo, v_.end(), u,
                               [](NodeId x, const Pair& p) { return x < p.first; });
    return {v_.data() + (lo - v_.begin()), static_cast<std::size_t>(hi - lo)};
  }
  bool empty() const { return v_.empty(); }

 private:
  std::vector<Pair> v_;
};

struct Scratch {
  std::vector<Lane> lanes;
  std::vector<VisitCounter> counters;          // one per lane
  std::vector<std::uint32_t> high;             // per lane: items at the early-stop threshold
  std::vector<std::pair<std::uint32_t, NodeId>> candidates;
};

// Hands each lane one source at a time (in item order) and all of its walks in sequence.
template <typename Adj>
class NeighborhoodDriver {
 public:
  NeighborhoodDriver(const Adj& adj, const WalkOptions& o, const ExcludeSet& exclude,
                     Scratch* s, NodeId begin, NodeId end, NodeId out_first, Neighborhoods* out,
                     std::vector<std::uint32_t>* visits)
      : adj_(adj), o_(o), exclude_(exclude), s_(s), next_(begin), end_(end),
        out_first_(out_first), out_(out), visits_(visits) {
    early_ = o.early_stop_nodes > 0 && o.early_stop_visits > 0;
  }

  bool Start(Lane* l) {
    if (l->phase != Phase::kIdle) {
      // The lane just finished walk l->walk of l->source.
      const std::uint32_t k = l->slot;
      const bool stop = early_ && s_->high[k] >= o_.early_stop_nodes;
      if (!stop && l->walk + 1 < o_.walks_per_node) {
        BeginWalk(l, l->source, l->walk + 1);
        return true;
      }
      Finish(k, l->source);
    }
    // Next source with at least one context; isolated items get empty rows.
    while (next_ < end_) {
      NodeId u = next_++;
      if (adj_.ItemEnd(u) == adj_.ItemBegin(u)) {
        WriteRow(u, {});
        continue;
      }
      BeginWalk(l, u, 0);
      return true;
    }
    return false;
  }

  void Visit(Lane* l, NodeId v) {
    std::uint32_t c = s_->counters[l->slot].Add(v);
    if (early_ && c == o_.early_stop_visits && v != l->source) ++s_->high[l->slot];
  }

 private:
  void BeginWalk(Lane* l, NodeId u, std::uint32_t walk) {
    l->source = u;
    l->walk = walk;
    l->rng = WalkSeed(o_.seed, u, walk);
    l->node = u;
    l->steps_left = o_.walk_length;
    l->phase = Phase::kItem;
  }

  // Top-T of the lane's counter into u's row; resets the counter.
  void Finish(std::uint32_t k, NodeId u) {
    VisitCounter& counter = s_->counters[k];
    auto& cand = s_->candidates;
    cand.clear();
    std::span<const Pair> ex = exclude_.For(u);
    // Histogram of counts (capped): rows usually hold many more items than T, most visited
    // once or twice, so a count threshold drops most of them before the selection.
    std::uint32_t hist[kHistBins] = {};
    counter.Drain([&](NodeId v, std::uint32_t c) {
      if (v == u) return;
      if (!ex.empty() && std::binary_search(ex.begin(), ex.end(), Pair{u, v})) return;
      cand.emplace_back(c, v);
      ++hist[std::min<std::uint32_t>(c, kHistBins - 1)];
    });
    s_->high[k] = 0;
    // Largest threshold that keeps at least T candidates (1 keeps all).
    std::uint32_t threshold = 1, at_least = 0;
    for (std::uint32_t c = kHistBins - 1; c >= 2; --c) {
      at_least += hist[c];
      if (at_least >= o_.top_t) {
        threshold = c;
        break;
      }
    }
    if (threshold > 1) {
      std::erase_if(cand, [&](const std::pair<std::uint32_t, NodeId>& x) {
        return x.first < threshold;
      });
    }
    WriteRow(u, cand);
  }

  void WriteRow(NodeId u, std::span<std::pair<std::uint32_t, NodeId>> cand) {
    const std::uint32_t t = o_.top_t;
    auto better = [](const std::pair<std::uint32_t, NodeId>& a,
                     const std::pair<std::uint32_t, NodeId>& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    std::size_t keep = std::min<std::size_t>(t, cand.size());
    if (cand.size() > keep) {
      std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(),
                       better);
    }
    std::sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), better);
    std::uint64_t sum = 0;
    for (std::size_t r = 0; r < keep; ++r) sum += cand[r].first;
    const std::uint64_t row = u - out_first_;
    NodeId* nb = out_->neighbors.data() + row * t;
    float* w = out_->weights.data() + row * t;
    std::uint32_t* vis = visits_ ? visits_->data() + row * t : nullptr;
    for (std::size_t r = 0; r < keep; ++r) {
      nb[r] = cand[r].second;
      w[r] = static_cast<float>(static_cast<double>(cand[r].first) / static_cast<double>(sum));
      if (vis) vis[r] = cand[r].first;
    }
    out_->counts[row] = static_cast<std::uint32_t>(keep);
  }

  static constexpr std::uint32_t kHistBins = 64;

  const Adj& adj_;
  const WalkOptions& o_;
  const ExcludeSet& exclude_;
  Scratch* s_;
  NodeId next_, end_, out_first_;
  Neighborhoods* out_;
  std::vector<std::uint32_t>* visits_;
  bool early_ = false;
};

template <typename Adj>
Result<Neighborhoods> Compute(const Adj& adj, NodeId first, std::uint64_t count,
                              const WalkOptions& o, std::vector<std::uint32_t>* visits) {
  PGRAPH_RETURN_IF_ERROR(ValidateWalkOptions(o));
  const std::uint64_t n = adj.num_items();
  if (first > n || count > n - first) {
    return Status::InvalidArgument("items [" + std::to_string(first) + ", " +
                                   std::to_string(first + count) + ") out of range (" +
                                   std::to_string(n) + " items)");
  }
  const std::uint32_t t = o.top_t;
  Neighborhoods out;
  out.first = first;
  out.width = t;
  out.neighbors.assign(count * t, kInvalidNode);
  out.weights.assign(count * t, 0.0f);
  out.counts.assign(count, 0);
  if (visits) visits->assign(count * t, 0);
  if (count == 0) return out;

  ExcludeSet exclude(o.exclude);
  const std::uint32_t lanes = DefaultLanes(o.lanes);
  const std::uint64_t max_keys =
      std::min<std::uint64_t>(n, std::uint64_t{o.walks_per_node} * o.walk_length);
  tbb::enumerable_thread_specific<Scratch> scratch([&] {
    Scratch s;
    s.counters.resize(lanes);
    for (auto& c : s.counters) c.Reserve(max_keys);
    s.high.assign(lanes, 0);
    s.candidates.reserve(max_keys);
    return s;
  });
  const std::uint64_t block = o.block_items;
  const std::uint64_t blocks = (count + block - 1) / block;
  const std::uint64_t threshold = ProbabilityThreshold(o.restart);
  std::atomic<std::uint64_t> steps{0};
  tbb::parallel_for(
      tbb::blocked_range<std::uint64_t>(0, blocks, 1),
      [&](const tbb::blocked_range<std::uint64_t>& r) {
        Scratch& s = scratch.local();
        for (std::uint64_t b = r.begin(); b != r.end(); ++b) {
          const NodeId begin = static_cast<NodeId>(first + b * block);
          const NodeId end = static_cast<NodeId>(first + std::min(count, (b + 1) * block));
          NeighborhoodDriver<Adj> driver(adj, o, exclude, &s, begin, end, first, &out, visits);
          // Lane k always uses counter k (its slot).
          const std::uint32_t k_lanes =
              static_cast<std::uint32_t>(std::min<std::uint64_t>(lanes, end - begin));
          std::uint64_t st = RunLanes(adj, &driver, &s.lanes, k_lanes, threshold);
          steps.fetch_add(st, std::memory_order_relaxed);
        }
      },
      tbb::simple_partitioner());
  out.steps = steps.load();
  return out;
}

}  // namespace

Result<Neighborhoods> ComputeNeighborhoodsWithVisits(const WalkGraph& graph, NodeId first,
                                                     std::uint64_t count, const WalkOptions& o,
                                                     std::vector<std::uint32_t>* visits) {
  return WithViewAdjacency(
      graph, [&](const auto& adj) { return Compute(adj, first, count, o, visits); });
}

Result<Neighborhoods> ComputeNeighborhoods(const WalkGraph& graph, NodeId first,
                                           std::uint64_t count, const WalkOptions& options) {
  return WithViewAdjacency(
      graph, [&](const auto& adj) { return Compute(adj, first, count, options, nullptr); });
}

Result<Neighborhoods> ComputeNeighborhoods(const WalkGraph& graph, const WalkOptions& options) {
  return ComputeNeighborhoods(graph, 0, graph.num_items(), options);
}

Result<Neighborhoods> ComputeNeighborhoods(const storage::Graph& graph, NodeId first,
                                           std::uint64_t count, const WalkOptions& options) {
  return Compute(GraphAdjacency(graph), first, count, options, nullptr);
}

}  // namespace pgraph::walker
