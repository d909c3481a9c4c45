// The locality layout of the walk's neighbourhoods (walker.h, "Locality order and layout").
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "walker/walker.h"

namespace pgraph::walker {
namespace {

// The window of the share reported and tested (infer's auto rule uses the same).
constexpr std::uint64_t kShareWindow = 4096;
// Rows of laid-out lists built and appended at a time.
constexpr std::uint64_t kRowsPerAppend = 1 << 16;

std::string LayoutMetaValue(std::uint64_t version, double share) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "neighbors_version=%" PRIu64 " share=%.4f", version, share);
  return buf;
}

// The walk.neighbors version named by a layout meta value; false when there is none.
bool LayoutVersion(const std::string& meta, std::uint64_t* version) {
  std::uint64_t v = 0;
  if (std::sscanf(meta.c_str(), "neighbors_version=%" SCNu64, &v) != 1) return false;
  *version = v;
  return true;
}

Result<storage::ColumnWriter*> AddRawColumn(storage::Update* update, const char* name,
                                            storage::DType dtype, std::uint32_t width) {
  storage::ColumnSpec spec;
  spec.name = name;
  spec.dtype = dtype;
  spec.width = width;
  spec.codec = static_cast<int>(storage::Codec::kNone);  // zero-copy reads from LMDB's map
  return update->AddColumn(spec);
}

}  // namespace

void DropLocalityLayout(storage::Update* update) {
  for (const char* name : {kLayoutOrder, kLayoutNeighbors, kLayoutWeights}) {
    update->DropColumn(name);
  }
  update->SetMeta(kLayoutMeta, "");
}

Result<LayoutMode> ParseLayoutMode(std::string_view name) {
  if (name == "auto") return LayoutMode::kAuto;
  if (name == "on") return LayoutMode::kOn;
  if (name == "off") return LayoutMode::kOff;
  return Status::InvalidArgument("unknown --layout '" + std::string(name) +
                                 "' (expected auto, on or off)");
}

std::uint64_t LocalityLayoutBytes(std::uint64_t items, std::uint32_t T) {
  return items * 2 * sizeof(NodeId) + LocalityOrderScratchBytes(items) +
         std::min(items, kRowsPerAppend) * T * (sizeof(NodeId) + sizeof(float));
}

Result<LayoutReport> AddLocalityLayout(storage::Update* update, std::span<const NodeId> nbrs,
                                       std::span<const float> wts, std::uint64_t items,
                                       std::uint32_t T, std::uint64_t neighbors_version,
                                       LayoutMode mode) {
  const auto t0 = std::chrono::steady_clock::now();
  LayoutReport r;
  if (mode == LayoutMode::kOff) {
    DropLocalityLayout(update);
    r.note = "--layout off";
    return r;
  }
  if (mode == LayoutMode::kAuto && items < kLayoutMinItems) {
    DropLocalityLayout(update);
    r.note = "fewer than " + std::to_string(kLayoutMinItems) +
             " items: inference keeps their rows in the caches in any order";
    return r;
  }
  if (T == 0 || nbrs.size() != items * T || wts.size() != items * T) {
    return Status::InvalidArgument("locality layout: lists of " + std::to_string(nbrs.size()) +
                                   " ids and " + std::to_string(wts.size()) + " weights for " +
                                   std::to_string(items) + " items of width " +
                                   std::to_string(T));
  }
  for (std::uint64_t e = 0; e < nbrs.size(); ++e) {
    if (nbrs[e] != kInvalidNode && nbrs[e] >= items) {
      return Status::InvalidArgument("locality layout: item " + std::to_string(e / T) +
                                     " names neighbour " + std::to_string(nbrs[e]) + " of " +
                                     std::to_string(items) + " items");
    }
  }
  const LocalityOrder o = ComputeLocalityOrder(nbrs.data(), wts.data(), items, T);
  r.share = LocalityShare(o, nbrs.data(), items, T, kShareWindow,
                          std::max<std::uint64_t>(1, items / 65536));
  if (mode == LayoutMode::kAuto && r.share < kLayoutMinShare) {
    DropLocalityLayout(update);
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "the neighbourhoods have no locality to exploit (%.0f%% within %llu positions)",
                  100.0 * r.share, static_cast<unsigned long long>(kShareWindow));
    r.note = buf;
    return r;
  }
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * ow,
                          AddRawColumn(update, kLayoutOrder, storage::DType::kU32, 1));
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * nw,
                          AddRawColumn(update, kLayoutNeighbors, storage::DType::kU32, T));
  PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * ww,
                          AddRawColumn(update, kLayoutWeights, storage::DType::kF32, T));
  PGRAPH_RETURN_IF_ERROR(ow->AppendValues<NodeId>(o.order));
  std::vector<NodeId> rows_n(std::min(items, kRowsPerAppend) * T);
  std::vector<float> rows_w(rows_n.size());
  for (std::uint64_t first = 0; first < items; first += kRowsPerAppend) {
    const std::uint64_t n = std::min(kRowsPerAppend, items - first);
    tbb::parallel_for(std::uint64_t{0}, n, [&](std::uint64_t i) {
      const std::uint64_t from = static_cast<std::uint64_t>(o.order[first + i]) * T;
      for (std::uint32_t t = 0; t < T; ++t) {
        const NodeId v = nbrs[from + t];
        rows_n[i * T + t] = v == kInvalidNode ? kInvalidNode : o.pos[v];
        rows_w[i * T + t] = wts[from + t];
      }
    });
    PGRAPH_RETURN_IF_ERROR(nw->AppendValues<NodeId>(std::span(rows_n).first(n * T)));
    PGRAPH_RETURN_IF_ERROR(ww->AppendValues<float>(std::span(rows_w).first(n * T)));
  }
  update->SetMeta(kLayoutMeta, LayoutMetaValue(neighbors_version, r.share));
  r.written = true;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Result<LayoutReport> WriteLocalityLayout(storage::Store* store, LayoutMode mode) {
  namespace cols = storage::columns;
  if (!store->HasColumn(cols::kWalkNeighbors) || !store->HasColumn(cols::kWalkWeights)) {
    return Status::NotFound("no walk.neighbors / walk.weights in " + store->dir() +
                            " (run `pgraph walk` first)");
  }
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* nc, store->OpenColumn(cols::kWalkNeighbors));
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* wc, store->OpenColumn(cols::kWalkWeights));
  const storage::ColumnInfo& ni = nc->info();
  if (ni.dtype != storage::DType::kU32 || wc->info().rows != ni.rows ||
      wc->info().width != ni.width) {
    return Status::InvalidArgument("walk.neighbors (u32 x T) and walk.weights (f32 x T) of " +
                                   store->dir() + " disagree");
  }
  std::vector<NodeId> nbrs(ni.rows * ni.width);
  std::vector<float> wts(nbrs.size());
  PGRAPH_RETURN_IF_ERROR(nc->ReadRows(0, ni.rows, std::as_writable_bytes(std::span(nbrs))));
  PGRAPH_RETURN_IF_ERROR(wc->ReadRowsAsFloat(0, ni.rows, wts));
  PGRAPH_ASSIGN_OR_RETURN(auto update, store->BeginUpdate());
  PGRAPH_ASSIGN_OR_RETURN(LayoutReport r, AddLocalityLayout(update.get(), nbrs, wts, ni.rows,
                                                            ni.width, ni.version, mode));
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  update.reset();
  PGRAPH_RETURN_IF_ERROR(store->Refresh());
  return r;
}

bool HasCurrentLayout(const storage::Store& store) {
  namespace cols = storage::columns;
  for (const char* name : {cols::kWalkNeighbors, kLayoutOrder, kLayoutNeighbors, kLayoutWeights}) {
    if (!store.HasColumn(name)) return false;
  }
  auto meta = store.GetMeta(kLayoutMeta);
  std::uint64_t version = 0;
  if (!meta.ok() || !LayoutVersion(meta.value(), &version)) return false;
  auto nc = store.OpenColumn(cols::kWalkNeighbors);
  auto oc = store.OpenColumn(kLayoutOrder);
  auto lc = store.OpenColumn(kLayoutNeighbors);
  auto wc = store.OpenColumn(kLayoutWeights);
  if (!nc.ok() || !oc.ok() || !lc.ok() || !wc.ok()) return false;
  const storage::ColumnInfo& ni = nc.value()->info();
  const storage::ColumnInfo& oi = oc.value()->info();
  const storage::ColumnInfo& li = lc.value()->info();
  const storage::ColumnInfo& wi = wc.value()->info();
  // Raw lists only: inference uses their chunks in place for as long as the store is open.
  return version == ni.version && oi.dtype == storage::DType::kU32 && oi.width == 1 &&
         oi.rows == ni.rows && li.dtype == storage::DType::kU32 && li.width == ni.width &&
         li.rows == ni.rows && li.codec == storage::Codec::kNone &&
         wi.dtype == storage::DType::kF32 && wi.width == ni.width && wi.rows == ni.rows &&
         wi.codec == storage::Codec::kNone;
}

}  // namespace pgraph::walker
