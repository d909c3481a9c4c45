#pragma once
// pgraph::train — learns PinSage item embeddings (see docs/pinsage.md).
//
// The public surface of the training library. It is free of torch: tools and tests compile
// against it without torch headers; everything that touches tensors lives in train/*.cc and
// the private headers (train/model.h, train/batch.h).
//
// Data flow of one run:
//   store (features, walk.neighbors/walk.weights, pairs.train, pairs.heldout)
//     -> producer (TBB flow graph): draw pairs + negatives, K-hop importance neighbourhoods,
//        compact subgraph G', feature rows in G' order
//     -> bounded buffer (--prefetch batches)
//     -> consumer: forward / max-margin loss / backward / Adam step (CPU or CUDA)
//     -> per epoch: validation hit-rate@K + MRR on held-out pairs, checkpoint into the store.
//
// Errors are Status / Result (storage/status.h). Torch errors (c10::Error) are caught at
// every public function and returned as kInternal.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"

namespace pgraph::storage {
class Store;
}

namespace pgraph::train {

// ---- Data interfaces -------------------------------------------------------------------
// The trainer reads everything through these, so tests and benchmarks can feed in-memory
// data and the store-backed versions stay small. All implementations must be thread-safe
// for concurrent const calls (the producer runs on several TBB threads).

// Item features x_u, `dim()` floats per item.
class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual std::uint64_t num_items() const = 0;
  virtual std::uint32_t dim() const = 0;
  // Rows `ids` (any order, repeats allowed) into `out` (ids.size() * dim() floats).
  // InvalidArgument for an id >= num_items(); IOError/Corruption from the store.
  virtual Status Gather(std::span<const NodeId> ids, std::span<float> out) const = 0;
};

// Importance neighbourhoods N(u): up to width() neighbours per item with weights alpha
// (the walk.neighbors / walk.weights columns). Padding is kInvalidNode with weight 0.
class NeighborhoodSource {
 public:
  virtual ~NeighborhoodSource() = default;
  virtual std::uint64_t num_items() const = 0;
  virtual std::uint32_t width() const = 0;  // T
  // For each of `ids`: width() neighbours into `neighbors` and their weights into
  // `weights` (both ids.size() * width()). Same errors as FeatureSource::Gather.
  virtual Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
                     std::span<float> weights) const = 0;
};

// Hard negatives for a query q: items related to q, but less than its positives (the
// paper: PPR ranks ~2000-5000, scaled to the catalogue). Deterministic in `seed`.
class HardNegativeSampler {
 public:
  virtual ~HardNegativeSampler() = default;
  // Appends exactly `count` item ids (never q itself) to `out`.
  virtual Status Sample(NodeId q, std::uint32_t count, std::uint64_t seed,
                        std::vector<NodeId>* out) const = 0;
};

// Where checkpoints go. Save replaces the previous checkpoint atomically.
class CheckpointSink {
 public:
  virtual ~CheckpointSink() = default;
  // `blob` is the serialized checkpoint; `config` the human-readable run configuration.
  virtual Status Save(std::span<const std::byte> blob, const std::string& config,
                      std::uint32_t epoch) = 0;
  // The latest saved blob, or std::nullopt when none was ever saved.
  virtual Result<std::optional<std::vector<std::byte>>> LoadLatest() = 0;
};

// In-memory implementations (tests, benchmarks). They own copies of their data.
class InMemoryFeatures final : public FeatureSource {
 public:
  InMemoryFeatures(std::uint32_t dim, std::vector<float> rows);
  std::uint64_t num_items() const override { return dim_ ? rows_.size() / dim_ : 0; }
  std::uint32_t dim() const override { return dim_; }
  Status Gather(std::span<const NodeId> ids, std::span<float> out) const override;
  const std::vector<float>& rows() const { return rows_; }

 private:
  std::uint32_t dim_;
  std::vector<float> rows_;
};

class InMemoryNeighborhoods final : public NeighborhoodSource {
 public:
  // neighbors/weights: num_items * width, kInvalidNode / 0 padded.
  InMemoryNeighborhoods(std::uint32_t width, std::vector<NodeId> neighbors,
                        std::vector<float> weights);
  std::uint64_t num_items() const override { return width_ ? nbrs_.size() / width_ : 0; }
  std::uint32_t width() const override { return width_; }
  Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
             std::span<float> weights) const override;

 private:
  std::uint32_t width_;
  std::vector<NodeId> nbrs_;
  std::vector<float> weights_;
};

class InMemoryCheckpoints final : public CheckpointSink {
 public:
  Status Save(std::span<const std::byte> blob, const std::string& config,
              std::uint32_t epoch) override;
  Result<std::optional<std::vector<std::byte>>> LoadLatest() override;
  int saves() const { return saves_; }
  std::uint32_t last_epoch() const { return last_epoch_; }
  // When > 0, Save fails with IOError on that (1-based) call; for error-path tests.
  int fail_on_save = 0;

 private:
  std::optional<std::vector<std::byte>> blob_;
  int saves_ = 0;
  std::uint32_t last_epoch_ = 0;
};

// Hard negatives by Monte-Carlo personalized PageRank on the item-item importance graph
// given by `neighborhoods` (restart probability `restart`, `steps` walk steps per query).
// Items are ranked by visit count and `count` are drawn uniformly from ranks
// [rank_lo, rank_hi) (0: scaled to the catalogue, ~0.5%..2% of the items, at least 10..40).
// When fewer items were reached, the window slides down; as a last resort uniform items.
// Borrows `neighborhoods`, which must outlive the sampler.
std::unique_ptr<HardNegativeSampler> MakePprHardNegativeSampler(
    const NeighborhoodSource* neighborhoods, std::uint32_t rank_lo = 0,
    std::uint32_t rank_hi = 0, std::uint32_t steps = 1000, float restart = 0.3f);

// ---- Options and results ---------------------------------------------------------------

enum class Pooling { kImportance, kMean, kMax };
const char* PoolingName(Pooling p);
Result<Pooling> ParsePooling(std::string_view s);

// The training objective over (q, i, negatives) with scores s = z_q . z:
//   kMargin:  mean over negatives n of max(0, s_n - s_i + margin)  (the paper's loss)
//   kSoftmax: sampled softmax, -log(exp(s_i / tau) / (exp(s_i / tau) + sum_n exp(s_n / tau)))
// The margin loss stops learning once every negative is `margin` below the positive, so it
// never learns to order the items that pass (e.g. popular over rare items of the same
// community); the softmax keeps a gradient on every negative in proportion to its score and
// so estimates log P(i | q) up to a constant, which is what full-catalogue ranking needs.
// docs/BENCHMARKS.md ("quality") has the measurements behind the default.
enum class Loss { kMargin, kSoftmax };
const char* LossName(Loss l);
Result<Loss> ParseLoss(std::string_view s);

struct StepStats {
  std::uint32_t epoch = 0;        // 1-based
  std::uint64_t step = 0;         // 0-based within the epoch
  std::uint64_t steps_in_epoch = 0;
  std::uint64_t global_step = 0;  // 0-based over the run
  double loss = 0;
  double lr = 0;
  std::uint64_t pairs = 0;        // pairs in this batch
  double pairs_per_second = 0;    // since the epoch started
  double eta_seconds = 0;         // for the rest of the epoch
};

struct EpochStats {
  std::uint32_t epoch = 0;        // 1-based
  double mean_loss = 0;
  double seconds = 0;
  double pairs_per_second = 0;
  std::uint64_t pairs = 0;
  std::uint32_t hard_negatives = 0;  // per pair in this epoch (curriculum)
  double lr = 0;                  // at the end of the epoch
  // Validation on held-out pairs (NaN when there are none).
  double hit_rate = 0;            // share of pairs whose i ranks <= eval_k
  double mrr = 0;                 // mean(1 / ceil(rank / mrr_scale))
  std::uint64_t eval_pairs = 0, eval_candidates = 0;
  std::uint32_t mrr_scale = 1;
};

// Where the time went, summed over the run (seconds). Producer stages run concurrently with
// the consumer when the pipeline is on, so the sum may exceed the wall time.
struct TimeBreakdown {
  double sampling = 0;   // pairs, negatives, hard negatives, K-hop neighbourhoods, G'
  double gathering = 0;  // feature rows into the contiguous G' matrix
  double transfer = 0;   // batch -> tensors -> device
  double forward = 0;    // model + loss
  double backward = 0;
  double optimizer = 0;  // clipping + Adam
  double wait = 0;       // consumer idle, waiting for the producer
  double validation = 0;
  double checkpoint = 0;
};

struct TrainOptions {
  // Model.
  std::uint32_t layers = 2;          // K
  std::uint32_t dim = 64;            // d: output width of every layer and of the head
  std::uint32_t hidden = 128;        // m: pooling width (rows of Q)
  std::uint32_t neighbors = 0;       // T used; 0: all of the walk columns' width
  Pooling pooling = Pooling::kImportance;
  std::uint32_t id_embedding_dim = 0;  // learnable per-item ids; 0 = off (stays inductive)
  // L2-normalise the output z, so scores are cosines: without it the model can grow or
  // shrink |z| to satisfy the loss instead of learning directions, and training at a higher
  // learning rate collapses (docs/BENCHMARKS.md).
  bool normalize = true;
  // With normalize: scale each unit-length z by a learned length in (0, 2), a sigmoid of the
  // item's last-layer vector. Cosines are symmetric, so they rank a query's neighbours by
  // how alike the two are (a rare item's nearest items are other rare items), never by how
  // likely each is; a length lets inner products carry that prior (popularity, quality)
  // while directions carry similarity. A query's own length does not change its ranking.
  bool magnitude = true;
  // Add the batch's positives to every query's negatives (mixed negative sampling, Yi et
  // al. 2020). Off by default: they are drawn as often as items are engaged with, so the
  // softmax learns to discount popularity, which costs hit-rate in full-catalogue ranking
  // (docs/BENCHMARKS.md, "quality").
  bool in_batch_negatives = false;
  // Append the item's standardised log-degree to its features (Train() only: computed from
  // the store's adjacency). The features alone carry no popularity, and importance pooling
  // normalises it away, so without it the model cannot rank a popular item above a rare one
  // with the same content. Inductive: a new item's degree comes from its own edges.
  bool degree_feature = true;
  // Loss and sampling.
  std::uint32_t batch = 512;         // pairs per minibatch
  std::uint32_t negatives = 500;     // shared per batch; capped at max(1, items / 10)
  bool hard_negatives = true;        // curriculum: epoch n uses min(n-1, max) per pair
  std::uint32_t max_hard_negatives = 6;
  std::uint32_t hard_ppr_walks = 500;   // PPR walks per query for hard negatives (Train())
  // PPR rank window [lo, hi) the hard negatives come from (Train()); 0, 0: scaled to the
  // catalogue (walker::DefaultHardNegativeWindow).
  std::uint32_t hard_rank_lo = 0, hard_rank_hi = 0;
  Loss loss = Loss::kSoftmax;
  float margin = 0.1f;               // Delta (kMargin)
  float temperature = 0.05f;         // tau (kSoftmax); scores are cosines in [-1, 1]
  // Optimisation.
  std::uint32_t epochs = 10;
  double lr = 1e-3;                  // Adam rate at batch 512; scaled linearly with batch
  double lr_decay = 0.9;             // exponential decay per epoch after the warm-up epoch
  bool warmup = true;                // linear warm-up over the first epoch
  double clip_grad_norm = 0;         // 0: off
  // Polyak averaging: keep an exponential moving average of the parameters, updated after
  // every optimizer step with decay min(ema_decay, (1 + t) / (10 + t)) at step t (so the
  // first steps do not average in the initialisation), and validate and save the average
  // as the model; the optimizer's own iterate continues as before (checkpointed beside it
  // for --resume). It smooths the step-to-step noise that a final learning rate well above
  // zero leaves in the last iterate. 0: off (the last iterate is the model).
  double ema_decay = 0;
  // Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): every step multiplies each
  // weight matrix and the id embeddings (the parameters with two or more dimensions; not the
  // biases) by 1 - lr * weight_decay before Adam's update. 0: off (plain Adam).
  double weight_decay = 0;
  std::uint64_t seed = 1;
  // Execution.
  int threads = 0;                   // cores to use; 0: hardware concurrency
  // Torch intra-op threads of the consumer; 0: threads - 1 with the pipeline (one core is
  // left to the producer stages), threads without. On 2 cores a second OpenMP thread costs
  // more in barrier waits than it gains on this model's small products (docs/BENCHMARKS.md).
  int torch_threads = 0;
  // Threads of the BLAS library's own pool (OpenBLAS; storage/blas_runtime.h), which splits
  // each matrix product independently of torch_threads; 0: 1. Process-wide while training.
  int blas_threads = 0;
  std::string device = "cpu";        // cpu | cuda | cuda:N | auto
  bool pipeline = true;              // false (or one thread allowed): the stages run sequentially
  std::uint32_t prefetch = 3;        // batches in flight between producer and consumer
  std::uint64_t max_steps_per_epoch = 0;  // 0: all; benchmarks cap epochs with it
  // Validation.
  std::uint32_t eval_k = 10;         // hit-rate@K
  std::uint32_t eval_pairs = 1000;   // held-out pairs sampled per validation (0: none)
  std::uint32_t eval_candidates = 100000;  // candidate pool cap (all items when fewer)
  std::uint32_t mrr_scale = 0;       // 0: max(1, candidates / 50000) (paper: 100 of 5M)
  // Checkpoints.
  bool resume = false;               // continue from the last checkpoint in the sink/store
  bool checkpoint = true;            // write one per epoch
  // Store (Train() only).
  std::string store_dir;
  // What the run may use beyond the model and its optimizer state. A quarter is for the
  // batch being run with its activations, a quarter for the data of the batches waiting in
  // the pipeline (prefetch), both estimated before features are read; a batch over its share
  // runs in parts with the same gradients (more compute, same result up to rounding).
  // Train() gives hard-negative windows a quarter (a query's window is drawn from again in
  // every epoch), and the store's chunk cache and pinned degree offsets an eighth each.
  std::uint64_t memory_budget = 512ull << 20;
  // Observers (called on the consumer thread) and cancellation (e.g. set by SIGINT).
  std::function<void(const StepStats&)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
  const std::atomic<bool>* cancel = nullptr;
};

// One matrix product C[M x N] = A[M x K] B[K x N] of the model's forward pass.
struct GemmShape {
  std::int64_t m = 0, k = 0, n = 0;
};

struct TrainReport {
  std::vector<EpochStats> epochs;   // epochs run by this call (not the resumed ones)
  TimeBreakdown time;
  std::uint32_t first_epoch = 1;    // > 1 after --resume
  std::uint64_t steps = 0, pairs = 0;
  // Steps whose batch exceeded its memory share and ran in parts, and their parts in total
  // (see memory_budget).
  std::uint64_t split_steps = 0, parts = 0;
  double seconds = 0;
  double pairs_per_second = 0;      // training only (validation excluded)
  std::string device;               // the device used ("cpu", "cuda:0")
  std::uint64_t parameters = 0;     // learnable scalars
  std::uint64_t model_flops = 0;    // forward+backward FLOPs summed over the run (estimate)
  std::vector<GemmShape> gemm_shapes;  // the forward products of the last batch
  std::string config;               // the config written into checkpoints
};

// Everything a run reads. Pointers are borrowed and must outlive the call.
struct TrainData {
  const FeatureSource* features = nullptr;            // may be null with id embeddings
  // Structural features appended to `features` (the degree feature); null: none. Its
  // dim() is ModelConfig::structural_dim and `degree_mean` / `degree_std` the transform it
  // applied, recorded in the checkpoint so inference repeats it.
  const FeatureSource* structural = nullptr;
  float degree_mean = 0, degree_std = 1;
  const NeighborhoodSource* neighborhoods = nullptr;  // required
  std::vector<std::pair<NodeId, NodeId>> train_pairs;
  std::vector<std::pair<NodeId, NodeId>> heldout_pairs;  // never trained on
  const HardNegativeSampler* hard = nullptr;  // null: the PPR sampler on `neighborhoods`
  CheckpointSink* checkpoints = nullptr;      // null: no checkpoints (and no resume)
};

// Trains on the given data. InvalidArgument for inconsistent data or options (sizes,
// ids out of range, no pairs); NotSupported for an unusable --device; Cancelled when
// options.cancel was set (the last finished epoch's checkpoint stays); errors of the
// sources and the sink as they come; Internal for torch errors.
Result<TrainReport> TrainOnData(const TrainData& data, const TrainOptions& options);

// Opens options.store_dir (writable), reads features / walk.* / pairs.* and trains,
// checkpointing into the store: column "checkpoint" (u8, the blob) and meta
// "train.config", "train.epoch". Hard negatives come from the walker's PPR on the store's
// bipartite graph (window walker::DefaultHardNegativeWindow). NotFound naming a missing
// column; otherwise as above. Cost: pairs are read into memory (8 bytes each); features and
// walk rows are read per batch through the chunk cache (options.memory_budget).
Result<TrainReport> Train(const TrainOptions& options);

// Resolves "cpu" | "cuda" | "cuda:N" | "auto" to the device that would be used.
// NotSupported (with the reason) for CUDA without a CUDA libtorch or without a GPU;
// InvalidArgument for anything else. Every train and infer run calls it first, so it also
// selects OpenBLAS's kernels for the CPU once per process (storage/blas_runtime.h).
Result<std::string> ResolveDevice(std::string_view device);

// The arithmetic bound for benchmarks: FLOP/s of plain matrix products of `shapes`, each
// run as in training (the forward product and the two backward ones), on the CPU with
// `threads` threads, repeated for at least `min_seconds`. Internal for torch errors.
Result<double> GemmFlopsPerSecond(std::span<const GemmShape> shapes, int threads,
                                  double min_seconds);

// ---- Trained parameters, for inference ---------------------------------------------------

struct ModelConfig {
  std::uint32_t layers = 2, dim = 64, hidden = 128, neighbors = 0;
  std::uint32_t feature_dim = 0, id_embedding_dim = 0;
  std::uint64_t num_items = 0;
  Pooling pooling = Pooling::kImportance;
  bool normalize = false;  // z /= |z| (absent from checkpoints older than the key: false)
  bool magnitude = false;  // then z *= 2 sigmoid(scale.W h_K + scale.b) (TrainOptions)
  // Structural input features after the item features: 0, or 1 for the degree feature
  // (log1p(degree) - degree_mean) / degree_std, degree = the item's number of contexts.
  std::uint32_t structural_dim = 0;
  float degree_mean = 0, degree_std = 1;
  // Width of h^(0): feature_dim + structural_dim + id_embedding_dim.
  std::uint32_t input_dim() const { return feature_dim + structural_dim + id_embedding_dim; }
};

// The degree feature of an item with `degree` contexts under `config` (structural_dim 1).
float DegreeFeature(const ModelConfig& config, std::uint64_t degree);

// A float array of the given row-major shape.
struct NamedArray {
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};

// The learned parameters, torch-free. Names and shapes (in_k = input_dim() for k = 0,
// else dim):
//   "layer{k}.Q" [hidden x in_k]  "layer{k}.q" [hidden]
//   "layer{k}.W" [dim x (in_k + hidden)]  "layer{k}.w" [dim]     for k = 0..layers-1
//   "G1" [dim x dim]  "g" [dim]  "G2" [dim x dim]
//   "id_embedding" [num_items x id_embedding_dim]   (only when id_embedding_dim > 0)
//   "scale.W" [1 x dim]  "scale.b" [1]               (only when magnitude)
// Forward (docs/pinsage.md, Algorithm 2): h0 = concat(x_u, structural_u, id_embedding[u]);
//   p_v = ReLU(Q h_v + q); n_u = pool_v(p_v, alpha); h' = ReLU(W concat(h_u, n_u) + w);
//   h' /= max(||h'||, 1e-12); z = G2 ReLU(G1 h_K + g), then z /= max(||z||, 1e-12) when
//   config.normalize, then z *= 2 sigmoid(scale.W h_K + scale.b) when config.magnitude.
//   Pooling: importance = sum of alpha_v p_v over valid v; mean = plain mean over valid v;
//   max = elementwise max over valid v (0 when u has no neighbour).
struct ModelParameters {
  ModelConfig config;
  std::uint32_t epoch = 0;           // epochs completed when saved
  std::map<std::string, NamedArray> arrays;
};

// The parameters of the latest checkpoint in `store`. NotFound when the store has none;
// Corruption when the blob does not parse.
Result<ModelParameters> LoadLatestParameters(const storage::Store& store);
// Same, from a serialized checkpoint blob.
Result<ModelParameters> ParseParameters(std::span<const std::byte> blob);

// The run-defining training options (loss, temperature, ...; not the execution ones) of the
// store's latest checkpoint, as recorded in its meta "train.config"; std::nullopt when the
// store was never trained. InvalidArgument when the record does not parse.
Result<std::optional<TrainOptions>> LoadTrainedOptions(const storage::Store& store);

}  // namespace pgraph::train
