// Personalized PageRank by Monte-Carlo walks with restart; hard negatives from a rank window.
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <string>

#include "walker/walk_kernel.h"
#include "walker/walker.h"

namespace pgraph::walker {

namespace {

Status ValidatePpr(const PprOptions& o) {
  if (!(o.restart > 0.0 && o.restart < 1.0)) {
    return Status::InvalidArgument("PPR restart must be in (0, 1) (got " +
                                   std::to_string(o.restart) + ")");
  }
  if (o.walks < 1) return Status::InvalidArgument("PPR walks must be >= 1");
  if (o.max_length < 1) return Status::InvalidArgument("PPR max_length must be >= 1");
  return Status::OK();
}

struct PprScratch {
  VisitCounter counter;
  std::vector<Lane> lanes;
};

// Walk j starts at sources[j % size]; before each step (the first included) the walk stops
// with probability `restart`, so the step count is geometric, capped at max_length.
template <typename Adj>
class PprDriver {
 public:
  PprDriver(const Adj& adj, std::span<const NodeId> sources, const PprOptions& o,
            VisitCounter* counter)
      : adj_(adj), sources_(sources), o_(o), counter_(counter),
        threshold_(ProbabilityThreshold(o.restart)) {}

  bool Start(Lane* l) {
    while (next_ < o_.walks) {
      const std::uint32_t j = next_++;
      const NodeId u = sources_[j % sources_.size()];
      std::uint64_t rng = WalkSeed(o_.seed, u, j);
      if ((NextRandom(&rng) & 0xFFFFFFFFull) < threshold_) continue;  // zero steps
      if (adj_.ItemEnd(u) == adj_.ItemBegin(u)) continue;             // cannot move
      l->source = u;
      l->walk = j;
      l->rng = rng;
      l->node = u;
      l->steps_left = o_.max_length;
      l->phase = Phase::kItem;
      return true;
    }
    return false;
  }
  void Visit(Lane*, NodeId v) { counter_->Add(v); }

 private:
  const Adj& adj_;
  std::span<const NodeId> sources_;
  const PprOptions& o_;
  VisitCounter* counter_;
  std::uint64_t threshold_;
  std::uint32_t next_ = 0;
};

template <typename Adj>
Status CheckSources(const Adj& adj, std::span<const NodeId> sources) {
  if (sources.empty()) return Status::InvalidArgument("PPR needs at least one source item");
  for (NodeId s : sources) {
    if (s >= adj.num_items()) {
      return Status::InvalidArgument("PPR source item " + std::to_string(s) +
                                     " out of range (" + std::to_string(adj.num_items()) +
                                     " items)");
    }
  }
  return Status::OK();
}

template <typename Adj>
std::vector<ScoredItem> RunPpr(const Adj& adj, std::span<const NodeId> sources,
                               const PprOptions& o, PprScratch* s) {
  s->counter.Clear();
  // Expected distinct items is far below the visit count; the counter grows if needed.
  s->counter.Reserve(std::min<std::uint64_t>(adj.num_items(), 4096));
  PprDriver<Adj> driver(adj, sources, o, &s->counter);
  // The kernel's restart check after each step continues the geometric walk length.
  RunLanes(adj, &driver, &s->lanes, DefaultLanes(o.lanes), ProbabilityThreshold(o.restart));
  std::vector<NodeId> excluded(sources.begin(), sources.end());
  std::sort(excluded.begin(), excluded.end());
  std::vector<std::pair<std::uint32_t, NodeId>> cand;
  cand.reserve(s->counter.size());
  s->counter.ForEach([&](NodeId v, std::uint32_t c) {
    if (std::binary_search(excluded.begin(), excluded.end(), v)) return;
    cand.emplace_back(c, v);
  });
  s->counter.Clear();
  auto better = [](const std::pair<std::uint32_t, NodeId>& a,
                   const std::pair<std::uint32_t, NodeId>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::size_t keep = cand.size();
  if (o.top_k > 0 && o.top_k < keep) {
    keep = static_cast<std::size_t>(o.top_k);
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(),
                      better);
  } else {
    std::sort(cand.begin(), cand.end(), better);
  }
  const double scale = o.restart / static_cast<double>(o.walks);
  std::vector<ScoredItem> out(keep);
  for (std::size_t r = 0; r < keep; ++r) {
    out[r] = {cand[r].second, static_cast<float>(scale * cand[r].first)};
  }
  return out;
}

template <typename Adj>
Result<std::vector<ScoredItem>> Ppr(const Adj& adj, std::span<const NodeId> sources,
                                    const PprOptions& o) {
  PGRAPH_RETURN_IF_ERROR(ValidatePpr(o));
  PGRAPH_RETURN_IF_ERROR(CheckSources(adj, sources));
  PprScratch s;
  return RunPpr(adj, sources, o, &s);
}

}  // namespace

Result<std::vector<ScoredItem>> PersonalizedPageRank(const WalkGraph& graph, NodeId source,
                                                     const PprOptions& options) {
  return PersonalizedPageRank(graph, std::span<const NodeId>(&source, 1), options);
}

Result<std::vector<ScoredItem>> PersonalizedPageRank(const storage::Graph& graph, NodeId source,
                                                     const PprOptions& options) {
  return Ppr(GraphAdjacency(graph), std::span<const NodeId>(&source, 1), options);
}

Result<std::vector<ScoredItem>> PersonalizedPageRank(const WalkGraph& graph,
                                                     std::span<const NodeId> sources,
                                                     const PprOptions& options) {
  return WithViewAdjacency(graph, [&](const auto& adj) { return Ppr(adj, sources, options); });
}

Result<std::vector<std::vector<ScoredItem>>> PersonalizedPageRankBatch(
    const WalkGraph& graph, std::span<const NodeId> sources, const PprOptions& options) {
  PGRAPH_RETURN_IF_ERROR(ValidatePpr(options));
  return WithViewAdjacency(
      graph, [&](const auto& adj) -> Result<std::vector<std::vector<ScoredItem>>> {
        if (!sources.empty()) PGRAPH_RETURN_IF_ERROR(CheckSources(adj, sources));
        std::vector<std::vector<ScoredItem>> out(sources.size());
        tbb::enumerable_thread_specific<PprScratch> scratch;
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, sources.size(), 1),
                          [&](const tbb::blocked_range<std::size_t>& r) {
                            PprScratch& s = scratch.local();
                            for (std::size_t k = r.begin(); k != r.end(); ++k) {
                              out[k] = RunPpr(adj, sources.subspan(k, 1), options, &s);
                            }
                          });
        return out;
      });
}

RankWindow DefaultHardNegativeWindow(std::uint64_t num_items) {
  RankWindow w;
  w.lo = std::clamp<std::uint64_t>(num_items / 200, 10, 2000);
  w.hi = std::clamp<std::uint64_t>(num_items / 50, 40, 5000);
  return w;
}

Result<std::vector<NodeId>> HardNegativeWindow(const WalkGraph& graph, NodeId q,
                                               const HardNegativeOptions& options) {
  const std::uint64_t n = graph.num_items();
  if (q >= n) {
    return Status::InvalidArgument("item " + std::to_string(q) + " out of range (" +
                                   std::to_string(n) + " items)");
  }
  RankWindow w = options.window;
  if (w.lo == 0 && w.hi == 0) w = DefaultHardNegativeWindow(n);
  if (w.hi <= w.lo) {
    return Status::InvalidArgument("hard-negative rank window [" + std::to_string(w.lo) + ", " +
                                   std::to_string(w.hi) + ") is empty");
  }
  PprOptions po = options.ppr;
  po.top_k = 0;
  PGRAPH_ASSIGN_OR_RETURN(std::vector<ScoredItem> ranked, PersonalizedPageRank(graph, q, po));
  const std::uint64_t reached = ranked.size();
  if (reached < w.hi) {  // slide the window down, keeping its width
    const std::uint64_t width = w.hi - w.lo;
    w.hi = reached;
    w.lo = reached > width ? reached - width : 0;
  }
  std::vector<NodeId> window;
  window.reserve(w.hi - w.lo);
  for (std::uint64_t r = w.lo; r < w.hi; ++r) window.push_back(ranked[r].first);
  return window;
}

std::vector<NodeId> DrawFromHardNegativeWindow(std::span<const NodeId> window, NodeId q,
                                               std::uint64_t num_items, std::uint32_t count,
                                               const HardNegativeOptions& options,
                                               std::uint64_t seed) {
  std::vector<NodeId> out;
  out.reserve(count);
  std::uint64_t rng = WalkSeed(seed, q, 0x4A11D ^ options.ppr.seed);
  // Partial Fisher-Yates over a copy of the window.
  std::vector<NodeId> pool(window.begin(), window.end());
  for (std::uint32_t k = 0; k < count && k < pool.size(); ++k) {
    std::uint64_t j = k + PickBelow(NextRandom(&rng), pool.size() - k);
    std::swap(pool[k], pool[j]);
    out.push_back(pool[k]);
  }
  // Too few reached: uniform items (not q, not already drawn, when the catalogue allows).
  const bool distinct_possible = num_items > std::uint64_t{count};
  while (out.size() < count && num_items > 1) {
    NodeId v = static_cast<NodeId>(PickBelow(NextRandom(&rng), num_items));
    if (v == q) continue;
    if (distinct_possible && std::find(out.begin(), out.end(), v) != out.end()) continue;
    out.push_back(v);
  }
  return out;
}

Result<std::vector<NodeId>> DrawHardNegatives(const WalkGraph& graph, NodeId q,
                                              std::uint32_t count,
                                              const HardNegativeOptions& options,
                                              std::uint64_t seed) {
  PGRAPH_ASSIGN_OR_RETURN(std::vector<NodeId> window, HardNegativeWindow(graph, q, options));
  return DrawFromHardNegativeWindow(window, q, graph.num_items(), count, options, seed);
}

}  // namespace pgraph::walker
