// Store-backed data sources and checkpoints (torch-free), and Train() on a store.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/store.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#ifdef PGRAPH_TRAIN_HAVE_WALKER
#include "walker/walker.h"
#endif

namespace pgraph::train {
namespace {

namespace cols = storage::columns;
constexpr const char* kCheckpointColumn = "checkpoint";

Result<const storage::Column*> OpenColumn(const storage::Store& store, const char* name,
                                          const char* hint) {
  auto c = store.OpenColumn(name);
  if (!c.ok()) {
    return Status::NotFound(std::string("column ") + name + " not found in " + store.dir() +
                            hint);
  }
  return c.value();
}

class StoreFeatures final : public FeatureSource {
 public:
  explicit StoreFeatures(const storage::Column* c) : col_(c) {}
  std::uint64_t num_items() const override { return col_->info().rows; }
  std::uint32_t dim() const override { return col_->info().width; }
  Status Gather(std::span<const NodeId> ids, std::span<float> out) const override {
    const std::uint64_t n = num_items();
    for (NodeId id : ids) {
      if (id >= n) return Status::InvalidArgument("feature row out of range");
    }
    return col_->GatherAsFloat(ids, out);
  }

 private:
  const storage::Column* col_;
};

// The degree feature of each item, from the item -> context CSR offsets. Every batch asks for
// every node of G', so the offsets are read through a ColumnView (zero-copy for raw LMDB,
// else pinned when they fit `max_pinned_bytes`); past that, row reads through the cache.
class StoreDegreeFeature final : public FeatureSource {
 public:
  StoreDegreeFeature(const storage::Column* offsets, ModelConfig config,
                     std::uint64_t max_pinned_bytes)
      : offsets_(offsets), config_(config) {
    auto view = storage::ColumnView<std::uint64_t>::Make(*offsets, max_pinned_bytes);
    if (view.ok()) view_ = std::move(view).value();
  }
  std::uint64_t num_items() const override { return offsets_->info().rows - 1; }
  std::uint32_t dim() const override { return 1; }
  Status Gather(std::span<const NodeId> ids, std::span<float> out) const override {
    const std::uint64_t n = num_items();
    std::uint64_t range[2];
    for (std::size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] >= n) return Status::InvalidArgument("degree row out of range");
      if (view_) {
        out[j] = DegreeFeature(config_, (*view_)[ids[j] + 1] - (*view_)[ids[j]]);
        continue;
      }
      PGRAPH_RETURN_IF_ERROR(
          offsets_->ReadRows(ids[j], 2, std::as_writable_bytes(std::span(range))));
      out[j] = DegreeFeature(config_, range[1] - range[0]);
    }
    return Status::OK();
  }

  // Mean and standard deviation of log1p(degree) over all items, streamed in blocks.
  static Status Standardize(const storage::Column* offsets, ModelConfig* config) {
    const std::uint64_t items = offsets->info().rows - 1;
    std::vector<std::uint64_t> block;
    double sum = 0, sum2 = 0;
    constexpr std::uint64_t kBlock = 1 << 16;
    for (std::uint64_t first = 0; first < items; first += kBlock) {
      const std::uint64_t m = std::min(kBlock, items - first);
      block.resize(m + 1);
      PGRAPH_RETURN_IF_ERROR(
          offsets->ReadRows(first, m + 1, std::as_writable_bytes(std::span(block))));
      for (std::uint64_t r = 0; r < m; ++r) {
        const double x = std::log1p(static_cast<double>(block[r + 1] - block[r]));
        sum += x;
        sum2 += x * x;
      }
    }
    const double mean = items ? sum / items : 0;
    const double var = items ? std::max(0.0, sum2 / items - mean * mean) : 0;
    config->degree_mean = static_cast<float>(mean);
    // A catalogue where every item has the same degree: the feature is a constant 0.
    config->degree_std = var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0f;
    return Status::OK();
  }

 private:
  const storage::Column* offsets_;
  ModelConfig config_;
  std::optional<storage::ColumnView<std::uint64_t>> view_;
};

// Reads walk.neighbors / walk.weights rows through the chunk cache, one sorted pass per call.
class StoreNeighborhoods final : public NeighborhoodSource {
 public:
  StoreNeighborhoods(const storage::Column* n, const storage::Column* w) : n_(n), w_(w) {}
  std::uint64_t num_items() const override { return n_->info().rows; }
  std::uint32_t width() const override { return n_->info().width; }
  Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
             std::span<float> weights) const override {
    const std::uint32_t T = width();
    PGRAPH_RETURN_IF_ERROR(
        n_->GatherRows(ids, std::as_writable_bytes(neighbors.first(ids.size() * T))));
    // Weights as floats (the column is f32).
    return w_->GatherAsFloat(ids, weights.first(ids.size() * T));
  }

 private:
  const storage::Column* n_;
  const storage::Column* w_;
};

class StoreCheckpoints final : public CheckpointSink {
 public:
  explicit StoreCheckpoints(storage::Store* store) : store_(store) {}
  Status Save(std::span<const std::byte> blob, const std::string& config,
              std::uint32_t epoch) override {
    PGRAPH_ASSIGN_OR_RETURN(auto update, store_->BeginUpdate());
    storage::ColumnSpec spec;
    spec.name = kCheckpointColumn;
    spec.dtype = storage::DType::kU8;
    spec.width = 1;
    spec.codec = static_cast<int>(storage::Codec::kNone);  // floats barely compress
    PGRAPH_ASSIGN_OR_RETURN(storage::ColumnWriter * w, update->AddColumn(spec));
    PGRAPH_RETURN_IF_ERROR(w->Append(blob));
    update->SetMeta("train.config", config);
    update->SetCount("train.epoch", epoch);
    PGRAPH_RETURN_IF_ERROR(update->Publish());
    return store_->Refresh();
  }
  Result<std::optional<std::vector<std::byte>>> LoadLatest() override {
    if (!store_->HasColumn(kCheckpointColumn)) return std::optional<std::vector<std::byte>>();
    PGRAPH_ASSIGN_OR_RETURN(auto blob, ReadBlob(*store_));
    return std::optional<std::vector<std::byte>>(std::move(blob));
  }
  static Result<std::vector<std::byte>> ReadBlob(const storage::Store& store) {
    PGRAPH_ASSIGN_OR_RETURN(const storage::Column* c,
                            OpenColumn(store, kCheckpointColumn, " (train first)"));
    std::vector<std::byte> blob(c->info().rows);
    PGRAPH_RETURN_IF_ERROR(c->ReadRows(0, blob.size(), blob));
    return blob;
  }

 private:
  storage::Store* store_;
};

Result<std::vector<std::pair<NodeId, NodeId>>> ReadPairs(const storage::Column* c) {
  if (c->info().width != 2 || c->info().dtype != storage::DType::kU32) {
    return Status::InvalidArgument("column " + c->info().name + " must be u32 x 2");
  }
  std::vector<NodeId> flat(c->info().rows * 2);
  PGRAPH_RETURN_IF_ERROR(c->ReadRows(0, c->info().rows, std::as_writable_bytes(std::span(flat))));
  std::vector<std::pair<NodeId, NodeId>> pairs(c->info().rows);
  for (std::size_t j = 0; j < pairs.size(); ++j) pairs[j] = {flat[2 * j], flat[2 * j + 1]};
  return pairs;
}

#ifdef PGRAPH_TRAIN_HAVE_WALKER
// Hard negatives from the walker's PPR on the bipartite graph (item -> context -> item),
// ranks in walker::DefaultHardNegativeWindow. A query's window depends only on q (the PPR
// walks have their own seed), and a query comes back in about edges/items pairs per epoch
// and in every epoch, so windows are kept, first come first kept, up to `cache_bytes`:
// the same draws as recomputing, one PPR per query instead of one per pair.
class WalkerHardNegatives final : public HardNegativeSampler {
 public:
  WalkerHardNegatives(std::unique_ptr<walker::WalkGraph> graph, std::uint32_t walks,
                      walker::RankWindow window, std::uint64_t cache_bytes)
      : graph_(std::move(graph)), cache_bytes_(cache_bytes) {
    options_.ppr.walks = walks;
    options_.window = window;
  }
  Status Sample(NodeId q, std::uint32_t count, std::uint64_t seed,
                std::vector<NodeId>* out) const override {
    std::shared_ptr<const std::vector<NodeId>> window;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = windows_.find(q);
      if (it != windows_.end()) window = it->second;
    }
    if (!window) {
      PGRAPH_ASSIGN_OR_RETURN(std::vector<NodeId> w,
                              walker::HardNegativeWindow(*graph_, q, options_));
      window = std::make_shared<const std::vector<NodeId>>(std::move(w));
      const std::uint64_t bytes = window->size() * sizeof(NodeId) + 64;
      std::lock_guard<std::mutex> lock(mu_);
      if (used_ + bytes <= cache_bytes_ && windows_.emplace(q, window).second) used_ += bytes;
    }
    std::vector<NodeId> v = walker::DrawFromHardNegativeWindow(*window, q, graph_->num_items(),
                                                               count, options_, seed);
    out->insert(out->end(), v.begin(), v.end());
    return Status::OK();
  }

 private:
  std::unique_ptr<walker::WalkGraph> graph_;
  walker::HardNegativeOptions options_;
  const std::uint64_t cache_bytes_;
  mutable std::mutex mu_;
  mutable std::unordered_map<NodeId, std::shared_ptr<const std::vector<NodeId>>> windows_;
  mutable std::uint64_t used_ = 0;
};
#endif

}  // namespace

Result<TrainReport> Train(const TrainOptions& options) {
  storage::StoreOptions so;
  so.memory_budget = options.memory_budget / 8;  // TrainOptions::memory_budget
  PGRAPH_ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store,
                          storage::Store::Open(options.store_dir, so));
  const char* walk_hint = " (run `pgraph walk` first)";
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* nbr,
                          OpenColumn(*store, cols::kWalkNeighbors, walk_hint));
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* wts,
                          OpenColumn(*store, cols::kWalkWeights, walk_hint));
  if (nbr->info().dtype != storage::DType::kU32 || wts->info().dtype != storage::DType::kF32 ||
      nbr->info().width != wts->info().width || nbr->info().rows != wts->info().rows) {
    return Status::InvalidArgument("walk.neighbors (u32 x T) and walk.weights (f32 x T) disagree");
  }
  StoreNeighborhoods neighborhoods(nbr, wts);
  std::unique_ptr<StoreFeatures> features;
  if (store->HasColumn(cols::kFeatures)) {
    PGRAPH_ASSIGN_OR_RETURN(const storage::Column* f, OpenColumn(*store, cols::kFeatures, ""));
    features = std::make_unique<StoreFeatures>(f);
  }
  TrainData data;
  data.features = features.get();
  // Built whenever the adjacency is there: --resume decides from the checkpoint whether
  // the model uses it.
  std::unique_ptr<StoreDegreeFeature> degrees;
  if (store->HasColumn(cols::kItemOffsets)) {
    PGRAPH_ASSIGN_OR_RETURN(const storage::Column* off, OpenColumn(*store, cols::kItemOffsets, ""));
    if (off->info().dtype != storage::DType::kU64 || off->info().rows != nbr->info().rows + 1) {
      return Status::InvalidArgument(std::string(cols::kItemOffsets) +
                                     " does not match walk.neighbors (re-run `pgraph walk`)");
    }
    ModelConfig transform;
    PGRAPH_RETURN_IF_ERROR(StoreDegreeFeature::Standardize(off, &transform));
    // Pinned offsets (compressed stores only) take at most an eighth of the budget.
    degrees = std::make_unique<StoreDegreeFeature>(off, transform, options.memory_budget / 8);
    data.structural = degrees.get();
    data.degree_mean = transform.degree_mean;
    data.degree_std = transform.degree_std;
  }
  data.neighborhoods = &neighborhoods;
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* tp,
                          OpenColumn(*store, cols::kTrainPairs, walk_hint));
  PGRAPH_ASSIGN_OR_RETURN(data.train_pairs, ReadPairs(tp));
  if (store->HasColumn(cols::kHeldOutPairs)) {
    PGRAPH_ASSIGN_OR_RETURN(const storage::Column* hp, OpenColumn(*store, cols::kHeldOutPairs, ""));
    PGRAPH_ASSIGN_OR_RETURN(data.heldout_pairs, ReadPairs(hp));
  }
  std::unique_ptr<HardNegativeSampler> hard;
#ifdef PGRAPH_TRAIN_HAVE_WALKER
  if (options.hard_negatives && store->num_contexts() > 0) {
    auto graph = walker::WalkGraph::Open(*store);
    if (graph.ok()) {  // else: the PPR sampler on walk.* (TrainOnData's default)
      // Windows take at most a quarter of the budget: a query comes back every epoch.
      hard = std::make_unique<WalkerHardNegatives>(
          std::move(graph).value(), options.hard_ppr_walks,
          walker::RankWindow{options.hard_rank_lo, options.hard_rank_hi},
          options.memory_budget / 4);
      data.hard = hard.get();
    }
  }
#endif
  StoreCheckpoints checkpoints(store.get());
  data.checkpoints = &checkpoints;
  return TrainOnData(data, options);
}

Result<ModelParameters> LoadLatestParameters(const storage::Store& store) {
  if (!store.HasColumn(kCheckpointColumn)) {
    return Status::NotFound("no checkpoint in " + store.dir() + " (run `pgraph train` first)");
  }
  PGRAPH_ASSIGN_OR_RETURN(std::vector<std::byte> blob, StoreCheckpoints::ReadBlob(store));
  return ParseParameters(blob);
}

}  // namespace pgraph::train
