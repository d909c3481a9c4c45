#pragma once
// Private to train/: the compact-subgraph minibatch and the producer stages that build it.
// Torch-free: the producer runs on TBB threads and hands plain vectors to the consumer,
// which wraps them as tensors without copying (train/model.h, ToTensors).

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"
#include "train/trainer.h"

namespace pgraph::train {

// Inputs of CONVOLVE layer k (1-based) in G' coordinates. Layer k maps the first
// num_inputs rows of h^(k-1) to num_targets rows of h^(k); the targets are the first
// num_targets nodes of MiniBatch::nodes (S^(k) is a prefix of S^(k-1)), so the "self" input of
// target j is row j of h^(k-1). Neighbourhoods are stored CSR-style (padding dropped): the
// real neighbours of target j are index[offsets[j] .. offsets[j+1]) (the last one ends at
// index.size()), with weights alpha in `weight`.
struct LayerBlock {
  std::uint32_t num_targets = 0;      // |S^(k)|
  std::uint32_t num_inputs = 0;       // |S^(k-1)|
  std::vector<std::int64_t> offsets;  // num_targets
  std::vector<std::int64_t> index;    // rows of h^(k-1)
  std::vector<float> weight;          // alpha, same length as index
};

// One minibatch: the compact subgraph G' = (V', E') with its features and loss wiring.
struct MiniBatch {
  std::uint64_t sequence = 0;       // position in the epoch (the consumer's order)
  std::uint32_t width = 0;          // T
  std::vector<NodeId> nodes;        // V' in G' order (global ids): S^(K) first, then the
                                    // rest of S^(K-1), ..., the rest of S^(0)
  std::uint32_t feature_dim = 0;
  std::vector<float> features;      // nodes.size() * feature_dim, G' order
  std::vector<LayerBlock> layers;   // layers[k-1] feeds CONVOLVE k
  // Loss wiring, as positions among the targets S^(K).
  std::vector<std::int64_t> query, positive;  // one per pair
  std::vector<std::int64_t> negative;         // shared by every pair
  std::vector<std::int64_t> hard;             // pairs * hard_per_pair, row-major
  std::uint32_t hard_per_pair = 0;
  Status status;                    // a producer error travels with the batch
  double sample_seconds = 0, gather_seconds = 0;
  // A batch too large for its memory share travels as a plan: `nodes` holds only the
  // targets S^(K), `layers` and `features` are empty, and the consumer builds and runs it in
  // parts (PartPlanner) with the same loss.
  bool split = false;

  std::uint32_t num_targets() const {
    return split ? static_cast<std::uint32_t>(nodes.size())
                 : (layers.empty() ? 0 : layers.back().num_targets);
  }
  std::size_t num_pairs() const { return query.size(); }
};

// Builds S^(K), ..., S^(0) for `targets` (repeats allowed), re-indexes them into G' and fills
// out->nodes / out->layers / out->width. target_pos[j] receives the G' row of targets[j].
// Errors of the neighbourhood source; InvalidArgument for an id out of range.
Status BuildSubgraph(std::span<const NodeId> targets, std::uint32_t layers,
                     const NeighborhoodSource& nbrs, MiniBatch* out,
                     std::vector<std::int64_t>* target_pos);

// The distinct `targets` in first-occurrence order into *distinct (the order BuildSubgraph
// gives S^(K)); position[j] gets the index of targets[j] in it. InvalidArgument for an id
// >= n_items.
Status DistinctTargets(std::span<const NodeId> targets, std::uint64_t n_items,
                       std::vector<NodeId>* distinct, std::vector<std::int64_t>* position);

// Fills out->features with the rows of out->nodes (feature_dim 0 when `features` is null).
Status GatherFeatures(const FeatureSource* features, MiniBatch* out);

// Bytes of a built batch: `data`, what it holds while it waits in the pipeline (ids,
// adjacency, features, their tensor copies); `total`, with the activations of `model`'s
// forward pass over it as well (kept for backward when `with_grad`, with room for their
// gradients). Estimates, checked against the process's RSS by test/train/memory_test.cc.
struct BatchBytes {
  std::uint64_t data = 0, total = 0;
};
BatchBytes EstimateBatchBytes(const MiniBatch& batch, const ModelConfig& model, bool with_grad);

// Splits a list of distinct targets into consecutive parts whose built subgraphs each fit
// `budget` bytes (EstimateBatchBytes' total), so a batch or a validation sweep larger than its
// memory share runs part by part. Sizes adapt to what the previous part measured; a single
// target larger than the budget is built alone. Deterministic: the parts depend only on the
// data, never on threads or timing. Borrows everything it is given.
class PartPlanner {
 public:
  PartPlanner(std::span<const NodeId> targets, std::uint32_t layers,
              const NeighborhoodSource& nbrs, const FeatureSource* features,
              const ModelConfig& model, bool with_grad, std::uint64_t budget);
  bool done() const { return next_ >= targets_.size(); }
  // Builds the next part (subgraph and features); its targets are targets[*lo, *hi), rows
  // 0 .. *hi - *lo of `part` in order. Errors of the sources.
  Status Next(MiniBatch* part, std::size_t* lo, std::size_t* hi);
  // Builds targets[lo, hi) again (a range Next() returned).
  Status Build(std::size_t lo, std::size_t hi, MiniBatch* part) const;

 private:
  std::span<const NodeId> targets_;
  std::uint32_t layers_;
  const NeighborhoodSource& nbrs_;
  const FeatureSource* features_;
  const ModelConfig& model_;
  bool with_grad_;
  std::uint64_t budget_;
  std::size_t next_ = 0;
  double bytes_per_target_;  // running estimate, from the last part built
};

// Deterministic 64-bit mixing, the base of every random stream in train/ (so results never
// depend on threads or on the pipeline): streams are keyed by (seed, epoch, batch, ...).
std::uint64_t Mix64(std::uint64_t x);
inline std::uint64_t StreamSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0,
                                std::uint64_t d = 0) {
  return Mix64(Mix64(Mix64(Mix64(a) ^ b) ^ c) ^ d);
}

// SplitMix64 generator with unbiased-enough bounded draws (Lemire multiply-shift).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t Below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }

 private:
  std::uint64_t state_;
};

// Wraps a neighbourhood source to use only the `width` heaviest neighbours of each item,
// renormalised to sum to 1. Borrows `base`.
class TruncatedNeighborhoods final : public NeighborhoodSource {
 public:
  TruncatedNeighborhoods(const NeighborhoodSource* base, std::uint32_t width)
      : base_(base), width_(width) {}
  std::uint64_t num_items() const override { return base_->num_items(); }
  std::uint32_t width() const override { return width_; }
  Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
             std::span<float> weights) const override;

 private:
  const NeighborhoodSource* base_;
  std::uint32_t width_;
};

// What the producer needs for one epoch.
struct ProducerConfig {
  std::uint32_t layers = 2;
  std::uint32_t batch = 512;
  std::uint32_t negatives = 500;      // effective (already capped)
  std::uint32_t hard_per_pair = 0;    // this epoch's curriculum value
  std::uint64_t seed = 1;
  std::uint32_t epoch = 1;
  std::uint64_t max_batches = 0;      // 0: all
  // Memory shares (0: unlimited): a batch is produced whole when its data fits
  // batch_data_bytes (its share of the pipeline's buffer) and its total fits batch_bytes
  // (what the consumer may use to run it); else as a plan (MiniBatch::split) for the consumer
  // to run in parts of at most batch_bytes.
  std::uint64_t batch_data_bytes = 0, batch_bytes = 0;
  ModelConfig model;                  // for the estimates
};

// Draws the batches of one epoch: a seeded permutation of the training pairs, uniform shared
// negatives, hard negatives, then the subgraph and the features. Produce() is thread-safe and
// depends only on (config, batch index).
class BatchProducer {
 public:
  BatchProducer(const TrainData& data, const NeighborhoodSource* nbrs, ProducerConfig config);
  std::uint64_t num_batches() const { return num_batches_; }
  // Never null; a failure is reported in the batch's status.
  std::unique_ptr<MiniBatch> Produce(std::uint64_t index) const;

 private:
  const TrainData& data_;
  const NeighborhoodSource* nbrs_;
  ProducerConfig config_;
  std::vector<std::uint32_t> order_;  // permutation of the training pairs
  std::uint64_t num_batches_ = 0;
};

// A batch whose targets are `items` (no pairs): for embedding items in validation and tests.
std::unique_ptr<MiniBatch> ProduceEmbeddingBatch(std::span<const NodeId> items,
                                                 std::uint32_t layers,
                                                 const NeighborhoodSource& nbrs,
                                                 const FeatureSource* features);

}  // namespace pgraph::train
