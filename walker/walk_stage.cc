// The `pgraph walk` stage: pairs, neighbourhoods, one atomic publication.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "walker/walk_kernel.h"
#include "walker/walker.h"

namespace pgraph::walker {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// True with probability `p`, decided by a hash of (seed, a, b): reproducible splits.
bool Chosen(double p, std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  if (p <= 0) return false;
  return (WalkSeed(seed ^ 0x4E1D0u, a, b) >> 11) * 0x1.0p-53 < p;
}

std::uint64_t PairKey(NodeId a, NodeId b) { return (std::uint64_t{a} << 32) | b; }

// Held-out pairs from the graph itself: for each chosen item q, an item sharing a random
// context with q (the relation co-occurrence training pairs are drawn from).
template <typename Adj>
std::vector<Pair> HoldOutFromGraph(const WalkGraph& g, const Adj& adj, double fraction,
                                   std::uint64_t seed) {
  std::vector<Pair> out;
  for (NodeId q = 0; q < g.num_items(); ++q) {
    if (!Chosen(fraction, seed, q, 0)) continue;
    const std::uint64_t b = adj.ItemBegin(q), d = adj.ItemEnd(q) - b;
    if (d == 0) continue;
    std::uint64_t rng = WalkSeed(seed ^ 0x4E1D1u, q, 0);
    for (int attempt = 0; attempt < 8; ++attempt) {
      NodeId c = adj.ItemTarget(q, adj.PickItemEdge(b, d, NextRandom(&rng)));
      const std::uint64_t cb = adj.CtxBegin(c), cd = adj.CtxEnd(c) - cb;
      NodeId i = adj.CtxTarget(c, adj.PickCtxEdge(cb, cd, NextRandom(&rng)));
      if (i != q) {
        out.emplace_back(q, i);
        break;
      }
    }
  }
  return out;
}

Status AppendPairs(storage::Update* u, const char* name, const std::vector<Pair>& pairs) {
  storage::ColumnSpec spec;
  spec.name = name;
  spec.dtype = storage::DType::kU32;
  spec.width = 2;
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * w, u->AddColumn(spec));
  std::vector<NodeId> flat;
  flat.reserve(pairs.size() * 2);
  for (auto [q, i] : pairs) {
    flat.push_back(q);
    flat.push_back(i);
  }
  if (!flat.empty()) PGRAPH_RETURN_IF_ERROR(w->AppendValues<NodeId>(flat));
  return Status::OK();
}

}  // namespace

std::uint32_t DefaultPairsPerItem(std::uint64_t items, std::uint64_t edges) {
  const std::uint64_t per_item = items ? (edges + items / 2) / items : 0;
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(per_item, 2, 10));
}

std::string WalkParamsJson(const WalkOptions& o, const PairOptions& p, EdgeWeighting weighting) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"top_t\": %u, \"walks_per_node\": %u, \"walk_length\": %u, \"restart\": %g, "
                "\"seed\": %llu, \"early_stop_nodes\": %u, \"early_stop_visits\": %u, "
                "\"step\": \"item-context-item, %s\", \"pairs\": \"%s\", "
                "\"pairs_per_item\": %u, \"min_visits\": %u, \"heldout_fraction\": %g}",
                o.top_t, o.walks_per_node, o.walk_length, o.restart,
                static_cast<unsigned long long>(o.seed), o.early_stop_nodes,
                o.early_stop_visits, EdgeWeightingName(weighting),
                p.pairs_path.empty() ? "cooccurrence" : "file", p.pairs_per_item, p.min_visits,
                p.heldout_fraction);
  return buf;
}

Result<WalkReport> RunWalkStage(storage::Store* store, const WalkStageOptions& options) {
  const auto t0 = Clock::now();
  WalkOptions wo = options.walk;
  PairOptions po = options.pairs;
  PGRAPH_RETURN_IF_ERROR(ValidateWalkOptions(wo));
  if (!(po.heldout_fraction >= 0.0 && po.heldout_fraction < 1.0)) {
    return Status::InvalidArgument("--heldout-fraction must be in [0, 1) (got " +
                                   std::to_string(po.heldout_fraction) + ")");
  }
  if (options.items_per_write < 1) return Status::InvalidArgument("items_per_write must be >= 1");
  if (store->options().read_only) {
    return Status::InvalidArgument("store '" + store->dir() + "' is open read-only");
  }
  PGRAPH_ASSIGN_OR_RETURN(std::unique_ptr<WalkGraph> graph,
                          WalkGraph::Open(*store, options.edge_weights));
  const std::uint64_t n = graph->num_items();
  if (po.pairs_per_item == 0) po.pairs_per_item = DefaultPairsPerItem(n, store->num_edges());
  WalkReport report;
  report.items = n;

  // 1. Pairs: held out first, then labelled (minus held out), both before any walk.
  std::vector<Pair> heldout, labelled;
  if (!po.heldout_path.empty() || !po.pairs_path.empty()) {
    PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(*store, NodeKind::kItem));
    if (!po.heldout_path.empty()) {
      PGRAPH_ASSIGN_OR_RETURN(heldout, ReadPairsFile(po.heldout_path, *ids, po.skip_unknown,
                                                     &report.skipped_pairs));
    }
    if (!po.pairs_path.empty()) {
      PGRAPH_ASSIGN_OR_RETURN(std::vector<Pair> all, ReadPairsFile(po.pairs_path, *ids,
                                                                   po.skip_unknown,
                                                                   &report.skipped_pairs));
      for (std::size_t k = 0; k < all.size(); ++k) {
        if (Chosen(po.heldout_fraction, wo.seed, PairKey(all[k].first, all[k].second), 1)) {
          heldout.push_back(all[k]);
        } else {
          labelled.push_back(all[k]);
        }
      }
    }
  }
  if (po.pairs_path.empty() && po.heldout_fraction > 0) {
    std::vector<Pair> more = WithViewAdjacency(*graph, [&](const auto& adj) {
      return HoldOutFromGraph(*graph, adj, po.heldout_fraction, wo.seed);
    });
    heldout.insert(heldout.end(), more.begin(), more.end());
  }
  std::sort(heldout.begin(), heldout.end());
  heldout.erase(std::unique(heldout.begin(), heldout.end()), heldout.end());
  std::vector<std::uint64_t> held_keys;  // both directions, sorted
  held_keys.reserve(heldout.size() * 2);
  for (auto [q, i] : heldout) {
    held_keys.push_back(PairKey(q, i));
    held_keys.push_back(PairKey(i, q));
  }
  std::sort(held_keys.begin(), held_keys.end());
  auto is_held = [&](NodeId q, NodeId i) {
    return std::binary_search(held_keys.begin(), held_keys.end(), PairKey(q, i));
  };
  std::vector<Pair> train;
  if (!po.pairs_path.empty()) {
    report.pairs_source = "file";
    for (auto [q, i] : labelled) {
      if (is_held(q, i)) {
        ++report.dropped_train_pairs;
        continue;
      }
      train.emplace_back(q, i);
    }
  } else {
    report.pairs_source = "cooccurrence";
  }
  wo.exclude = heldout;

  // 2. Neighbourhoods, round by round, appended in item order.
  PGRAPH_ASSIGN_OR_RETURN(std::unique_ptr<storage::Update> update, store->BeginUpdate());
  const std::uint32_t t = wo.top_t;
  storage::ColumnSpec ns{storage::columns::kWalkNeighbors, storage::DType::kU32, t, 0, -1};
  storage::ColumnSpec ws{storage::columns::kWalkWeights, storage::DType::kF32, t, 0, -1};
  storage::ColumnSpec cs{kWalkCounts, storage::DType::kU32, 1, 0, -1};
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * nw, update->AddColumn(ns));
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * ww, update->AddColumn(ws));
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * cw, update->AddColumn(cs));
  const bool cooccurrence = po.pairs_path.empty();
  std::vector<std::uint32_t> visits;
  // Every list, kept for the locality layout when it may be written and fits the budget.
  bool keep_lists = options.layout == LayoutMode::kOn ||
                    (options.layout == LayoutMode::kAuto && n >= kLayoutMinItems);
  if (keep_lists) {
    const std::uint64_t need = n * t * (sizeof(NodeId) + sizeof(float)) + LocalityLayoutBytes(n, t);
    if (need > store->options().memory_budget) {
      const std::string msg = "the locality layout needs " + std::to_string((need >> 20) + 1) +
                              " MiB of memory, the budget is " +
                              std::to_string(store->options().memory_budget >> 20) +
                              " MiB; raise --memory-budget";
      if (options.layout == LayoutMode::kOn) return Status::ResourceExhausted(msg);
      keep_lists = false;
      report.layout.note = msg + " (inference then orders the items itself)";
    }
  }
  std::vector<NodeId> all_nbrs;
  std::vector<float> all_wts;
  if (keep_lists) {
    all_nbrs.reserve(n * t);
    all_wts.reserve(n * t);
  }
  const auto tw = Clock::now();
  for (std::uint64_t first = 0; first < n; first += options.items_per_write) {
    const std::uint64_t count = std::min(options.items_per_write, n - first);
    PGRAPH_ASSIGN_OR_RETURN(
        Neighborhoods nb,
        ComputeNeighborhoodsWithVisits(*graph, static_cast<NodeId>(first), count, wo,
                                       cooccurrence ? &visits : nullptr));
    report.steps += nb.steps;
    for (std::uint64_t r = 0; r < count; ++r) {
      const NodeId q = static_cast<NodeId>(first + r);
      const std::uint32_t k = nb.counts[r];
      if (k < t) ++report.short_rows;
      if (graph->ItemDegree(q) == 0) ++report.isolated_items;
      if (!cooccurrence) continue;
      // pairs_per_item draws from q's visit distribution (with replacement) over the
      // neighbours visited at least min_visits times: positives in proportion to how
      // related they are, not only the top few, so the model sees the whole neighbourhood
      // and learns its order. Held-out pairs are already absent from N(q); is_held is a
      // second guard.
      const std::uint32_t* v = visits.data() + r * t;
      std::uint32_t eligible = 0;
      std::uint64_t total = 0;
      while (eligible < k && v[eligible] >= po.min_visits) total += v[eligible++];
      if (eligible == 0) continue;
      std::uint64_t state = WalkSeed(wo.seed ^ 0x9A1C5ull, q, 0);
      for (std::uint32_t d = 0; d < po.pairs_per_item; ++d) {
        std::uint64_t x = (static_cast<unsigned __int128>(NextRandom(&state)) * total) >> 64;
        std::uint32_t j = 0;
        while (x >= v[j]) x -= v[j++];  // visits are sorted descending: short scans
        const NodeId i = nb.neighbors[r * t + j];
        if (!is_held(q, i)) train.emplace_back(q, i);
      }
    }
    PGRAPH_RETURN_IF_ERROR(nw->AppendValues<NodeId>(nb.neighbors));
    PGRAPH_RETURN_IF_ERROR(ww->AppendValues<float>(nb.weights));
    if (keep_lists) {
      all_nbrs.insert(all_nbrs.end(), nb.neighbors.begin(), nb.neighbors.end());
      all_wts.insert(all_wts.end(), nb.weights.begin(), nb.weights.end());
    }
    PGRAPH_RETURN_IF_ERROR(cw->AppendValues<std::uint32_t>(nb.counts));
    if (options.progress) options.progress(first + count, n);
  }
  report.walk_seconds = Since(tw);
  if (keep_lists) {
    PGRAPH_ASSIGN_OR_RETURN(report.layout,
                            AddLocalityLayout(update.get(), all_nbrs, all_wts, n, t,
                                              nw->info().version, options.layout));
    all_nbrs = {};
    all_wts = {};
  } else if (!report.layout.note.empty()) {  // over the budget
    DropLocalityLayout(update.get());
  } else {  // off, or too few items to need one: AddLocalityLayout says so
    PGRAPH_ASSIGN_OR_RETURN(report.layout, AddLocalityLayout(update.get(), {}, {}, n, t, 0,
                                                             options.layout));
  }

  // 3. Pairs and metadata; one publication.
  PGRAPH_RETURN_IF_ERROR(AppendPairs(update.get(), storage::columns::kTrainPairs, train));
  PGRAPH_RETURN_IF_ERROR(AppendPairs(update.get(), storage::columns::kHeldOutPairs, heldout));
  report.train_pairs = train.size();
  report.heldout_pairs = heldout.size();
  report.edge_weights = graph->weighting();
  if (options.edge_weights == EdgeWeighting::kAuto &&
      report.edge_weights == EdgeWeighting::kUniform &&
      store->HasColumn(storage::columns::kItemWeights)) {
    report.note = "the store's edge weights were not used: walking by them needs " +
                  std::to_string((WeightedWalkBytes(store->num_edges()) >> 20) + 1) +
                  " MiB more than the memory budget has left; raise --memory-budget (or pass "
                  "--edge-weights log to make this an error)";
  }
  update->SetMeta(kWalkParamsMeta, WalkParamsJson(wo, po, report.edge_weights));
  if (!po.pairs_path.empty()) update->SetMeta("pairs.train.source", po.pairs_path);
  if (!po.heldout_path.empty()) update->SetMeta("pairs.heldout.source", po.heldout_path);
  update->SetCount("walk.top_t", t);
  update->SetCount("pairs.train", train.size());
  update->SetCount("pairs.heldout", heldout.size());
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  update.reset();
  PGRAPH_RETURN_IF_ERROR(store->Refresh());
  report.seconds = Since(t0);
  return report;
}

}  // namespace pgraph::walker
