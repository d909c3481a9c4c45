// IdMap: external id lookup by binary search over the sorted (hash, dense id) index column.
#include "storage/store.h"

namespace pgraph::storage {

Result<std::unique_ptr<IdMap>> IdMap::Open(const Store& store, NodeKind kind) {
  std::unique_ptr<IdMap> m(new IdMap());
  bool item = kind == NodeKind::kItem;
  m->kind_name_ = item ? "item" : "context";
  m->size_ = item ? store.num_items() : store.num_contexts();
  PGRAPH_ASSIGN_OR_RETURN(m->bytes_, store.OpenColumn(item ? columns::kItemIdBytes
                                                           : columns::kContextIdBytes));
  PGRAPH_ASSIGN_OR_RETURN(m->offsets_, store.OpenColumn(item ? columns::kItemIdOffsets
                                                             : columns::kContextIdOffsets));
  PGRAPH_ASSIGN_OR_RETURN(m->index_, store.OpenColumn(item ? columns::kItemIdIndex
                                                           : columns::kContextIdIndex));
  if (m->offsets_->info().rows != m->size_ + 1 || m->index_->info().rows != m->size_ ||
      m->index_->info().width != 2) {
    return Status::Corruption("store '" + store.dir() + "': " + m->kind_name_ +
                              " id columns disagree with counts");
  }
  return m;
}

Result<std::string> IdMap::Name(NodeId id) const {
  if (id >= size_) {
    return Status::InvalidArgument(std::string(kind_name_) + " " + std::to_string(id) +
                                   " out of range (" + std::to_string(size_) + ")");
  }
  std::uint64_t off[2];
  PGRAPH_RETURN_IF_ERROR(offsets_->ReadRows(id, 2, std::as_writable_bytes(std::span(off))));
  std::string name(off[1] - off[0], '\0');
  PGRAPH_RETURN_IF_ERROR(bytes_->ReadRows(
      off[0], off[1] - off[0], std::as_writable_bytes(std::span<char>(name.data(), name.size()))));
  return name;
}

Result<NodeId> IdMap::Find(std::string_view name) const {
  std::uint64_t h = HashId(name);
  std::uint64_t lo = 0, hi = size_;
  std::uint64_t row[2];
  auto read = [&](std::uint64_t i) {
    return index_->ReadRows(i, 1, std::as_writable_bytes(std::span(row)));
  };
  while (lo < hi) {  // first row with hash >= h
    std::uint64_t mid = lo + (hi - lo) / 2;
    PGRAPH_RETURN_IF_ERROR(read(mid));
    if (row[0] < h) lo = mid + 1;
    else hi = mid;
  }
  for (std::uint64_t i = lo; i < size_; ++i) {
    PGRAPH_RETURN_IF_ERROR(read(i));
    if (row[0] != h) break;
    PGRAPH_ASSIGN_OR_RETURN(std::string candidate, Name(static_cast<NodeId>(row[1])));
    if (candidate == name) return static_cast<NodeId>(row[1]);
  }
  return Status::NotFound("unknown " + std::string(kind_name_) + " id '" + std::string(name) + "'");
}

}  // namespace pgraph::storage
