// WalkGraph: the adjacency columns of a store as ColumnViews (zero-copy where raw in LMDB).
#include <algorithm>

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
}  // namespace

Result<std::unique_ptr<WalkGraph>> WalkGraph::Open(const storage::Store& store) {
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
  return g;
}

std::uint64_t WalkGraph::pinned_bytes() const {
  return item_offsets_.pinned_bytes() + ctx_offsets_.pinned_bytes() +
         item_targets_.pinned_bytes() + ctx_targets_.pinned_bytes();
}

}  // namespace pgraph::walker
