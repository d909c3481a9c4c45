#include "train/checkpoint.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <sstream>

#include "storage/store.h"
#include "train/trainer.h"

namespace pgraph::train {
namespace {

constexpr char kMagic[8] = {'P', 'G', 'C', 'K', 'P', 'T', '0', '1'};

std::uint64_t Fnv1a(std::span<const std::byte> bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : bytes) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  template <typename T>
  void Put(const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void PutString(const std::string& s) {
    Put(static_cast<std::uint32_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out_.insert(out_.end(), p, p + s.size());
  }
  void PutFloats(const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const std::byte*>(v.data());
    out_.insert(out_.end(), p, p + v.size() * sizeof(float));
  }
  std::vector<std::byte>& bytes() { return out_; }

 private:
  std::vector<std::byte> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    if (pos_ + sizeof(T) > in_.size()) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool GetString(std::string* s) {
    std::uint32_t n = 0;
    if (!Get(&n) || pos_ + n > in_.size()) return false;
    s->assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool GetFloats(std::size_t count, std::vector<float>* v) {
    if (count > (in_.size() - pos_) / sizeof(float)) return false;
    v->resize(count);
    std::memcpy(v->data(), in_.data() + pos_, count * sizeof(float));
    pos_ += count * sizeof(float);
    return true;
  }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

}  // namespace

std::vector<std::byte> SerializeCheckpoint(const CheckpointData& c) {
  Writer w;
  for (char ch : kMagic) w.Put(ch);
  w.Put(static_cast<std::uint32_t>(c.meta.size()));
  for (const auto& [k, v] : c.meta) {
    w.PutString(k);
    w.PutString(v);
  }
  w.Put(static_cast<std::uint32_t>(c.arrays.size()));
  for (const auto& [name, a] : c.arrays) {
    w.PutString(name);
    w.Put(static_cast<std::uint32_t>(a.shape.size()));
    for (std::int64_t d : a.shape) w.Put(d);
    w.PutFloats(a.data);
  }
  std::uint64_t h = Fnv1a(w.bytes());
  w.Put(h);
  return std::move(w.bytes());
}

Result<CheckpointData> ParseCheckpoint(std::span<const std::byte> blob) {
  auto bad = [](const char* what) {
    return Status::Corruption(std::string("checkpoint: ") + what);
  };
  if (blob.size() < sizeof(kMagic) + 8 ||
      std::memcmp(blob.data(), kMagic, sizeof(kMagic)) != 0) {
    return bad("bad magic (not a pgraph checkpoint)");
  }
  std::uint64_t stored = 0;
  std::memcpy(&stored, blob.data() + blob.size() - 8, 8);
  if (Fnv1a(blob.first(blob.size() - 8)) != stored) return bad("hash mismatch (truncated?)");
  Reader r(blob.subspan(sizeof(kMagic), blob.size() - 8 - sizeof(kMagic)));
  CheckpointData c;
  std::uint32_t n = 0;
  if (!r.Get(&n)) return bad("truncated meta");
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!r.GetString(&k) || !r.GetString(&v)) return bad("truncated meta");
    c.meta[k] = v;
  }
  if (!r.Get(&n)) return bad("truncated arrays");
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string name;
    std::uint32_t ndim = 0;
    if (!r.GetString(&name) || !r.Get(&ndim) || ndim > 8) return bad("bad array header");
    NamedArray a;
    std::uint64_t count = 1;
    for (std::uint32_t d = 0; d < ndim; ++d) {
      std::int64_t dim = 0;
      if (!r.Get(&dim) || dim < 0) return bad("bad array shape");
      a.shape.push_back(dim);
      count *= static_cast<std::uint64_t>(dim);
    }
    if (!r.GetFloats(count, &a.data)) return bad("truncated array data");
    c.arrays[name] = std::move(a);
  }
  return c;
}

std::string FormatConfig(const ModelConfig& m, const TrainOptions& o) {
  std::ostringstream s;
  s.precision(17);
  s << "layers=" << m.layers << "\n"
    << "dim=" << m.dim << "\n"
    << "hidden=" << m.hidden << "\n"
    << "neighbors=" << m.neighbors << "\n"
    << "feature_dim=" << m.feature_dim << "\n"
    << "id_embedding_dim=" << m.id_embedding_dim << "\n"
    << "num_items=" << m.num_items << "\n"
    << "pooling=" << PoolingName(m.pooling) << "\n"
    << "normalize=" << (m.normalize ? 1 : 0) << "\n"
    << "magnitude=" << (m.magnitude ? 1 : 0) << "\n"
    << "structural_dim=" << m.structural_dim << "\n"
    << "degree_mean=" << m.degree_mean << "\n"
    << "degree_std=" << m.degree_std << "\n"
    << "loss=" << LossName(o.loss) << "\n"
    << "temperature=" << o.temperature << "\n"
    << "in_batch_negatives=" << (o.in_batch_negatives ? 1 : 0) << "\n"
    << "batch=" << o.batch << "\n"
    << "negatives=" << o.negatives << "\n"
    << "hard_negatives=" << (o.hard_negatives ? 1 : 0) << "\n"
    << "max_hard_negatives=" << o.max_hard_negatives << "\n"
    << "margin=" << o.margin << "\n"
    << "lr=" << o.lr << "\n"
    << "lr_decay=" << o.lr_decay << "\n"
    << "warmup=" << (o.warmup ? 1 : 0) << "\n"
    << "clip_grad_norm=" << o.clip_grad_norm << "\n"
    << "ema_decay=" << o.ema_decay << "\n"
    << "weight_decay=" << o.weight_decay << "\n"
    << "seed=" << o.seed << "\n"
    << "max_steps_per_epoch=" << o.max_steps_per_epoch << "\n";
  return s.str();
}

Status ParseConfig(const std::string& text, ModelConfig* m, TrainOptions* o) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) return Status::InvalidArgument("train config: bad line " + line);
    std::string key = line.substr(0, eq), val = line.substr(eq + 1);
    auto u64 = [&](auto* out) -> Status {
      std::uint64_t v = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
      if (ec != std::errc() || p != val.data() + val.size()) {
        return Status::InvalidArgument("train config: bad value for " + key + ": " + val);
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
      return Status::OK();
    };
    auto dbl = [&](auto* out) -> Status {
      try {
        std::size_t used = 0;
        double v = std::stod(val, &used);
        if (used != val.size()) throw std::invalid_argument(val);
        *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
        return Status::OK();
      } catch (const std::exception&) {
        return Status::InvalidArgument("train config: bad value for " + key + ": " + val);
      }
    };
    std::uint32_t flag = 0;
    if (key == "layers") PGRAPH_RETURN_IF_ERROR(u64(&m->layers));
    else if (key == "dim") PGRAPH_RETURN_IF_ERROR(u64(&m->dim));
    else if (key == "hidden") PGRAPH_RETURN_IF_ERROR(u64(&m->hidden));
    else if (key == "neighbors") PGRAPH_RETURN_IF_ERROR(u64(&m->neighbors));
    else if (key == "feature_dim") PGRAPH_RETURN_IF_ERROR(u64(&m->feature_dim));
    else if (key == "id_embedding_dim") PGRAPH_RETURN_IF_ERROR(u64(&m->id_embedding_dim));
    else if (key == "num_items") PGRAPH_RETURN_IF_ERROR(u64(&m->num_items));
    else if (key == "pooling") {
      PGRAPH_ASSIGN_OR_RETURN(m->pooling, ParsePooling(val));
    } else if (key == "normalize") {
      PGRAPH_RETURN_IF_ERROR(u64(&flag));
      m->normalize = flag != 0;
    } else if (key == "magnitude") {
      PGRAPH_RETURN_IF_ERROR(u64(&flag));
      m->magnitude = flag != 0;
    } else if (key == "structural_dim") PGRAPH_RETURN_IF_ERROR(u64(&m->structural_dim));
    else if (key == "degree_mean") PGRAPH_RETURN_IF_ERROR(dbl(&m->degree_mean));
    else if (key == "degree_std") PGRAPH_RETURN_IF_ERROR(dbl(&m->degree_std));
    else if (key == "loss") {
      PGRAPH_ASSIGN_OR_RETURN(o->loss, ParseLoss(val));
    } else if (key == "in_batch_negatives") {
      PGRAPH_RETURN_IF_ERROR(u64(&flag));
      o->in_batch_negatives = flag != 0;
    } else if (key == "temperature") PGRAPH_RETURN_IF_ERROR(dbl(&o->temperature));
    else if (key == "batch") PGRAPH_RETURN_IF_ERROR(u64(&o->batch));
    else if (key == "negatives") PGRAPH_RETURN_IF_ERROR(u64(&o->negatives));
    else if (key == "hard_negatives") {
      PGRAPH_RETURN_IF_ERROR(u64(&flag));
      o->hard_negatives = flag != 0;
    } else if (key == "max_hard_negatives") PGRAPH_RETURN_IF_ERROR(u64(&o->max_hard_negatives));
    else if (key == "margin") PGRAPH_RETURN_IF_ERROR(dbl(&o->margin));
    else if (key == "lr") PGRAPH_RETURN_IF_ERROR(dbl(&o->lr));
    else if (key == "lr_decay") PGRAPH_RETURN_IF_ERROR(dbl(&o->lr_decay));
    else if (key == "warmup") {
      PGRAPH_RETURN_IF_ERROR(u64(&flag));
      o->warmup = flag != 0;
    } else if (key == "clip_grad_norm") PGRAPH_RETURN_IF_ERROR(dbl(&o->clip_grad_norm));
    else if (key == "ema_decay") PGRAPH_RETURN_IF_ERROR(dbl(&o->ema_decay));
    else if (key == "weight_decay") PGRAPH_RETURN_IF_ERROR(dbl(&o->weight_decay));
    else if (key == "seed") PGRAPH_RETURN_IF_ERROR(u64(&o->seed));
    else if (key == "max_steps_per_epoch") PGRAPH_RETURN_IF_ERROR(u64(&o->max_steps_per_epoch));
    else return Status::InvalidArgument("train config: unknown key " + key);
  }
  return Status::OK();
}

const char* PoolingName(Pooling p) {
  switch (p) {
    case Pooling::kImportance: return "importance";
    case Pooling::kMean: return "mean";
    case Pooling::kMax: return "max";
  }
  return "?";
}

Result<Pooling> ParsePooling(std::string_view s) {
  if (s == "importance") return Pooling::kImportance;
  if (s == "mean") return Pooling::kMean;
  if (s == "max") return Pooling::kMax;
  return Status::InvalidArgument("pooling must be importance, mean or max, not '" +
                                 std::string(s) + "'");
}

const char* LossName(Loss l) {
  switch (l) {
    case Loss::kMargin: return "margin";
    case Loss::kSoftmax: return "softmax";
  }
  return "?";
}

Result<Loss> ParseLoss(std::string_view s) {
  if (s == "margin") return Loss::kMargin;
  if (s == "softmax") return Loss::kSoftmax;
  return Status::InvalidArgument("loss must be margin or softmax, not '" + std::string(s) + "'");
}

float DegreeFeature(const ModelConfig& config, std::uint64_t degree) {
  const float x = std::log1p(static_cast<float>(degree));
  return (x - config.degree_mean) / (config.degree_std > 0 ? config.degree_std : 1.0f);
}

Result<ModelParameters> ParseParameters(std::span<const std::byte> blob) {
  PGRAPH_ASSIGN_OR_RETURN(CheckpointData c, ParseCheckpoint(blob));
  ModelParameters p;
  TrainOptions ignored;
  auto it = c.meta.find("config");
  if (it == c.meta.end()) return Status::Corruption("checkpoint: no config");
  Status s = ParseConfig(it->second, &p.config, &ignored);
  if (!s.ok()) return Status::Corruption("checkpoint: " + s.message());
  if (auto e = c.meta.find("epoch"); e != c.meta.end()) {
    auto [ptr, ec] = std::from_chars(e->second.data(), e->second.data() + e->second.size(),
                                     p.epoch);
    if (ec != std::errc()) return Status::Corruption("checkpoint: bad epoch");
  }
  for (auto& [name, a] : c.arrays) {
    if (name.rfind("adam.", 0) == 0) continue;
    p.arrays[name] = std::move(a);
  }
  return p;
}

// Here, beside ParseConfig, and not in store_io.cc: torch-free callers (pgraph eval) link
// this unit without the trainer's.
Result<std::optional<TrainOptions>> LoadTrainedOptions(const storage::Store& store) {
  auto config = store.GetMeta("train.config");
  if (!config.ok()) {
    if (config.status().IsNotFound()) return std::optional<TrainOptions>();
    return config.status();
  }
  ModelConfig model;
  TrainOptions options;
  Status s = ParseConfig(*config, &model, &options);
  if (!s.ok()) return s.WithContext(store.dir() + ": meta train.config");
  return std::optional<TrainOptions>(std::move(options));
}

}  // namespace pgraph::train
