// The training loop: producer-consumer pipeline (TBB flow graph), max-margin loss with
// shared + hard negatives, Adam with warm-up and exponential decay, validation, checkpoints.
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <tbb/concurrent_queue.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <unordered_set>

#include "storage/blas_runtime.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/fused_ops.h"
#include "train/model.h"

namespace pgraph::train {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Status TorchError(const c10::Error& e) {
  return Status::Internal(std::string("torch: ") + e.what_without_backtrace());
}

// Adam (Kingma & Ba) with PyTorch's update rule, kept here so its state is checkpointed
// exactly and identically across libtorch versions.
struct Adam {
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<at::Tensor> m, v;
  std::int64_t step = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;  // decoupled (AdamW), on parameters with >= 2 dimensions

  void Init() {
    for (auto& [name, p] : params) {
      m.push_back(at::zeros_like(p));
      v.push_back(at::zeros_like(p));
    }
  }
  // Returns the gradient norm before clipping (0 when clipping is off: not computed).
  double ClipAndStep(double lr, double clip) {
    torch::NoGradGuard no_grad;
    double norm = 0;
    if (clip > 0) {
      double sum = 0;
      for (auto& [name, p] : params) {
        if (p.grad().defined()) sum += SquaredNorm(p.grad());
      }
      norm = std::sqrt(sum);
    }
    ++step;
    AdamScalars s;
    s.lr = lr;
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.eps = eps;
    s.grad_scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
    s.bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    s.bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    for (std::size_t j = 0; j < params.size(); ++j) {
      at::Tensor& p = params[j].second;
      if (!p.grad().defined()) continue;
      at::Tensor g = p.grad();
      if (weight_decay > 0 && p.dim() >= 2) p.mul_(1.0 - lr * weight_decay);
      AdamUpdate(p, g, m[j], v[j], s);
    }
    return norm;
  }
};

NamedArray ToArray(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  NamedArray a;
  a.shape = c.sizes().vec();
  a.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

Status FromArray(const NamedArray& a, const std::string& name, at::Tensor* dst) {
  if (a.shape != dst->sizes().vec()) {
    return Status::InvalidArgument("checkpoint array " + name + " has the wrong shape");
  }
  torch::NoGradGuard no_grad;
  dst->copy_(at::from_blob(const_cast<float*>(a.data.data()), a.shape,
                           at::TensorOptions().dtype(at::kFloat)));
  return Status::OK();
}

// The item features followed by the structural ones, row by row.
class ConcatFeatures final : public FeatureSource {
 public:
  ConcatFeatures(const FeatureSource* a, const FeatureSource* b) : a_(a), b_(b) {}
  std::uint64_t num_items() const override { return b_->num_items(); }
  std::uint32_t dim() const override { return (a_ ? a_->dim() : 0) + b_->dim(); }
  Status Gather(std::span<const NodeId> ids, std::span<float> out) const override {
    const std::size_t da = a_ ? a_->dim() : 0, db = b_->dim(), d = da + db;
    std::vector<float> part(ids.size() * std::max(da, db));
    if (da > 0) {
      PGRAPH_RETURN_IF_ERROR(a_->Gather(ids, std::span(part).first(ids.size() * da)));
      for (std::size_t r = 0; r < ids.size(); ++r) {
        std::copy_n(part.data() + r * da, da, out.data() + r * d);
      }
    }
    PGRAPH_RETURN_IF_ERROR(b_->Gather(ids, std::span(part).first(ids.size() * db)));
    for (std::size_t r = 0; r < ids.size(); ++r) {
      std::copy_n(part.data() + r * db, db, out.data() + r * d + da);
    }
    return Status::OK();
  }

 private:
  const FeatureSource* a_;  // may be null (id embeddings only)
  const FeatureSource* b_;
};

class Trainer {
 public:
  Trainer(const TrainData& data, const TrainOptions& options) : data_(data), opt_(options) {}
  ~Trainer() {
    if (blas_threads_before_ > 0) storage::SetBlasThreads(blas_threads_before_);
  }
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  Result<TrainReport> Run() {
    auto t0 = Clock::now();
    PGRAPH_RETURN_IF_ERROR(Setup());
    for (std::uint32_t epoch = first_epoch_; epoch <= opt_.epochs; ++epoch) {
      EpochStats stats;
      PGRAPH_RETURN_IF_ERROR(RunEpoch(epoch, &stats));
      auto tv = Clock::now();
      {
        // Validation sees the model that is saved: the average, with ema_decay.
        AverageSwap swap(this);
        PGRAPH_RETURN_IF_ERROR(Validate(&stats));
      }
      report_.time.validation += Since(tv);
      if (Cancelled()) return Status::Cancelled("training interrupted");
      if (data_.checkpoints != nullptr && opt_.checkpoint) {
        auto tc = Clock::now();
        PGRAPH_RETURN_IF_ERROR(SaveCheckpoint(epoch));
        report_.time.checkpoint += Since(tc);
      }
      report_.epochs.push_back(stats);
      if (opt_.on_epoch) opt_.on_epoch(stats);
    }
    report_.seconds = Since(t0);
    report_.pairs_per_second = train_seconds_ > 0 ? report_.pairs / train_seconds_ : 0;
    return std::move(report_);
  }

 private:
  bool Cancelled() const {
    return opt_.cancel != nullptr && opt_.cancel->load(std::memory_order_relaxed);
  }

  // While alive, the model holds the parameters' moving average instead of the optimizer's
  // iterate (nothing without ema_decay); the iterate is put back on destruction.
  class AverageSwap {
   public:
    explicit AverageSwap(Trainer* t) : t_(t) {
      if (t_->ema_.empty()) return;
      torch::NoGradGuard no_grad;
      for (std::size_t j = 0; j < t_->adam_.params.size(); ++j) {
        at::Tensor& p = t_->adam_.params[j].second;
        saved_.push_back(p.detach().clone());
        p.detach().copy_(t_->ema_[j]);
      }
    }
    ~AverageSwap() {
      torch::NoGradGuard no_grad;
      for (std::size_t j = 0; j < saved_.size(); ++j) {
        t_->adam_.params[j].second.detach().copy_(saved_[j]);
      }
    }
    AverageSwap(const AverageSwap&) = delete;
    AverageSwap& operator=(const AverageSwap&) = delete;

   private:
    Trainer* t_;
    std::vector<at::Tensor> saved_;
  };

  // ema <- d ema + (1 - d) p after the optimizer's step t (1-based), d = min(ema_decay,
  // (1 + t) / (10 + t)): early on the average follows the iterate closely instead of
  // remembering the initialisation.
  void UpdateAverage() {
    if (ema_.empty()) return;
    torch::NoGradGuard no_grad;
    const double t = static_cast<double>(adam_.step);
    const double d = std::min(opt_.ema_decay, (1.0 + t) / (10.0 + t));
    for (std::size_t j = 0; j < ema_.size(); ++j) {
      ema_[j].lerp_(adam_.params[j].second.detach(), 1.0 - d);
    }
  }

  Status Setup() {
    if (data_.neighborhoods == nullptr) {
      return Status::InvalidArgument("training needs importance neighbourhoods (walk.*)");
    }
    const std::uint64_t n = data_.neighborhoods->num_items();
    if (n == 0) return Status::InvalidArgument("no items");
    if (data_.features != nullptr && data_.features->num_items() != n) {
      return Status::InvalidArgument("features cover " +
                                     std::to_string(data_.features->num_items()) +
                                     " items, neighbourhoods " + std::to_string(n));
    }
    // Resume first: the run-defining options come from the checkpoint.
    std::optional<CheckpointData> ckpt;
    std::uint32_t resumed_structural_dim = 0;
    if (opt_.resume && data_.checkpoints != nullptr) {
      PGRAPH_ASSIGN_OR_RETURN(auto blob, data_.checkpoints->LoadLatest());
      if (blob) {
        PGRAPH_ASSIGN_OR_RETURN(CheckpointData c, ParseCheckpoint(*blob));
        ModelConfig mc;
        PGRAPH_RETURN_IF_ERROR(ParseConfig(c.meta["config"], &mc, &opt_));
        opt_.layers = mc.layers;
        opt_.dim = mc.dim;
        opt_.hidden = mc.hidden;
        opt_.neighbors = mc.neighbors;
        opt_.pooling = mc.pooling;
        opt_.id_embedding_dim = mc.id_embedding_dim;
        opt_.normalize = mc.normalize;
        opt_.magnitude = mc.magnitude;
        opt_.degree_feature = mc.structural_dim > 0;
        resumed_structural_dim = mc.structural_dim;
        const std::uint32_t have_dim = data_.features ? data_.features->dim() : 0;
        if (mc.num_items != n || mc.feature_dim != have_dim) {
          return Status::InvalidArgument(
              "--resume: the checkpoint was trained on " + std::to_string(mc.num_items) +
              " items with " + std::to_string(mc.feature_dim) + " features, the data has " +
              std::to_string(n) + " items with " + std::to_string(have_dim));
        }
        ckpt = std::move(c);
      }
    }
    if (opt_.layers < 1 || opt_.dim < 1 || opt_.hidden < 1 || opt_.batch < 1) {
      return Status::InvalidArgument("layers, dim, hidden and batch must be >= 1");
    }
    if (opt_.epochs < 1) return Status::InvalidArgument("epochs must be >= 1");
    if (!(opt_.temperature > 0)) return Status::InvalidArgument("temperature must be > 0");
    if (!(opt_.lr > 0)) return Status::InvalidArgument("lr must be > 0");
    if (!(opt_.ema_decay >= 0 && opt_.ema_decay < 1)) {
      return Status::InvalidArgument("ema decay must be in [0, 1)");
    }
    if (!(opt_.weight_decay >= 0 && std::isfinite(opt_.weight_decay))) {
      return Status::InvalidArgument("weight decay must be >= 0");
    }
    const std::uint32_t fdim = data_.features ? data_.features->dim() : 0;
    if (fdim == 0 && opt_.id_embedding_dim == 0) {
      return Status::InvalidArgument(
          "the store has no item features: use --id-embedding-dim to learn id embeddings");
    }
    nbrs_ = data_.neighborhoods;
    if (opt_.neighbors > 0 && opt_.neighbors < nbrs_->width()) {
      truncated_ = std::make_unique<TruncatedNeighborhoods>(nbrs_, opt_.neighbors);
      nbrs_ = truncated_.get();
    }
    // Pairs: check ids; drop any pair that is also held out (never trained on).
    std::unordered_set<std::uint64_t> heldout;
    for (auto [q, i] : data_.heldout_pairs) {
      if (q >= n || i >= n) return Status::InvalidArgument("held-out pair id out of range");
      heldout.insert((std::uint64_t{q} << 32) | i);
    }
    train_.train_pairs.reserve(data_.train_pairs.size());
    for (auto [q, i] : data_.train_pairs) {
      if (q >= n || i >= n) {
        return Status::InvalidArgument("training pair (" + std::to_string(q) + ", " +
                                       std::to_string(i) + ") out of range");
      }
      if (heldout.count((std::uint64_t{q} << 32) | i)) continue;
      train_.train_pairs.emplace_back(q, i);
    }
    if (train_.train_pairs.empty()) return Status::InvalidArgument("no training pairs");
    train_.features = data_.features;
    std::uint32_t structural_dim = 0;
    if (opt_.degree_feature && data_.structural != nullptr) {
      if (data_.structural->num_items() != n) {
        return Status::InvalidArgument("structural features cover " +
                                       std::to_string(data_.structural->num_items()) +
                                       " items, neighbourhoods " + std::to_string(n));
      }
      structural_dim = data_.structural->dim();
      combined_ = std::make_unique<ConcatFeatures>(data_.features, data_.structural);
      train_.features = combined_.get();
    }
    if (ckpt && resumed_structural_dim != structural_dim) {
      return Status::InvalidArgument(
          "--resume: the checkpoint was trained with " +
          std::to_string(resumed_structural_dim) +
          " structural features, this data has " + std::to_string(structural_dim));
    }
    train_.neighborhoods = nbrs_;
    train_.hard = data_.hard;
    if (opt_.hard_negatives && train_.hard == nullptr) {
      ppr_ = MakePprHardNegativeSampler(nbrs_);
      train_.hard = ppr_.get();
    }
    negatives_ = std::min<std::uint32_t>(
        opt_.negatives, static_cast<std::uint32_t>(std::max<std::uint64_t>(1, n / 10)));

    // Device and threads.
    PGRAPH_ASSIGN_OR_RETURN(std::string dev, ResolveDevice(opt_.device));
    device_ = at::Device(dev);
    report_.device = dev;
    // The pipeline's consumer is the calling thread, blocked while it waits for a batch: the
    // producer stages need a TBB worker beside it. With one thread allowed process-wide
    // (`pgraph --threads 1` sets a tbb::global_control) there is none and the pipeline would
    // wait forever, so the stages run sequentially; the batches, and so the results, are the
    // same.
    if (tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism) < 2) {
      opt_.pipeline = false;
    }
    const int threads =
        opt_.threads > 0 ? opt_.threads
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    torch_threads_ = opt_.torch_threads > 0 ? opt_.torch_threads
                     : opt_.pipeline        ? std::max(1, threads - 1)
                                            : threads;
    at::set_num_threads(torch_threads_);
    blas_threads_before_ =
        storage::SetBlasThreads(opt_.blas_threads > 0 ? opt_.blas_threads : 1);

    model_config_.layers = opt_.layers;
    model_config_.dim = opt_.dim;
    model_config_.hidden = opt_.hidden;
    model_config_.neighbors = nbrs_->width();
    model_config_.feature_dim = fdim;
    model_config_.id_embedding_dim = opt_.id_embedding_dim;
    model_config_.num_items = n;
    model_config_.pooling = opt_.pooling;
    model_config_.normalize = opt_.normalize;
    model_config_.magnitude = opt_.normalize && opt_.magnitude;
    model_config_.structural_dim = structural_dim;
    if (structural_dim > 0) {
      model_config_.degree_mean = data_.degree_mean;
      model_config_.degree_std = data_.degree_std;
    }
    report_.config = FormatConfig(model_config_, opt_);

    at::manual_seed(opt_.seed);
    model_ = PinSageModel(model_config_);
    adam_.params = PublicParameters(*model_);
    adam_.weight_decay = opt_.weight_decay;
    adam_.Init();
    for (auto& [name, p] : adam_.params) report_.parameters += p.numel();

    // Half the budget is for batches (Train() gives the other half to the store's cache and
    // samplers): a half of that for the batch or part the consumer runs, with its
    // activations, and the other for the data of the batches waiting in the pipeline.
    batch_bytes_ = std::max<std::uint64_t>(1, opt_.memory_budget / 4);
    const std::uint64_t waiting = opt_.pipeline ? std::max<std::uint32_t>(1, opt_.prefetch) : 1;
    batch_data_bytes_ = std::max<std::uint64_t>(1, opt_.memory_budget / 4 / waiting);

    steps_per_epoch_ = (train_.train_pairs.size() + opt_.batch - 1) / opt_.batch;
    if (opt_.max_steps_per_epoch > 0) {
      steps_per_epoch_ = std::min<std::uint64_t>(steps_per_epoch_, opt_.max_steps_per_epoch);
    }
    if (ckpt) PGRAPH_RETURN_IF_ERROR(RestoreCheckpoint(*ckpt));
    report_.first_epoch = first_epoch_;
    model_->to(device_);
    for (auto& mt : adam_.m) mt = mt.to(device_);
    for (auto& vt : adam_.v) vt = vt.to(device_);
    adam_.params = PublicParameters(*model_);  // after the move
    if (opt_.ema_decay > 0) {
      torch::NoGradGuard no_grad;
      for (std::size_t j = 0; j < adam_.params.size(); ++j) {
        ema_.push_back(resumed_average_.empty()
                           ? adam_.params[j].second.detach().clone()
                           : resumed_average_[j].to(device_));
      }
      resumed_average_.clear();
    }
    return Status::OK();
  }

  Status RestoreCheckpoint(const CheckpointData& c) {
    // Without averaging the public names hold the iterate; with it, the average, and the
    // iterate is under "adam.w/<name>".
    ModelParameters params;
    for (auto& [name, a] : c.arrays) {
      if (name.rfind("adam.", 0) != 0) params.arrays[name] = a;
    }
    if (opt_.ema_decay > 0) {
      for (auto& [name, p] : adam_.params) {
        auto avg = params.arrays.find(name);
        auto w = c.arrays.find("adam.w/" + name);
        if (avg == params.arrays.end() || w == c.arrays.end()) {
          return Status::Corruption("checkpoint lacks the averaged or the optimizer's " + name);
        }
        at::Tensor a = at::empty_like(p);
        PGRAPH_RETURN_IF_ERROR(FromArray(avg->second, name, &a));
        resumed_average_.push_back(std::move(a));
        params.arrays[name] = w->second;
      }
    }
    PGRAPH_RETURN_IF_ERROR(LoadParameters(params, model_.get()));
    for (std::size_t j = 0; j < adam_.params.size(); ++j) {
      const std::string& name = adam_.params[j].first;
      auto m = c.arrays.find("adam.m/" + name), v = c.arrays.find("adam.v/" + name);
      if (m == c.arrays.end() || v == c.arrays.end()) {
        return Status::Corruption("checkpoint lacks the Adam state of " + name);
      }
      PGRAPH_RETURN_IF_ERROR(FromArray(m->second, name, &adam_.m[j]));
      PGRAPH_RETURN_IF_ERROR(FromArray(v->second, name, &adam_.v[j]));
    }
    auto num = [&](const char* key) -> std::uint64_t {
      auto it = c.meta.find(key);
      return it == c.meta.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
    };
    adam_.step = static_cast<std::int64_t>(num("adam.step"));
    global_step_ = num("global_step");
    first_epoch_ = static_cast<std::uint32_t>(num("epoch")) + 1;
    return Status::OK();
  }

  Status SaveCheckpoint(std::uint32_t epoch) {
    CheckpointData c;
    c.meta["config"] = report_.config;
    c.meta["epoch"] = std::to_string(epoch);
    c.meta["global_step"] = std::to_string(global_step_);
    c.meta["adam.step"] = std::to_string(adam_.step);
    for (std::size_t j = 0; j < adam_.params.size(); ++j) {
      const std::string& name = adam_.params[j].first;
      if (ema_.empty()) {
        c.arrays[name] = ToArray(adam_.params[j].second);
      } else {
        c.arrays[name] = ToArray(ema_[j]);
        c.arrays["adam.w/" + name] = ToArray(adam_.params[j].second);
      }
      c.arrays["adam.m/" + name] = ToArray(adam_.m[j]);
      c.arrays["adam.v/" + name] = ToArray(adam_.v[j]);
    }
    std::vector<std::byte> blob = SerializeCheckpoint(c);
    return data_.checkpoints->Save(blob, report_.config, epoch);
  }

  double LearningRate(std::uint64_t step) const {
    const double base = opt_.lr * opt_.batch / 512.0;  // linear scaling rule
    const double spe = static_cast<double>(std::max<std::uint64_t>(1, steps_per_epoch_));
    if (opt_.warmup && step < steps_per_epoch_) return base * (step + 1) / spe;
    const double after = opt_.warmup ? step - spe : static_cast<double>(step);
    return base * std::pow(opt_.lr_decay, after / spe);
  }

  // The loss of a batch from z, the embeddings of its targets S^(K), and its wiring
  // (t.query / positive / negative / hard: rows of z).
  at::Tensor BatchLoss(const at::Tensor& z, const BatchTensors& t) const {
    at::Tensor zq = z.index_select(0, t.query);
    at::Tensor zi = z.index_select(0, t.positive);
    at::Tensor pos = (zq * zi).sum(1, /*keepdim=*/true);             // [B x 1]
    // Score blocks of the negatives, [B x *] each: shared, in-batch, hard.
    std::vector<at::Tensor> negs = {zq.mm(z.index_select(0, t.negative).t())};
    if (opt_.in_batch_negatives && zi.size(0) > 1) {
      // The other pairs' positives; a pair's own positive is masked out (-inf for the
      // softmax, no hinge for the margin loss).
      at::Tensor others = zq.mm(zi.t());
      at::Tensor own = at::eye(others.size(0), others.options().dtype(at::kBool));
      others = others.masked_fill(own, -std::numeric_limits<float>::infinity());
      negs.push_back(others);
    }
    if (t.hard_per_pair > 0) {
      const std::int64_t B = zq.size(0);
      at::Tensor zh = z.index_select(0, t.hard).view({B, t.hard_per_pair, z.size(1)});
      at::Tensor hs = at::bmm(zh, zq.unsqueeze(2)).squeeze(2);     // [B x H]
      negs.push_back(hs);
    }
    if (opt_.loss == Loss::kSoftmax) {
      // The positive is class 0 of each row.
      negs.insert(negs.begin(), pos);
      return SoftmaxLossFirst(negs, opt_.temperature);
    }
    at::Tensor neg = negs.size() == 1 ? negs[0] : at::cat(negs, 1);
    return at::relu(neg - pos + opt_.margin).mean();
  }

  // Forward and backward of a batch too large for its memory share (a plan: MiniBatch::split),
  // with the gradients a whole-batch step would give, up to rounding. The loss couples every
  // target through the shared negatives, so the batch cannot be cut into independent
  // micro-batches; instead (as in GradCache, Gao et al. 2021) pass 1 embeds the targets part
  // by part without keeping activations, the loss and its gradient dL/dz are computed on the
  // small [targets x d] matrix z, and pass 2 runs each part again with autograd and
  // back-propagates its rows of dL/dz. The last part of pass 1 keeps its graph, so it is not
  // run twice. Costs one more forward pass and one more build of every part but the last.
  Status ForwardBackwardInParts(const MiniBatch& plan, double* loss_value) {
    auto t0 = Clock::now();
    PartPlanner planner(plan.nodes, opt_.layers, *nbrs_, train_.features, model_config_,
                        /*with_grad=*/true, batch_bytes_);
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device_);
    at::Tensor z_all = at::empty({static_cast<std::int64_t>(plan.nodes.size()), opt_.dim}, f32);
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    std::unique_ptr<MiniBatch> last;  // the last part, alive while z_last's graph is
    at::Tensor z_last;
    // FLOPs done: every part's forward in pass 1, the backward of the last part, and the
    // forward and backward of the others in pass 2.
    double flops = 0;
    double io = 0;  // building parts, counted as sampling and gathering, not model time
    auto account = [&](const MiniBatch& part) {
      report_.time.sampling += part.sample_seconds;
      report_.time.gathering += part.gather_seconds;
      io += part.sample_seconds + part.gather_seconds;
    };
    // Pass 1.
    while (!planner.done()) {
      auto part = std::make_unique<MiniBatch>();
      std::size_t lo = 0, hi = 0;
      PGRAPH_RETURN_IF_ERROR(planner.Next(part.get(), &lo, &hi));
      account(*part);
      BatchTensors t = ToTensors(*part, device_);
      const double part_flops = model_->ForwardFlops(*part);
      flops += part_flops;
      if (planner.done()) {
        flops += 2.0 * part_flops;
        z_last = model_->forward(t);
        z_all.narrow(0, lo, hi - lo).copy_(z_last.detach());
        last = std::move(part);
      } else {
        torch::NoGradGuard no_grad;
        z_all.narrow(0, lo, hi - lo).copy_(model_->forward(t));
      }
      ranges.emplace_back(lo, hi);
    }
    z_all.requires_grad_(true);
    BatchTensors wiring = WiringTensors(plan);
    at::Tensor loss = BatchLoss(z_all, wiring);
    *loss_value = loss.item<double>();
    loss.backward();
    const at::Tensor dz = z_all.grad();
    auto t2 = Clock::now();
    report_.time.forward += std::chrono::duration<double>(t2 - t0).count() - io;
    io = 0;
    {
      auto [lo, hi] = ranges.back();
      z_last.backward(dz.narrow(0, lo, hi - lo));
      z_last = at::Tensor();
      last.reset();
    }
    // Pass 2: the other parts again, with autograd.
    for (std::size_t j = 0; j + 1 < ranges.size(); ++j) {
      MiniBatch part;
      auto [lo, hi] = ranges[j];
      PGRAPH_RETURN_IF_ERROR(planner.Build(lo, hi, &part));
      account(part);
      BatchTensors t = ToTensors(part, device_);
      model_->forward(t).backward(dz.narrow(0, lo, hi - lo));
      flops += 3.0 * model_->ForwardFlops(part);
    }
    report_.time.backward += Since(t2) - io;
    report_.model_flops += static_cast<std::uint64_t>(flops);
    ++report_.split_steps;
    report_.parts += ranges.size();
    return Status::OK();
  }

  // The loss wiring of a plan as tensors on the device.
  BatchTensors WiringTensors(const MiniBatch& b) const {
    auto i64 = at::TensorOptions().dtype(at::kLong);
    BatchTensors t;
    t.query = at::tensor(b.query, i64).to(device_);
    t.positive = at::tensor(b.positive, i64).to(device_);
    t.negative = at::tensor(b.negative, i64).to(device_);
    t.hard = at::tensor(b.hard, i64).to(device_);
    t.hard_per_pair = b.hard_per_pair;
    return t;
  }

  // One optimisation step on a produced batch (the consumer).
  Status Step(const MiniBatch& b, std::uint32_t epoch, std::uint64_t step_in_epoch,
              Clock::time_point epoch_start) {
    if (!b.status.ok()) return b.status;
    // OpenMP's thread count is per calling thread: set it on whichever thread consumes.
    thread_local int set_threads = 0;
    if (set_threads != torch_threads_) {
      at::set_num_threads(torch_threads_);
      set_threads = torch_threads_;
    }
    report_.time.sampling += b.sample_seconds;
    report_.time.gathering += b.gather_seconds;
    try {
      double loss_value = 0;
      if (b.split) {
        PGRAPH_RETURN_IF_ERROR(ForwardBackwardInParts(b, &loss_value));
      } else {
        auto t0 = Clock::now();
        BatchTensors t = ToTensors(b, device_);
        auto t1 = Clock::now();
        at::Tensor loss = BatchLoss(model_->forward(t), t);
        loss_value = loss.item<double>();
        auto t2 = Clock::now();
        loss.backward();
        report_.time.transfer += std::chrono::duration<double>(t1 - t0).count();
        report_.time.forward += std::chrono::duration<double>(t2 - t1).count();
        report_.time.backward += Since(t2);
        report_.model_flops += static_cast<std::uint64_t>(3.0 * model_->ForwardFlops(b));
        if (b.sequence == 0) report_.gemm_shapes = model_->ForwardGemms(b);
      }
      auto t3 = Clock::now();
      const double lr = LearningRate(global_step_);
      adam_.ClipAndStep(lr, opt_.clip_grad_norm);
      UpdateAverage();
      report_.time.optimizer += Since(t3);
      if (!std::isfinite(loss_value)) {
        return Status::Internal("loss is not finite at step " + std::to_string(global_step_) +
                                " (lower --lr or set --clip-grad-norm)");
      }
      epoch_loss_ += loss_value;
      epoch_pairs_ += b.num_pairs();
      ++epoch_steps_;
      ++global_step_;
      ++report_.steps;
      report_.pairs += b.num_pairs();
      if (opt_.on_step) {
        StepStats s;
        s.epoch = epoch;
        s.step = step_in_epoch;
        s.steps_in_epoch = steps_per_epoch_;
        s.global_step = global_step_ - 1;
        s.loss = loss_value;
        s.lr = lr;
        s.pairs = b.num_pairs();
        double secs = Since(epoch_start);
        s.pairs_per_second = secs > 0 ? epoch_pairs_ / secs : 0;
        double per_step = secs / static_cast<double>(epoch_steps_);
        s.eta_seconds = per_step * static_cast<double>(steps_per_epoch_ - epoch_steps_);
        opt_.on_step(s);
      }
      return Status::OK();
    } catch (const c10::Error& e) {
      return TorchError(e);
    }
  }

  Status RunEpoch(std::uint32_t epoch, EpochStats* stats) {
    ProducerConfig pc;
    pc.layers = opt_.layers;
    pc.batch = opt_.batch;
    pc.negatives = negatives_;
    pc.hard_per_pair =
        (opt_.hard_negatives && train_.hard) ? std::min(epoch - 1, opt_.max_hard_negatives) : 0;
    pc.seed = opt_.seed;
    pc.epoch = epoch;
    pc.max_batches = opt_.max_steps_per_epoch;
    pc.batch_bytes = batch_bytes_;
    pc.batch_data_bytes = batch_data_bytes_;
    pc.model = model_config_;
    BatchProducer producer(train_, nbrs_, pc);
    const std::uint64_t n = producer.num_batches();
    epoch_loss_ = 0;
    epoch_pairs_ = 0;
    epoch_steps_ = 0;
    model_->train();
    const auto start = Clock::now();
    Status first_error;
    if (!opt_.pipeline) {
      for (std::uint64_t i = 0; i < n && !Cancelled(); ++i) {
        std::unique_ptr<MiniBatch> b = producer.Produce(i);
        first_error = Step(*b, epoch, i, start);
        if (!first_error.ok()) break;
      }
    } else {
      PGRAPH_RETURN_IF_ERROR(RunPipeline(producer, epoch, start, &first_error));
    }
    const double secs = Since(start);
    train_seconds_ += secs;
    report_.time.wait += wait_seconds_;
    wait_seconds_ = 0;
    PGRAPH_RETURN_IF_ERROR(first_error);
    if (Cancelled()) return Status::Cancelled("training interrupted");
    stats->epoch = epoch;
    stats->mean_loss = epoch_steps_ ? epoch_loss_ / epoch_steps_ : 0;
    stats->seconds = secs;
    stats->pairs = epoch_pairs_;
    stats->pairs_per_second = secs > 0 ? epoch_pairs_ / secs : 0;
    stats->hard_negatives = pc.hard_per_pair;
    stats->lr = LearningRate(global_step_ ? global_step_ - 1 : 0);
    return Status::OK();
  }

  // Producer stages on TBB threads, at most opt_.prefetch batches in flight, handed over in
  // sequence order (so results match --no-pipeline exactly) to the consumer: the calling
  // thread. The consumer stays on one thread so the model, its gradients and Adam state stay
  // in that core's cache and torch's OpenMP team is set up once; as a serial flow-graph node
  // it ran on whichever TBB thread was free, which made every step 10-15% slower than
  // --no-pipeline on 2 cores (docs/BENCHMARKS.md, "train").
  Status RunPipeline(const BatchProducer& producer, std::uint32_t epoch, Clock::time_point start,
                     Status* first_error) {
    using Batch = std::shared_ptr<MiniBatch>;
    namespace flow = tbb::flow;
    const std::uint64_t n = producer.num_batches();
    std::atomic<bool> stop{false};
    std::uint64_t next = 0;  // only touched by the serial input node
    tbb::concurrent_bounded_queue<Batch> ready;  // in sequence order; null: production ended
    flow::graph g;
    flow::input_node<std::uint64_t> source(g, [&](tbb::flow_control& fc) -> std::uint64_t {
      if (next >= n || stop.load() || Cancelled()) {
        if (next < n) ready.push(nullptr);  // stopped early: wake the consumer
        fc.stop();
        return 0;
      }
      return next++;
    });
    flow::limiter_node<std::uint64_t> limiter(g, std::max<std::uint32_t>(1, opt_.prefetch));
    flow::function_node<std::uint64_t, Batch> produce(
        g, flow::unlimited, [&](std::uint64_t i) -> Batch {
          if (stop.load()) {
            auto b = std::make_shared<MiniBatch>();
            b->sequence = i;
            b->status = Status::Cancelled("pipeline stopped");
            return b;
          }
          return Batch(producer.Produce(i));
        });
    flow::sequencer_node<Batch> sequencer(g, [](const Batch& b) { return b->sequence; });
    flow::function_node<Batch, flow::continue_msg> handoff(
        g, flow::serial, [&](const Batch& b) -> flow::continue_msg {
          ready.push(b);
          return flow::continue_msg();
        });
    flow::make_edge(source, limiter);
    flow::make_edge(limiter, produce);
    flow::make_edge(produce, sequencer);
    flow::make_edge(sequencer, handoff);
    source.activate();
    for (std::uint64_t i = 0; i < n; ++i) {
      Batch b;
      auto t0 = Clock::now();
      ready.pop(b);
      wait_seconds_ += Since(t0);
      if (b == nullptr || Cancelled()) break;
      limiter.decrementer().try_put(flow::continue_msg());
      Status s = Step(*b, epoch, b->sequence, start);
      if (!s.ok()) {
        *first_error = std::move(s);
        break;
      }
    }
    stop.store(true);
    limiter.decrementer().try_put(flow::continue_msg());  // a source waiting on the limit
    g.wait_for_all();
    return Status::OK();
  }

  // Embeddings of `items` (repeats allowed) with the current model, [items x dim] on the
  // CPU, in parts that fit the memory share of a batch.
  Result<at::Tensor> Embed(std::span<const NodeId> items) {
    torch::NoGradGuard no_grad;
    // Distinct items first: a part's rows are its targets only when they are distinct.
    std::vector<NodeId> distinct;
    std::vector<std::int64_t> row;
    PGRAPH_RETURN_IF_ERROR(DistinctTargets(items, nbrs_->num_items(), &distinct, &row));
    model_->eval();
    at::Tensor out = at::empty({static_cast<std::int64_t>(distinct.size()), opt_.dim},
                               at::TensorOptions().dtype(at::kFloat));
    PartPlanner planner(distinct, opt_.layers, *nbrs_, train_.features, model_config_,
                        /*with_grad=*/false, batch_bytes_);
    while (!planner.done()) {
      MiniBatch part;
      std::size_t lo = 0, hi = 0;
      PGRAPH_RETURN_IF_ERROR(planner.Next(&part, &lo, &hi));
      BatchTensors t = ToTensors(part, device_);
      out.narrow(0, lo, hi - lo).copy_(model_->forward(t).to(at::kCPU));
    }
    model_->train();
    if (distinct.size() == items.size()) return out;
    return out.index_select(0, at::tensor(row, at::TensorOptions().dtype(at::kLong)));
  }

  Status Validate(EpochStats* stats) {
    stats->hit_rate = stats->mrr = std::numeric_limits<double>::quiet_NaN();
    if (data_.heldout_pairs.empty() || opt_.eval_pairs == 0) return Status::OK();
    try {
      const std::uint64_t n = nbrs_->num_items();
      // A fixed sample of held-out pairs and candidates (same every epoch).
      Rng rng(StreamSeed(opt_.seed, 0xe7a1));
      std::vector<std::pair<NodeId, NodeId>> pairs = data_.heldout_pairs;
      if (pairs.size() > opt_.eval_pairs) {
        for (std::size_t j = 0; j < opt_.eval_pairs; ++j) {
          std::swap(pairs[j], pairs[j + rng.Below(pairs.size() - j)]);
        }
        pairs.resize(opt_.eval_pairs);
      }
      std::vector<NodeId> cands;
      if (n <= opt_.eval_candidates || opt_.eval_candidates == 0) {
        cands.resize(n);
        std::iota(cands.begin(), cands.end(), 0u);
      } else {
        std::unordered_set<NodeId> seen;
        while (cands.size() < opt_.eval_candidates) {
          NodeId v = static_cast<NodeId>(rng.Below(n));
          if (seen.insert(v).second) cands.push_back(v);
        }
      }
      std::vector<NodeId> qs, is;
      for (auto [q, i] : pairs) {
        qs.push_back(q);
        is.push_back(i);
      }
      PGRAPH_ASSIGN_OR_RETURN(at::Tensor zc, Embed(cands));
      PGRAPH_ASSIGN_OR_RETURN(at::Tensor zq, Embed(qs));
      PGRAPH_ASSIGN_OR_RETURN(at::Tensor zi, Embed(is));
      at::Tensor pos = (zq * zi).sum(1);                     // [P]
      at::Tensor cand_ids = at::tensor(std::vector<std::int64_t>(cands.begin(), cands.end()),
                                       at::TensorOptions().dtype(at::kLong));
      at::Tensor qt = at::tensor(std::vector<std::int64_t>(qs.begin(), qs.end()),
                                 at::TensorOptions().dtype(at::kLong));
      at::Tensor it = at::tensor(std::vector<std::int64_t>(is.begin(), is.end()),
                                 at::TensorOptions().dtype(at::kLong));
      // Rank of i = 1 + candidates (other than q and i) scoring strictly higher; queries in
      // blocks whose [block x candidates] scores and masks fit a batch's memory share.
      const std::int64_t P = static_cast<std::int64_t>(qs.size());
      const std::int64_t block = std::clamp<std::int64_t>(
          static_cast<std::int64_t>(batch_bytes_ / (16 * std::max<std::size_t>(1, cands.size()))),
          1, P);
      at::Tensor rank = at::empty({P}, at::TensorOptions().dtype(at::kDouble));
      for (std::int64_t s0 = 0; s0 < P; s0 += block) {
        const std::int64_t n = std::min(block, P - s0);
        at::Tensor scores = zq.narrow(0, s0, n).mm(zc.t());  // [n x C]
        at::Tensor exclude = cand_ids.unsqueeze(0).eq(qt.narrow(0, s0, n).unsqueeze(1)) |
                             cand_ids.unsqueeze(0).eq(it.narrow(0, s0, n).unsqueeze(1));
        at::Tensor higher = (scores > pos.narrow(0, s0, n).unsqueeze(1)) & exclude.logical_not();
        rank.narrow(0, s0, n).copy_(higher.sum(1).to(at::kDouble) + 1);
      }
      const std::uint32_t scale =
          opt_.mrr_scale ? opt_.mrr_scale
                         : static_cast<std::uint32_t>(std::max<std::size_t>(1, cands.size() / 50000));
      stats->hit_rate =
          (rank <= static_cast<double>(opt_.eval_k)).to(at::kDouble).mean().item<double>();
      stats->mrr = (1.0 / (rank / static_cast<double>(scale)).ceil()).mean().item<double>();
      stats->eval_pairs = pairs.size();
      stats->eval_candidates = cands.size();
      stats->mrr_scale = scale;
      return Status::OK();
    } catch (const c10::Error& e) {
      return TorchError(e);
    }
  }

  const TrainData& data_;
  TrainOptions opt_;
  TrainData train_;  // the filtered pairs plus borrowed sources
  const NeighborhoodSource* nbrs_ = nullptr;
  std::unique_ptr<TruncatedNeighborhoods> truncated_;
  std::unique_ptr<ConcatFeatures> combined_;  // features + structural
  std::unique_ptr<HardNegativeSampler> ppr_;
  std::uint32_t negatives_ = 0;
  // Memory shares (Setup): what the consumer may use to run one batch or part, and the data
  // of one batch waiting in the pipeline (ProducerConfig).
  std::uint64_t batch_bytes_ = 0, batch_data_bytes_ = 0;
  int torch_threads_ = 1;
  int blas_threads_before_ = 0;  // restored on destruction (0: not OpenBLAS, or not set)
  at::Device device_{at::kCPU};
  ModelConfig model_config_;
  PinSageModel model_{nullptr};
  Adam adam_;
  // The parameters' moving average (ema_decay > 0), in adam_.params order; empty when off.
  std::vector<at::Tensor> ema_;
  std::vector<at::Tensor> resumed_average_;  // from --resume's checkpoint, until Setup ends
  std::uint64_t steps_per_epoch_ = 0, global_step_ = 0;
  std::uint32_t first_epoch_ = 1;
  double epoch_loss_ = 0, train_seconds_ = 0, wait_seconds_ = 0;
  std::uint64_t epoch_pairs_ = 0, epoch_steps_ = 0;
  TrainReport report_;
};

}  // namespace

Result<std::string> ResolveDevice(std::string_view device) {
  storage::SelectBlasKernels();  // before the first product: CPU products run on OpenBLAS
  try {
    if (device == "cpu") return std::string("cpu");
    const bool built = at::hasCUDA();
    const std::size_t count = built ? torch::cuda::device_count() : 0;
    if (device == "auto") return std::string(count > 0 ? "cuda:0" : "cpu");
    if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
      std::size_t index = 0;
      if (device.size() > 5) {
        std::string num(device.substr(5));
        if (num.empty() || num.size() > 6 || num.find_first_not_of("0123456789") != std::string::npos) {
          return Status::InvalidArgument("bad --device '" + std::string(device) +
                                         "' (cpu, cuda, cuda:N or auto)");
        }
        index = std::stoul(num);
      }
      if (!built) {
        return Status::NotSupported("--device " + std::string(device) +
                                    ": this build's libtorch has no CUDA support "
                                    "(use --device cpu or auto)");
      }
      if (count == 0) {
        return Status::NotSupported("--device " + std::string(device) +
                                    ": no CUDA GPU is visible (use --device cpu or auto)");
      }
      if (index >= count) {
        return Status::NotSupported("--device " + std::string(device) + ": only " +
                                    std::to_string(count) + " CUDA device(s)");
      }
      return "cuda:" + std::to_string(index);
    }
    return Status::InvalidArgument("bad --device '" + std::string(device) +
                                   "' (cpu, cuda, cuda:N or auto)");
  } catch (const c10::Error& e) {
    return TorchError(e);
  }
}

Result<double> GemmFlopsPerSecond(std::span<const GemmShape> shapes, int threads,
                                  double min_seconds) {
  storage::SelectBlasKernels();  // the bound uses the kernels training uses
  try {
    if (threads > 0) {
      at::set_num_threads(threads);
      storage::SetBlasThreads(threads);
    }
    auto f32 = at::TensorOptions().dtype(at::kFloat);
    struct Operands {
      at::Tensor a, b, dc;
    };
    std::vector<Operands> ops;
    double flops_per_round = 0;
    for (const GemmShape& s : shapes) {
      ops.push_back({at::randn({s.m, s.k}, f32), at::randn({s.k, s.n}, f32),
                     at::randn({s.m, s.n}, f32)});
      flops_per_round += 3 * 2.0 * s.m * s.k * s.n;
    }
    auto round = [&] {
      for (Operands& o : ops) {
        at::Tensor c = at::mm(o.a, o.b);
        at::Tensor da = at::mm(o.dc, o.b.t());
        at::Tensor db = at::mm(o.a.t(), o.dc);
      }
    };
    round();  // warm-up
    auto t0 = Clock::now();
    std::uint64_t rounds = 0;
    do {
      round();
      ++rounds;
    } while (Since(t0) < min_seconds);
    return flops_per_round * rounds / Since(t0);
  } catch (const c10::Error& e) {
    return TorchError(e);
  }
}

Result<TrainReport> TrainOnData(const TrainData& data, const TrainOptions& options) {
  try {
    Trainer trainer(data, options);
    return trainer.Run();
  } catch (const c10::Error& e) {
    return TorchError(e);
  }
}

}  // namespace pgraph::train
