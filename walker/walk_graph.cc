// WalkGraph: the adjacency columns of a store as ColumnViews (zero-copy where raw in LMDB).
#include <algorithm>
#include <cmath>

#include "walker/walker.h"

namespace pgraph::walker {

namespace {
template <typename T>
Status OpenView(const storage::Store& store, const char* name, std::uint64_t* budget_left,
                storage::ColumnView<T>* out) {
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* col, store.OpenColumn(name));
  PGRAPH_ASSIGN_OR_RETURN(*out, storage::ColumnView<T>::Make(*col, *budget_left));
  *budget_left -= std::min(*budget_left, out->pinned_bytes());
  return Status::OK();
}
// Per edge of one CSR direction, the running sum of f(weight) over its node's edges.
Status CumulativeWeights(const storage::Store& store, const char* weights_name,
                         const storage::ColumnView<std::uint64_t>& offsets, std::uint64_t nodes,
                         EdgeWeighting weighting, std::uint64_t* budget_left,
                         std::vector<float>* cum) {
  if (!store.HasColumn(weights_name)) {
    return Status::InvalidArgument("store '" + store.dir() +
                                   "' has no edge weights (ingested from an edge list without a "
                                   "weight column); weighted walks need them");
  }
  const std::uint64_t edges = offsets[nodes];
  const std::uint64_t need = edges * sizeof(float);
  if (need > *budget_left) {
    return Status::ResourceExhausted(
        "store '" + store.dir() + "': weighted walks need " + std::to_string(need >> 20) +
        " MiB of cumulative weights for '" + weights_name +
        "', more than the memory budget has left; raise --memory-budget");
  }
  *budget_left -= need;
  storage::ColumnView<float> w;
  PGRAPH_RETURN_IF_ERROR(OpenView(store, weights_name, budget_left, &w));
  if (w.size() != edges) {
    return Status::Corruption("store '" + store.dir() + "': column '" + weights_name +
                              "' has " + std::to_string(w.size()) + " rows for " +
                              std::to_string(edges) + " edges");
  }
  cum->resize(edges);
  for (std::uint64_t v = 0; v < nodes; ++v) {
    float sum = 0;
    for (std::uint64_t e = offsets[v], end = offsets[v + 1]; e < end; ++e) {
      const float x = w[e];
      if (!(x >= 0) || !std::isfinite(x)) {
        return Status::InvalidArgument("store '" + store.dir() + "': edge " + std::to_string(e) +
                                       " of '" + weights_name + "' has weight " +
                                       std::to_string(x) +
                                       "; weighted walks need finite weights >= 0");
      }
      sum += weighting == EdgeWeighting::kLog ? std::log1p(x) : x;
      (*cum)[e] = sum;
    }
  }
  // The view's pinned chunks (compressed columns) are released here; only `cum` stays.
  *budget_left += w.pinned_bytes();
  return Status::OK();
}

}  // namespace

Result<EdgeWeighting> ParseEdgeWeighting(std::string_view name) {
  if (name == "uniform") return EdgeWeighting::kUniform;
  if (name == "linear") return EdgeWeighting::kLinear;
  if (name == "log") return EdgeWeighting::kLog;
  if (name == "auto") return EdgeWeighting::kAuto;
  return Status::InvalidArgument("edge weighting '" + std::string(name) +
                                 "' (expected auto, uniform, linear or log)");
}

const char* EdgeWeightingName(EdgeWeighting weighting) {
  switch (weighting) {
    case EdgeWeighting::kLinear: return "linear";
    case EdgeWeighting::kLog: return "log";
    case EdgeWeighting::kAuto: return "auto";
    case EdgeWeighting::kUniform: break;
  }
  return "uniform";
}

Result<std::unique_ptr<WalkGraph>> WalkGraph::Open(const storage::Store& store,
                                                   EdgeWeighting weighting) {
  namespace cols = storage::columns;
  for (const char* name : {cols::kItemOffsets, cols::kItemTargets, cols::kContextOffsets,
                           cols::kContextTargets}) {
    if (!store.HasColumn(name)) {
      return Status::InvalidArgument("store '" + store.dir() + "' has no adjacency (column '" +
                                     name + "' missing; run pgraph ingest first)");
    }
  }
  std::unique_ptr<WalkGraph> g(new WalkGraph());
  g->num_items_ = store.num_items();
  g->num_contexts_ = store.num_contexts();
  g->num_edges_ = store.num_edges();
  if (g->num_items_ >= kInvalidNode || g->num_contexts_ >= kInvalidNode) {
    return Status::Corruption("store '" + store.dir() + "': item or context count too large");
  }
  std::uint64_t budget = store.options().memory_budget;
  PGRAPH_RETURN_IF_ERROR(OpenView(store, cols::kItemOffsets, &budget, &g->item_offsets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, cols::kContextOffsets, &budget, &g->ctx_offsets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, cols::kItemTargets, &budget, &g->item_targets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, cols::kContextTargets, &budget, &g->ctx_targets_));
  if (g->item_offsets_.size() != g->num_items_ + 1 ||
      g->ctx_offsets_.size() != g->num_contexts_ + 1 ||
      g->item_targets_.size() != g->num_edges_ || g->ctx_targets_.size() != g->num_edges_) {
    return Status::Corruption("store '" + store.dir() + "': adjacency sizes disagree with counts");
  }
  // Offsets must be monotone and end at the edge count, or walks would read out of bounds.
  if (g->item_offsets_[0] != 0 || g->item_offsets_[g->num_items_] != g->num_edges_ ||
      g->ctx_offsets_[0] != 0 || g->ctx_offsets_[g->num_contexts_] != g->num_edges_) {
    return Status::Corruption("store '" + store.dir() + "': adjacency offsets are inconsistent");
  }
  if (weighting == EdgeWeighting::kAuto) {
    // The default must not make a walk that used to run fail: log weights only where their
    // cumulative sums fit the budget (WalkStage reports when they did not).
    const bool fits = WeightedWalkBytes(g->num_edges_) <= budget;
    weighting = store.HasColumn(cols::kItemWeights) && fits ? EdgeWeighting::kLog
                                                           : EdgeWeighting::kUniform;
  }
  g->weighting_ = weighting;
  if (weighting != EdgeWeighting::kUniform) {
    PGRAPH_RETURN_IF_ERROR(CumulativeWeights(store, cols::kItemWeights, g->item_offsets_,
                                             g->num_items_, weighting, &budget, &g->item_cum_));
    PGRAPH_RETURN_IF_ERROR(CumulativeWeights(store, cols::kContextWeights, g->ctx_offsets_,
                                             g->num_contexts_, weighting, &budget,
                                             &g->ctx_cum_));
  }
  return g;
}

std::uint64_t WalkGraph::pinned_bytes() const {
  return item_offsets_.pinned_bytes() + ctx_offsets_.pinned_bytes() +
         item_targets_.pinned_bytes() + ctx_targets_.pinned_bytes() +
         (item_cum_.size() + ctx_cum_.size()) * sizeof(float);
}

}  // namespace pgraph::walker
