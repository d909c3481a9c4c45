#include "train/batch.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_map>

namespace pgraph::train {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Status OutOfRange(NodeId id, std::uint64_t n) {
  return Status::InvalidArgument("item id " + std::to_string(id) + " out of range (" +
                                 std::to_string(n) + " items)");
}

// id -> G' row. Open addressing, power-of-two capacity; much faster than unordered_map for
// the tens of thousands of ids of a batch.
class IdIndex {
 public:
  explicit IdIndex(std::size_t expected) {
    std::size_t cap = 64;
    while (cap < expected * 2) cap <<= 1;
    keys_.assign(cap, kInvalidNode);
    vals_.resize(cap);
    mask_ = cap - 1;
  }
  // Returns {row, inserted}.
  std::pair<std::uint32_t, bool> Insert(NodeId id, std::uint32_t row) {
    if ((size_ + 1) * 2 > keys_.size()) Grow();
    std::size_t h = Mix64(id) & mask_;
    while (true) {
      if (keys_[h] == id) return {vals_[h], false};
      if (keys_[h] == kInvalidNode) {
        keys_[h] = id;
        vals_[h] = row;
        ++size_;
        return {row, true};
      }
      h = (h + 1) & mask_;
    }
  }

 private:
  void Grow() {
    std::vector<NodeId> keys = std::move(keys_);
    std::vector<std::uint32_t> vals = std::move(vals_);
    keys_.assign(keys.size() * 2, kInvalidNode);
    vals_.resize(keys_.size());
    mask_ = keys_.size() - 1;
    size_ = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] != kInvalidNode) Insert(keys[i], vals[i]);
    }
  }
  std::vector<NodeId> keys_;
  std::vector<std::uint32_t> vals_;
  std::size_t mask_ = 0, size_ = 0;
};

// Appends the distinct `targets` to `nodes` in first-occurrence order; target_pos[j] gets
// the row of targets[j].
Status InsertTargets(std::span<const NodeId> targets, std::uint64_t n_items, IdIndex* index,
                     std::vector<NodeId>* nodes, std::vector<std::int64_t>* target_pos) {
  target_pos->resize(targets.size());
  for (std::size_t j = 0; j < targets.size(); ++j) {
    if (targets[j] >= n_items) return OutOfRange(targets[j], n_items);
    auto [row, inserted] = index->Insert(targets[j], static_cast<std::uint32_t>(nodes->size()));
    if (inserted) nodes->push_back(targets[j]);
    (*target_pos)[j] = row;
  }
  return Status::OK();
}

// Sizes of a batch for the estimates: nodes per level and adjacency entries per layer.
struct BatchShape {
  std::uint64_t nodes = 0;                // |S^(0)|
  std::vector<std::uint64_t> targets;     // |S^(k)| for k = 1..K (index k-1)
  std::vector<std::uint64_t> inputs;      // |S^(k-1)|
  std::vector<std::uint64_t> entries;     // adjacency entries of layer k
};

struct ShapeBytesResult {
  std::uint64_t ids = 0;  // ids and adjacency only
  BatchBytes bytes;
};

ShapeBytesResult ShapeBytes(const BatchShape& s, const ModelConfig& c, bool with_grad) {
  const std::uint64_t F = c.feature_dim + c.structural_dim, in0 = c.input_dim();
  const std::uint64_t m = c.hidden, d = c.dim;
  std::uint64_t ids = s.nodes * (4 + 8);  // NodeIds, and their int64 tensor
  for (std::size_t k = 0; k < s.targets.size(); ++k) {
    ids += s.targets[k] * 8 + s.entries[k] * (8 + 4);  // offsets, index, weight
  }
  std::uint64_t act = 0;  // floats
  if (c.id_embedding_dim > 0) act += s.nodes * (c.id_embedding_dim + (F > 0 ? in0 : 0));
  std::uint64_t in = in0;
  for (std::size_t k = 0; k < s.targets.size(); ++k) {
    // Q h for every input, pooled rows, concat(h, pooled), W's output and its normalisation.
    act += s.inputs[k] * m + s.targets[k] * (m + in + m + 2 * d);
    in = d;
  }
  act += (s.targets.empty() ? s.nodes : s.targets.back()) * 4 * d;  // head
  // Backward holds gradients of about the same shapes while the saved tensors are alive.
  if (with_grad) act *= 2;
  ShapeBytesResult r;
  r.ids = ids;
  r.bytes.data = ids + s.nodes * F * 4;
  r.bytes.total = r.bytes.data + act * 4;
  return r;
}

// Every neighbourhood disjoint: an upper bound on the shape of a batch of `targets`.
BatchShape UpperBoundShape(std::uint64_t targets, std::uint32_t width, std::uint32_t layers) {
  BatchShape s;
  s.targets.resize(layers);
  s.inputs.resize(layers);
  s.entries.resize(layers);
  std::uint64_t level = targets;
  for (std::uint32_t k = layers; k >= 1; --k) {
    s.targets[k - 1] = level;
    s.entries[k - 1] = level * width;
    level += level * width;
    s.inputs[k - 1] = level;
  }
  s.nodes = level;
  return s;
}

}  // namespace

BatchBytes EstimateBatchBytes(const MiniBatch& b, const ModelConfig& model, bool with_grad) {
  BatchShape s;
  s.nodes = b.nodes.size();
  for (const LayerBlock& l : b.layers) {
    s.targets.push_back(l.num_targets);
    s.inputs.push_back(l.num_inputs);
    s.entries.push_back(l.index.size());
  }
  return ShapeBytes(s, model, with_grad).bytes;
}

// ---- Parts ------------------------------------------------------------------------------

PartPlanner::PartPlanner(std::span<const NodeId> targets, std::uint32_t layers,
                         const NeighborhoodSource& nbrs, const FeatureSource* features,
                         const ModelConfig& model, bool with_grad, std::uint64_t budget)
    : targets_(targets),
      layers_(layers),
      nbrs_(nbrs),
      features_(features),
      model_(model),
      with_grad_(with_grad),
      budget_(std::max<std::uint64_t>(1, budget)) {
  ModelConfig c = model;
  c.layers = layers;
  bytes_per_target_ = static_cast<double>(
      ShapeBytes(UpperBoundShape(1, nbrs.width(), layers), c, with_grad).bytes.total);
}

Status PartPlanner::Next(MiniBatch* part, std::size_t* lo, std::size_t* hi) {
  const std::size_t remaining = targets_.size() - next_;
  // Aim below the budget: a part's neighbourhoods overlap less than the last one's did.
  const double aim = 0.9 * static_cast<double>(budget_);
  std::size_t r = static_cast<std::size_t>(
      std::clamp(aim / bytes_per_target_, 1.0, static_cast<double>(remaining)));
  std::vector<std::int64_t> pos;
  auto t0 = std::chrono::steady_clock::now();
  while (true) {
    PGRAPH_RETURN_IF_ERROR(BuildSubgraph(targets_.subspan(next_, r), layers_, nbrs_, part, &pos));
    const std::uint64_t bytes = EstimateBatchBytes(*part, model_, with_grad_).total;
    bytes_per_target_ = static_cast<double>(bytes) / static_cast<double>(r);
    if (bytes <= budget_ || r == 1) break;
    r = std::clamp<std::size_t>(static_cast<std::size_t>(aim / bytes_per_target_), 1, r - 1);
  }
  part->sample_seconds = Since(t0);
  auto t1 = std::chrono::steady_clock::now();
  PGRAPH_RETURN_IF_ERROR(GatherFeatures(features_, part));
  part->gather_seconds = Since(t1);
  *lo = next_;
  *hi = next_ + r;
  next_ += r;
  return Status::OK();
}

Status PartPlanner::Build(std::size_t lo, std::size_t hi, MiniBatch* part) const {
  std::vector<std::int64_t> pos;
  auto t0 = std::chrono::steady_clock::now();
  PGRAPH_RETURN_IF_ERROR(BuildSubgraph(targets_.subspan(lo, hi - lo), layers_, nbrs_, part, &pos));
  part->sample_seconds = Since(t0);
  auto t1 = std::chrono::steady_clock::now();
  PGRAPH_RETURN_IF_ERROR(GatherFeatures(features_, part));
  part->gather_seconds = Since(t1);
  return Status::OK();
}

std::uint64_t Mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// ---- In-memory sources ------------------------------------------------------------------

InMemoryFeatures::InMemoryFeatures(std::uint32_t dim, std::vector<float> rows)
    : dim_(dim), rows_(std::move(rows)) {}

Status InMemoryFeatures::Gather(std::span<const NodeId> ids, std::span<float> out) const {
  const std::uint64_t n = num_items();
  PGRAPH_CHECK(out.size() >= ids.size() * dim_);
  for (std::size_t j = 0; j < ids.size(); ++j) {
    if (ids[j] >= n) return OutOfRange(ids[j], n);
    std::memcpy(out.data() + j * dim_, rows_.data() + std::size_t{ids[j]} * dim_,
                dim_ * sizeof(float));
  }
  return Status::OK();
}

InMemoryNeighborhoods::InMemoryNeighborhoods(std::uint32_t width, std::vector<NodeId> neighbors,
                                             std::vector<float> weights)
    : width_(width), nbrs_(std::move(neighbors)), weights_(std::move(weights)) {
  PGRAPH_CHECK(nbrs_.size() == weights_.size());
}

Status InMemoryNeighborhoods::Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
                                  std::span<float> weights) const {
  const std::uint64_t n = num_items();
  PGRAPH_CHECK(neighbors.size() >= ids.size() * width_ && weights.size() >= ids.size() * width_);
  for (std::size_t j = 0; j < ids.size(); ++j) {
    if (ids[j] >= n) return OutOfRange(ids[j], n);
    std::size_t src = std::size_t{ids[j]} * width_;
    std::memcpy(neighbors.data() + j * width_, nbrs_.data() + src, width_ * sizeof(NodeId));
    std::memcpy(weights.data() + j * width_, weights_.data() + src, width_ * sizeof(float));
  }
  return Status::OK();
}

Status InMemoryCheckpoints::Save(std::span<const std::byte> blob, const std::string&,
                                 std::uint32_t epoch) {
  ++saves_;
  if (fail_on_save > 0 && saves_ == fail_on_save) {
    return Status::IOError("injected checkpoint failure");
  }
  blob_.emplace(blob.begin(), blob.end());
  last_epoch_ = epoch;
  return Status::OK();
}

Result<std::optional<std::vector<std::byte>>> InMemoryCheckpoints::LoadLatest() {
  return blob_;
}

Status TruncatedNeighborhoods::Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
                                   std::span<float> weights) const {
  const std::uint32_t full = base_->width();
  if (width_ >= full) return base_->Get(ids, neighbors, weights);
  std::vector<NodeId> n(ids.size() * full);
  std::vector<float> w(ids.size() * full);
  PGRAPH_RETURN_IF_ERROR(base_->Get(ids, n, w));
  std::vector<std::uint32_t> order(full);
  for (std::size_t j = 0; j < ids.size(); ++j) {
    const NodeId* rn = n.data() + j * full;
    const float* rw = w.data() + j * full;
    std::iota(order.begin(), order.end(), 0u);
    // Heaviest first; stable so equal weights keep the walker's order.
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      bool va = rn[a] != kInvalidNode, vb = rn[b] != kInvalidNode;
      if (va != vb) return va;
      return rw[a] > rw[b];
    });
    double sum = 0;
    for (std::uint32_t t = 0; t < width_; ++t) {
      if (rn[order[t]] != kInvalidNode) sum += rw[order[t]];
    }
    for (std::uint32_t t = 0; t < width_; ++t) {
      NodeId v = rn[order[t]];
      neighbors[j * width_ + t] = v;
      weights[j * width_ + t] =
          v == kInvalidNode ? 0.0f : (sum > 0 ? static_cast<float>(rw[order[t]] / sum) : 0.0f);
    }
  }
  return Status::OK();
}

// ---- Subgraph ---------------------------------------------------------------------------

Status BuildSubgraph(std::span<const NodeId> targets, std::uint32_t layers,
                     const NeighborhoodSource& nbrs, MiniBatch* out,
                     std::vector<std::int64_t>* target_pos) {
  const std::uint32_t T = nbrs.width();
  const std::uint64_t n_items = nbrs.num_items();
  out->width = T;
  out->nodes.clear();
  out->layers.assign(layers, LayerBlock{});
  IdIndex index(targets.size() * (layers > 0 ? T + 1 : 1));
  PGRAPH_RETURN_IF_ERROR(InsertTargets(targets, n_items, &index, &out->nodes, target_pos));
  // Neighbour rows fetched so far, for nodes [0, fetched).
  std::vector<NodeId> nrow;
  std::vector<float> wrow;
  std::size_t fetched = 0;
  // S^(K) = targets; for k = K..1, S^(k-1) = S^(k) plus the neighbours of S^(k).
  std::size_t level_size = out->nodes.size();
  for (std::uint32_t k = layers; k >= 1; --k) {
    if (level_size > fetched) {
      nrow.resize(level_size * T);
      wrow.resize(level_size * T);
      std::span<const NodeId> ids(out->nodes.data() + fetched, level_size - fetched);
      PGRAPH_RETURN_IF_ERROR(nbrs.Get(ids, std::span<NodeId>(nrow).subspan(fetched * T),
                                      std::span<float>(wrow).subspan(fetched * T)));
      fetched = level_size;
    }
    LayerBlock& block = out->layers[k - 1];
    block.num_targets = static_cast<std::uint32_t>(level_size);
    block.offsets.resize(level_size);
    block.index.clear();
    block.weight.clear();
    block.index.reserve(level_size * T);
    block.weight.reserve(level_size * T);
    for (std::size_t u = 0; u < level_size; ++u) {
      block.offsets[u] = static_cast<std::int64_t>(block.index.size());
      for (std::uint32_t t = 0; t < T; ++t) {
        NodeId v = nrow[u * T + t];
        if (v == kInvalidNode) continue;
        if (v >= n_items) return OutOfRange(v, n_items);
        auto [row, inserted] = index.Insert(v, static_cast<std::uint32_t>(out->nodes.size()));
        if (inserted) out->nodes.push_back(v);
        block.index.push_back(row);
        block.weight.push_back(wrow[u * T + t]);
      }
    }
    level_size = out->nodes.size();
    block.num_inputs = static_cast<std::uint32_t>(level_size);
  }
  return Status::OK();
}

Status DistinctTargets(std::span<const NodeId> targets, std::uint64_t n_items,
                       std::vector<NodeId>* distinct, std::vector<std::int64_t>* position) {
  IdIndex index(targets.size());
  distinct->clear();
  return InsertTargets(targets, n_items, &index, distinct, position);
}

Status GatherFeatures(const FeatureSource* features, MiniBatch* out) {
  if (features == nullptr) {
    out->feature_dim = 0;
    out->features.clear();
    return Status::OK();
  }
  out->feature_dim = features->dim();
  out->features.resize(out->nodes.size() * std::size_t{out->feature_dim});
  return features->Gather(out->nodes, out->features);
}

// ---- Producer ---------------------------------------------------------------------------

BatchProducer::BatchProducer(const TrainData& data, const NeighborhoodSource* nbrs,
                             ProducerConfig config)
    : data_(data), nbrs_(nbrs), config_(config) {
  order_.resize(data.train_pairs.size());
  std::iota(order_.begin(), order_.end(), 0u);
  Rng rng(StreamSeed(config.seed, 0x5eed0001, config.epoch));
  for (std::size_t i = order_.size(); i > 1; --i) {
    std::swap(order_[i - 1], order_[rng.Below(i)]);
  }
  num_batches_ = (order_.size() + config.batch - 1) / config.batch;
  if (config.max_batches > 0) num_batches_ = std::min(num_batches_, config.max_batches);
}

std::unique_ptr<MiniBatch> BatchProducer::Produce(std::uint64_t index) const {
  auto b = std::make_unique<MiniBatch>();
  b->sequence = index;
  auto t0 = std::chrono::steady_clock::now();
  const std::size_t first = index * config_.batch;
  const std::size_t count = std::min<std::size_t>(config_.batch, order_.size() - first);
  const std::uint64_t n_items = nbrs_->num_items();
  const std::uint32_t H = config_.hard_per_pair;
  Rng rng(StreamSeed(config_.seed, config_.epoch, index, 0x9e9));
  // Targets: q's, i's, shared negatives, hard negatives.
  std::vector<NodeId> targets;
  targets.reserve(count * (2 + H) + config_.negatives);
  for (std::size_t j = 0; j < count; ++j) targets.push_back(data_.train_pairs[order_[first + j]].first);
  for (std::size_t j = 0; j < count; ++j) targets.push_back(data_.train_pairs[order_[first + j]].second);
  for (std::uint32_t j = 0; j < config_.negatives; ++j) {
    targets.push_back(static_cast<NodeId>(rng.Below(n_items)));
  }
  if (H > 0) {
    std::vector<NodeId> hard;
    for (std::size_t j = 0; j < count; ++j) {
      hard.clear();
      NodeId q = data_.train_pairs[order_[first + j]].first;
      b->status = data_.hard->Sample(q, H, StreamSeed(config_.seed, config_.epoch, index, j + 1),
                                     &hard);
      if (!b->status.ok()) return b;
      if (hard.size() != H) {
        b->status = Status::Internal("hard negative sampler returned the wrong count");
        return b;
      }
      targets.insert(targets.end(), hard.begin(), hard.end());
    }
  }
  std::vector<std::int64_t> pos;
  // Whole when the batch fits its memory share (always when the share is unlimited), else a
  // plan of the distinct targets for the consumer to run in parts. The bound comes first so
  // that a batch far over the share never builds its whole subgraph, not even its ids.
  bool whole = true;
  if (config_.batch_bytes > 0) {
    ModelConfig c = config_.model;
    c.layers = config_.layers;
    auto fits = [&](const BatchBytes& x) {
      return x.data <= config_.batch_data_bytes && x.total <= config_.batch_bytes;
    };
    const ShapeBytesResult bound =
        ShapeBytes(UpperBoundShape(targets.size(), nbrs_->width(), config_.layers), c, true);
    if (!fits(bound.bytes)) {
      if (bound.ids <= config_.batch_data_bytes) {
        b->status = BuildSubgraph(targets, config_.layers, *nbrs_, b.get(), &pos);
        if (!b->status.ok()) return b;
        whole = fits(EstimateBatchBytes(*b, c, /*with_grad=*/true));
        if (!whole) {
          // Keep S^(K), the first rows; `pos` already points into it.
          b->nodes.resize(b->num_targets());
          b->layers.clear();
        }
      } else {
        whole = false;
        b->status = DistinctTargets(targets, n_items, &b->nodes, &pos);
        if (!b->status.ok()) return b;
      }
      if (!whole) {
        b->nodes.shrink_to_fit();
        b->split = true;
      }
    }
  }
  if (whole && b->nodes.empty()) {
    b->status = BuildSubgraph(targets, config_.layers, *nbrs_, b.get(), &pos);
    if (!b->status.ok()) return b;
  }
  auto at = pos.begin();
  b->query.assign(at, at + count);
  at += count;
  b->positive.assign(at, at + count);
  at += count;
  b->negative.assign(at, at + config_.negatives);
  at += config_.negatives;
  b->hard.assign(at, pos.end());
  b->hard_per_pair = H;
  b->sample_seconds = Since(t0);
  if (b->split) return b;
  auto t1 = std::chrono::steady_clock::now();
  b->status = GatherFeatures(data_.features, b.get());
  b->gather_seconds = Since(t1);
  return b;
}

std::unique_ptr<MiniBatch> ProduceEmbeddingBatch(std::span<const NodeId> items,
                                                 std::uint32_t layers,
                                                 const NeighborhoodSource& nbrs,
                                                 const FeatureSource* features) {
  auto b = std::make_unique<MiniBatch>();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::int64_t> pos;
  b->status = BuildSubgraph(items, layers, nbrs, b.get(), &pos);
  if (!b->status.ok()) return b;
  b->query = std::move(pos);  // the rows of the requested items, in request order
  b->sample_seconds = Since(t0);
  auto t1 = std::chrono::steady_clock::now();
  b->status = GatherFeatures(features, b.get());
  b->gather_seconds = Since(t1);
  return b;
}

// ---- PPR hard negatives ----------------------------------------------------------------

namespace {

class PprHardNegatives final : public HardNegativeSampler {
 public:
  PprHardNegatives(const NeighborhoodSource* nbrs, std::uint32_t lo, std::uint32_t hi,
                   std::uint32_t steps, float restart)
      : nbrs_(nbrs), steps_(steps), restart_(restart) {
    const std::uint64_t n = nbrs->num_items();
    lo_ = lo ? lo : static_cast<std::uint32_t>(std::max<std::uint64_t>(10, n / 200));
    hi_ = hi ? hi : static_cast<std::uint32_t>(std::max<std::uint64_t>(lo_ + 30, n / 50));
    if (hi_ <= lo_) hi_ = lo_ + 1;
  }

  Status Sample(NodeId q, std::uint32_t count, std::uint64_t seed,
                std::vector<NodeId>* out) const override {
    const std::uint32_t T = nbrs_->width();
    const std::uint64_t n = nbrs_->num_items();
    if (q >= n) return OutOfRange(q, n);
    Rng rng(seed);
    struct Row {
      std::vector<NodeId> n;
      std::vector<float> w;
    };
    std::unordered_map<NodeId, Row> rows;
    std::unordered_map<NodeId, std::uint32_t> visits;
    auto row_of = [&](NodeId u) -> Result<const Row*> {
      auto it = rows.find(u);
      if (it != rows.end()) return &it->second;
      Row r{std::vector<NodeId>(T), std::vector<float>(T)};
      PGRAPH_RETURN_IF_ERROR(nbrs_->Get(std::span<const NodeId>(&u, 1), r.n, r.w));
      return &rows.emplace(u, std::move(r)).first->second;
    };
    NodeId cur = q;
    for (std::uint32_t s = 0; s < steps_; ++s) {
      if (rng.Uniform() < restart_) cur = q;
      PGRAPH_ASSIGN_OR_RETURN(const Row* r, row_of(cur));
      float total = 0;
      for (std::uint32_t t = 0; t < T; ++t) if (r->n[t] != kInvalidNode) total += r->w[t];
      if (total <= 0) {
        cur = q;
        continue;
      }
      float x = rng.Uniform() * total;
      NodeId next = kInvalidNode;
      for (std::uint32_t t = 0; t < T; ++t) {
        if (r->n[t] == kInvalidNode) continue;
        next = r->n[t];
        x -= r->w[t];
        if (x < 0) break;
      }
      cur = next;
      if (cur != q) ++visits[cur];
    }
    std::vector<std::pair<std::uint32_t, NodeId>> ranked;
    ranked.reserve(visits.size());
    for (auto [v, c] : visits) ranked.emplace_back(c, v);
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    // The rank window [lo_, hi_); when fewer items were reached, slide it down.
    const std::size_t width = hi_ - lo_;
    const std::size_t hi = std::min<std::size_t>(hi_, ranked.size());
    const std::size_t lo = hi == hi_ ? lo_ : (hi > width ? hi - width : 0);
    for (std::uint32_t j = 0; j < count; ++j) {
      if (hi > lo) {
        out->push_back(ranked[lo + rng.Below(hi - lo)].second);
      } else {
        NodeId v = static_cast<NodeId>(rng.Below(n));
        if (v == q && n > 1) v = static_cast<NodeId>((v + 1) % n);
        out->push_back(v);
      }
    }
    return Status::OK();
  }

 private:
  const NeighborhoodSource* nbrs_;
  std::uint32_t lo_, hi_, steps_;
  float restart_;
};

}  // namespace

std::unique_ptr<HardNegativeSampler> MakePprHardNegativeSampler(
    const NeighborhoodSource* neighborhoods, std::uint32_t rank_lo, std::uint32_t rank_hi,
    std::uint32_t steps, float restart) {
  return std::make_unique<PprHardNegatives>(neighborhoods, rank_lo, rank_hi, steps, restart);
}

}  // namespace pgraph::train
