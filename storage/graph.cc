// Graph: CSR adjacency views over the ingest columns.
#include <algorithm>
#include <cmath>

#include "storage/store.h"

namespace pgraph::storage {

namespace {
template <typename T>
Status OpenView(const Store& store, const char* name, std::uint64_t* budget_left,
                ColumnView<T>* out) {
  PGRAPH_ASSIGN_OR_RETURN(const Column* col, store.OpenColumn(name));
  PGRAPH_ASSIGN_OR_RETURN(*out, ColumnView<T>::Make(*col, *budget_left));
  *budget_left -= std::min(*budget_left, out->pinned_bytes());
  return Status::OK();
}

DegreeSummary Summarise(const ColumnView<std::uint64_t>& offsets, std::uint64_t n) {
  DegreeSummary s;
  if (n == 0) return s;
  std::vector<std::uint64_t> d(n);
  for (std::uint64_t i = 0; i < n; ++i) d[i] = offsets[i + 1] - offsets[i];
  std::sort(d.begin(), d.end());
  s.min = d.front();
  s.max = d.back();
  s.zero = static_cast<std::uint64_t>(std::lower_bound(d.begin(), d.end(), 1) - d.begin());
  double sum = 0;
  for (auto v : d) sum += static_cast<double>(v);
  s.mean = sum / static_cast<double>(n);
  auto pct = [&](double p) {
    return static_cast<double>(d[std::min<std::uint64_t>(n - 1, static_cast<std::uint64_t>(p * n))]);
  };
  s.p50 = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  return s;
}
}  // namespace

Result<std::unique_ptr<Graph>> Graph::Open(const Store& store) {
  std::unique_ptr<Graph> g(new Graph());
  g->num_items_ = store.num_items();
  g->num_contexts_ = store.num_contexts();
  g->num_edges_ = store.num_edges();
  if (!store.HasColumn(columns::kItemOffsets)) {
    return Status::InvalidArgument("store '" + store.dir() + "' has no adjacency (run pgraph ingest)");
  }
  std::uint64_t budget = store.options().memory_budget;
  PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kItemOffsets, &budget, &g->item_offsets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kContextOffsets, &budget, &g->ctx_offsets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kItemTargets, &budget, &g->item_targets_));
  PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kContextTargets, &budget, &g->ctx_targets_));
  g->weighted_ = store.HasColumn(columns::kItemWeights);
  if (g->weighted_) {
    PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kItemWeights, &budget, &g->item_weights_));
    PGRAPH_RETURN_IF_ERROR(OpenView(store, columns::kContextWeights, &budget, &g->ctx_weights_));
  }
  if (g->item_offsets_.size() != g->num_items_ + 1 ||
      g->ctx_offsets_.size() != g->num_contexts_ + 1 ||
      g->item_targets_.size() != g->num_edges_ || g->ctx_targets_.size() != g->num_edges_) {
    return Status::Corruption("store '" + store.dir() + "': adjacency sizes disagree with counts");
  }
  return g;
}

void Graph::ItemNeighbors(NodeId item, std::vector<NodeId>* out, std::vector<float>* w) const {
  for (EdgeIndex e = item_offsets_[item]; e < item_offsets_[item + 1]; ++e) {
    out->push_back(item_targets_[e]);
    if (w) w->push_back(weighted_ ? item_weights_[e] : 1.0f);
  }
}

void Graph::ContextNeighbors(NodeId ctx, std::vector<NodeId>* out, std::vector<float>* w) const {
  for (EdgeIndex e = ctx_offsets_[ctx]; e < ctx_offsets_[ctx + 1]; ++e) {
    out->push_back(ctx_targets_[e]);
    if (w) w->push_back(weighted_ ? ctx_weights_[e] : 1.0f);
  }
}

DegreeSummary Graph::ItemDegrees() const { return Summarise(item_offsets_, num_items_); }
DegreeSummary Graph::ContextDegrees() const { return Summarise(ctx_offsets_, num_contexts_); }

}  // namespace pgraph::storage
