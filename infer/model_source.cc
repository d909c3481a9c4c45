#include "infer/model_source.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "train/batch.h"

namespace pgraph::infer {
namespace {

namespace cols = storage::columns;

// Serves rows of an already read block [first, first+n) to TruncatedNeighborhoods.
class BlockNeighborhoods final : public train::NeighborhoodSource {
 public:
  BlockNeighborhoods(std::uint64_t items, std::uint32_t width, std::uint64_t first,
                     std::span<const NodeId> nbrs, std::span<const float> wts)
      : items_(items), width_(width), first_(first), nbrs_(nbrs), wts_(wts) {}
  std::uint64_t num_items() const override { return items_; }
  std::uint32_t width() const override { return width_; }
  Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
             std::span<float> weights) const override {
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const std::uint64_t r = ids[j] - first_;
      std::memcpy(neighbors.data() + j * width_, nbrs_.data() + r * width_,
                  width_ * sizeof(NodeId));
      std::memcpy(weights.data() + j * width_, wts_.data() + r * width_, width_ * sizeof(float));
    }
    return Status::OK();
  }

 private:
  std::uint64_t items_;
  std::uint32_t width_;
  std::uint64_t first_;
  std::span<const NodeId> nbrs_;
  std::span<const float> wts_;
};

}  // namespace

Result<ModelSource> LoadModelSource(const storage::Store& store, std::string_view model_store) {
  ModelSource m;
  std::unique_ptr<storage::Store> other;
  const storage::Store* from = &store;
  if (!model_store.empty()) {
    storage::StoreOptions so;
    so.read_only = true;
    so.memory_budget = 16ull << 20;
    PGRAPH_ASSIGN_OR_RETURN(other, storage::Store::Open(model_store, so));
    from = other.get();
  }
  PGRAPH_ASSIGN_OR_RETURN(m.model, train::LoadModel(*from));
  m.config = m.model->config;
  m.in_dim = m.config.input_dim();
  m.neighbors = m.config.neighbors;
  std::uint64_t ckpt_version = 0;
  if (auto c = from->OpenColumn("checkpoint"); c.ok()) ckpt_version = c.value()->info().version;
  m.fingerprint = "checkpoint=" + std::to_string(ckpt_version) + "@" +
                  (model_store.empty() ? std::string("self") : std::string(model_store)) +
                  " epoch=" + std::to_string(from->count("train.epoch"));
  const std::uint64_t items = store.num_items();
  if (model_store.empty()) {
    m.new_items = items > m.config.num_items ? items - m.config.num_items : 0;
  }
  if (m.config.id_embedding_dim > 0) {
    m.id_weight = m.model->id_embedding->weight.detach().contiguous();
    m.id_rows.resize(items);
    if (model_store.empty()) {
      for (std::uint64_t u = 0; u < items; ++u) {
        m.id_rows[u] = u < m.config.num_items ? static_cast<std::int64_t>(u) : -1;
      }
    }
  }
  if (!model_store.empty()) {
    // Items are matched to the training store by external id.
    PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(store, NodeKind::kItem));
    PGRAPH_ASSIGN_OR_RETURN(auto old_ids, storage::IdMap::Open(*from, NodeKind::kItem));
    for (std::uint64_t u = 0; u < items; ++u) {
      PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(static_cast<NodeId>(u)));
      auto old = old_ids->Find(name);
      std::int64_t row = old.ok() && old.value() < m.config.num_items
                             ? static_cast<std::int64_t>(old.value())
                             : -1;
      if (row < 0) ++m.new_items;
      if (!m.id_rows.empty()) m.id_rows[u] = row;
    }
  }
  return m;
}

Result<InputColumns> OpenInputColumns(const storage::Store& store, const ModelSource& model) {
  InputColumns c;
  const char* hint = " (run `pgraph walk` first)";
  for (const char* name : {cols::kWalkNeighbors, cols::kWalkWeights}) {
    if (!store.HasColumn(name)) {
      return Status::NotFound(std::string("column ") + name + " not found in " + store.dir() +
                              hint);
    }
  }
  PGRAPH_ASSIGN_OR_RETURN(c.neighbors, store.OpenColumn(cols::kWalkNeighbors));
  PGRAPH_ASSIGN_OR_RETURN(c.weights, store.OpenColumn(cols::kWalkWeights));
  const auto& ni = c.neighbors->info();
  const auto& wi = c.weights->info();
  if (ni.dtype != storage::DType::kU32 || wi.dtype != storage::DType::kF32 ||
      ni.width != wi.width || ni.rows != wi.rows) {
    return Status::InvalidArgument("walk.neighbors (u32 x T) and walk.weights (f32 x T) disagree");
  }
  c.items = ni.rows;
  c.width = ni.width;
  if (model.config.structural_dim > 0) {
    // The degree feature: an item's degree is its own edge count in this store, so items
    // ingested after training get theirs too.
    auto off = store.OpenColumn(cols::kItemOffsets);
    if (!off.ok() || off.value()->info().dtype != storage::DType::kU64 ||
        off.value()->info().rows != c.items + 1) {
      return Status::InvalidArgument(
          "the checkpoint uses the degree feature, but " + std::string(cols::kItemOffsets) +
          " in " + store.dir() + " is missing or does not match walk.neighbors");
    }
    c.item_offsets = off.value();
  }
  if (store.HasColumn(cols::kFeatures)) {
    PGRAPH_ASSIGN_OR_RETURN(c.features, store.OpenColumn(cols::kFeatures));
    if (c.features->info().rows != c.items) {
      return Status::InvalidArgument("features has " + std::to_string(c.features->info().rows) +
                                     " rows, walk.neighbors " + std::to_string(c.items));
    }
  }
  const std::uint32_t fdim = c.features ? c.features->info().width : 0;
  if (fdim != model.config.feature_dim) {
    return Status::InvalidArgument("the checkpoint expects " +
                                   std::to_string(model.config.feature_dim) +
                                   " features per item, the store has " + std::to_string(fdim));
  }
  if (model.neighbors == 0 || model.neighbors > c.width) {
    // A model trained with T <= the walk width; 0 means "all".
    if (model.neighbors > c.width) {
      return Status::InvalidArgument("the checkpoint used " + std::to_string(model.neighbors) +
                                     " neighbours, the walk columns hold " +
                                     std::to_string(c.width));
    }
  }
  if (!model.id_rows.empty() && model.id_rows.size() != c.items) {
    return Status::InvalidArgument("store item count changed while opening");
  }
  return c;
}

Status ReadInputRows(const InputColumns& cols, const ModelSource& model, std::uint64_t first,
                     std::uint64_t n, std::span<float> out, std::vector<float>* scratch) {
  const std::uint32_t F = model.config.feature_dim, S = model.config.structural_dim;
  const std::uint32_t I = model.config.id_embedding_dim;
  const std::uint32_t in = F + S + I;
  if (I == 0 && S == 0) return cols.features->ReadRowsAsFloat(first, n, out.first(n * in));
  if (F > 0) {
    scratch->resize(n * F);
    PGRAPH_RETURN_IF_ERROR(cols.features->ReadRowsAsFloat(first, n, *scratch));
  }
  std::vector<std::uint64_t> offsets(S > 0 ? n + 1 : 0);
  if (S > 0) {
    PGRAPH_RETURN_IF_ERROR(
        cols.item_offsets->ReadRows(first, n + 1, std::as_writable_bytes(std::span(offsets))));
  }
  const float* idw = I > 0 ? model.id_weight.data_ptr<float>() : nullptr;
  for (std::uint64_t r = 0; r < n; ++r) {
    float* row = out.data() + r * in;
    if (F > 0) std::memcpy(row, scratch->data() + r * F, F * sizeof(float));
    if (S > 0) row[F] = train::DegreeFeature(model.config, offsets[r + 1] - offsets[r]);
    if (I == 0) continue;
    const std::int64_t id = model.id_rows[first + r];
    if (id >= 0) {
      std::memcpy(row + F + S, idw + id * I, I * sizeof(float));
    } else {
      std::fill(row + F + S, row + in, 0.0f);
    }
  }
  return Status::OK();
}

Result<InputGather> InputGather::Make(const InputColumns& cols, const ModelSource& model,
                                      std::uint64_t max_pinned_bytes) {
  InputGather g;
  g.model_ = &model;
  if (model.config.feature_dim > 0) {
    const storage::ColumnInfo& fi = cols.features->info();
    if (fi.dtype != storage::DType::kF32 || fi.codec != storage::Codec::kNone ||
        fi.rows_per_chunk == 0 || (fi.rows_per_chunk & (fi.rows_per_chunk - 1)) != 0) {
      return Status::NotSupported("features are not raw float32 chunks");
    }
    while ((1ull << g.shift_) < fi.rows_per_chunk) ++g.shift_;
    g.mask_ = (1ull << g.shift_) - 1;
    for (std::uint64_t c = 0; c < fi.num_chunks(); ++c) {
      PGRAPH_ASSIGN_OR_RETURN(storage::ChunkRef ref, cols.features->ReadChunk(c));
      if (ref.hold) return Status::NotSupported("features are not in LMDB's map");
      g.chunks_.push_back(reinterpret_cast<const float*>(ref.bytes.data()));
    }
  }
  if (model.config.structural_dim > 0) {
    PGRAPH_ASSIGN_OR_RETURN(g.offsets_, storage::ColumnView<std::uint64_t>::Make(
                                            *cols.item_offsets, max_pinned_bytes));
  }
  return g;
}

void InputGather::Gather(std::span<const NodeId> ids, float* out) const {
  const std::uint32_t F = model_->config.feature_dim, S = model_->config.structural_dim;
  const std::uint32_t I = model_->config.id_embedding_dim;
  const std::uint32_t in = F + S + I;
  const float* idw = I > 0 ? model_->id_weight.data_ptr<float>() : nullptr;
  auto feature_row = [&](NodeId u) { return chunks_[u >> shift_] + (u & mask_) * F; };
  constexpr std::size_t kAhead = 8;  // rows read at random: ask for them early
  for (std::size_t r = 0; r < ids.size(); ++r) {
    const NodeId u = ids[r];
    if (F > 0 && r + kAhead < ids.size()) {
      const char* next = reinterpret_cast<const char*>(feature_row(ids[r + kAhead]));
      for (std::uint32_t b = 0; b < F * sizeof(float); b += 64) __builtin_prefetch(next + b);
    }
    float* row = out + r * in;
    if (F > 0) std::memcpy(row, feature_row(u), F * sizeof(float));
    if (S > 0) row[F] = train::DegreeFeature(model_->config, offsets_[u + 1] - offsets_[u]);
    if (I == 0) continue;
    const std::int64_t id = model_->id_rows[u];
    if (id >= 0) {
      std::memcpy(row + F + S, idw + id * I, I * sizeof(float));
    } else {
      std::fill(row + F + S, row + in, 0.0f);
    }
  }
}

Status ReadNeighborRows(const InputColumns& cols, const ModelSource& model, std::uint64_t first,
                        std::uint64_t n, std::vector<NodeId>* nbrs, std::vector<float>* wts) {
  const std::uint32_t T = cols.width;
  const std::uint32_t Tu = model.neighbors == 0 ? T : model.neighbors;
  nbrs->resize(n * T);
  wts->resize(n * T);
  PGRAPH_RETURN_IF_ERROR(
      cols.neighbors->ReadRows(first, n, std::as_writable_bytes(std::span(*nbrs))));
  PGRAPH_RETURN_IF_ERROR(cols.weights->ReadRowsAsFloat(first, n, *wts));
  if (Tu < T) {
    std::vector<NodeId> full_n = std::move(*nbrs);
    std::vector<float> full_w = std::move(*wts);
    nbrs->assign(n * Tu, kInvalidNode);
    wts->assign(n * Tu, 0.0f);
    PGRAPH_RETURN_IF_ERROR(TruncateLists(full_n, full_w, n, T, Tu, *nbrs, *wts));
  }
  return CheckNeighborIds(*nbrs, cols.items);
}

Status TruncateLists(std::span<const NodeId> ids, std::span<const float> wts, std::uint64_t rows,
                     std::uint32_t T, std::uint32_t Tu, std::span<NodeId> out_ids,
                     std::span<float> out_wts) {
  // Rows 0..rows-1 of a block source, through training's own truncation.
  BlockNeighborhoods base(rows, T, 0, ids, wts);
  train::TruncatedNeighborhoods trunc(&base, Tu);
  std::vector<NodeId> which(rows);
  std::iota(which.begin(), which.end(), NodeId{0});
  return trunc.Get(which, out_ids.first(rows * Tu), out_wts.first(rows * Tu));
}

Status CheckNeighborIds(std::span<const NodeId> ids, std::uint64_t items) {
  for (NodeId v : ids) {
    if (v != kInvalidNode && v >= items) {
      return Status::Corruption("walk.neighbors names item " + std::to_string(v) + " of " +
                                std::to_string(items));
    }
  }
  return Status::OK();
}

}  // namespace pgraph::infer
