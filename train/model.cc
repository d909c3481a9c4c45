#include "train/model.h"

#include <c10/util/Exception.h>

#include <cstring>

#include "storage/store.h"
#include "train/csr_pool.h"
#include "train/fused_ops.h"

namespace pgraph::train {

ConvolveImpl::ConvolveImpl(std::int64_t in, std::int64_t hidden, std::int64_t out,
                           Pooling pooling_kind)
    : pooling(pooling_kind) {
  Q = register_module("Q", torch::nn::Linear(torch::nn::LinearOptions(in, hidden)));
  W = register_module("W", torch::nn::Linear(torch::nn::LinearOptions(in + hidden, out)));
}

at::Tensor ConvolveImpl::Pool(const at::Tensor& projected, const at::Tensor& offsets,
                              const at::Tensor& index, const at::Tensor& weight) const {
  if (pooling != Pooling::kMax) {
    return CsrPool(projected, offsets, index, weight, pooling == Pooling::kMean);
  }
  // embedding_bag mode 2: max.
  auto result = at::embedding_bag(projected, index, offsets, /*scale_grad_by_freq=*/false,
                                  /*mode=*/2, /*sparse=*/false, at::Tensor(),
                                  /*include_last_offset=*/false);
  return std::get<0>(result);
}

at::Tensor ConvolveImpl::forward(const at::Tensor& h_prev, std::int64_t n,
                                 const at::Tensor& offsets, const at::Tensor& index,
                                 const at::Tensor& weight) {
  // Project every input row once; neighbours then share the projection.
  at::Tensor pooled;
  if (pooling == Pooling::kMax) {
    // In place: addmm's backward does not need its output.
    pooled = Pool(Q->forward(h_prev).relu_(), offsets, index, weight);
  } else {
    // The ReLU runs inside the pooling op.
    pooled = CsrPool(Q->forward(h_prev), offsets, index, weight, pooling == Pooling::kMean,
                     /*relu=*/true);
  }
  return RowL2Normalize(W->forward(at::cat({h_prev.narrow(0, 0, n), pooled}, 1)),
                        /*relu=*/true);
}

BatchTensors ToTensors(const MiniBatch& b, const at::Device& device) {
  auto i64 = at::TensorOptions().dtype(at::kLong);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  auto wrap_i64 = [&](const std::vector<std::int64_t>& v) {
    return at::from_blob(const_cast<std::int64_t*>(v.data()),
                         {static_cast<std::int64_t>(v.size())}, i64);
  };
  BatchTensors t;
  std::vector<std::int64_t> nodes(b.nodes.begin(), b.nodes.end());
  t.nodes = at::tensor(nodes, i64);  // owns its data
  t.features = at::from_blob(const_cast<float*>(b.features.data()),
                             {static_cast<std::int64_t>(b.nodes.size()),
                              static_cast<std::int64_t>(b.feature_dim)},
                             f32);
  for (const LayerBlock& l : b.layers) {
    LayerTensors lt;
    lt.num_targets = l.num_targets;
    lt.offsets = wrap_i64(l.offsets);
    lt.index = wrap_i64(l.index);
    lt.weight = at::from_blob(const_cast<float*>(l.weight.data()),
                              {static_cast<std::int64_t>(l.weight.size())}, f32);
    t.layers.push_back(std::move(lt));
  }
  t.query = wrap_i64(b.query);
  t.positive = wrap_i64(b.positive);
  t.negative = wrap_i64(b.negative);
  t.hard = wrap_i64(b.hard);
  t.hard_per_pair = b.hard_per_pair;
  if (!device.is_cpu()) {
    auto move = [&](at::Tensor& x) { x = x.pin_memory().to(device, /*non_blocking=*/true); };
    move(t.nodes);
    move(t.features);
    for (LayerTensors& lt : t.layers) {
      move(lt.offsets);
      move(lt.index);
      move(lt.weight);
    }
    move(t.query);
    move(t.positive);
    move(t.negative);
    move(t.hard);
  }
  return t;
}

PinSageModelImpl::PinSageModelImpl(const ModelConfig& c) : config(c) {
  std::int64_t in = c.input_dim();
  if (c.id_embedding_dim > 0) {
    id_embedding = register_module(
        "id_embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(
                            static_cast<std::int64_t>(c.num_items), c.id_embedding_dim)));
    // Small initial ids so features dominate early.
    torch::NoGradGuard no_grad;
    id_embedding->weight.normal_(0.0, 0.1);
  }
  for (std::uint32_t k = 0; k < c.layers; ++k) {
    convs.push_back(register_module("layer" + std::to_string(k),
                                    Convolve(in, c.hidden, c.dim, c.pooling)));
    in = c.dim;
  }
  G1 = register_module("G1", torch::nn::Linear(torch::nn::LinearOptions(c.dim, c.dim)));
  G2 = register_module("G2",
                       torch::nn::Linear(torch::nn::LinearOptions(c.dim, c.dim).bias(false)));
  if (c.magnitude) {
    scale = register_module("scale", torch::nn::Linear(torch::nn::LinearOptions(c.dim, 1)));
  }
}

at::Tensor PinSageModelImpl::Input(const at::Tensor& features, const at::Tensor& nodes) {
  if (!id_embedding) return features;
  at::Tensor ids = id_embedding->forward(nodes);
  if (features.size(1) == 0) return ids;
  return at::cat({features, ids}, 1);
}

at::Tensor PinSageModelImpl::Head(const at::Tensor& h) {
  at::Tensor z = G2->forward(at::relu(G1->forward(h)));
  if (config.normalize) z = RowL2Normalize(z, /*relu=*/false);
  if (scale) z = z * (2.0 * at::sigmoid(scale->forward(h)));
  return z;
}

at::Tensor PinSageModelImpl::forward(const BatchTensors& b) {
  at::Tensor h = Input(b.features, b.nodes);
  for (std::size_t k = 0; k < convs.size(); ++k) {
    const LayerTensors& l = b.layers[k];
    h = convs[k]->forward(h, l.num_targets, l.offsets, l.index, l.weight);
  }
  return Head(h);
}

double PinSageModelImpl::ForwardFlops(const MiniBatch& b) const {
  double flops = 0;
  double in = config.input_dim();
  const double m = config.hidden, d = config.dim;
  for (const LayerBlock& l : b.layers) {
    flops += 2.0 * l.num_inputs * in * m;           // Q for every input row
    flops += 2.0 * static_cast<double>(l.index.size()) * m;  // pooling
    flops += 2.0 * l.num_targets * (in + m) * d;    // W
    in = d;
  }
  flops += 2.0 * 2.0 * b.num_targets() * d * d;     // G1, G2
  return flops;
}

std::vector<GemmShape> PinSageModelImpl::ForwardGemms(const MiniBatch& b) const {
  std::vector<GemmShape> out;
  std::int64_t in = config.input_dim();
  const std::int64_t m = config.hidden, d = config.dim;
  for (const LayerBlock& l : b.layers) {
    out.push_back({l.num_inputs, in, m});
    out.push_back({l.num_targets, in + m, d});
    in = d;
  }
  out.push_back({b.num_targets(), d, d});
  out.push_back({b.num_targets(), d, d});
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> PublicParameters(PinSageModelImpl& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t k = 0; k < m.convs.size(); ++k) {
    std::string p = "layer" + std::to_string(k) + ".";
    out.emplace_back(p + "Q", m.convs[k]->Q->weight);
    out.emplace_back(p + "q", m.convs[k]->Q->bias);
    out.emplace_back(p + "W", m.convs[k]->W->weight);
    out.emplace_back(p + "w", m.convs[k]->W->bias);
  }
  out.emplace_back("G1", m.G1->weight);
  out.emplace_back("g", m.G1->bias);
  out.emplace_back("G2", m.G2->weight);
  if (m.id_embedding) out.emplace_back("id_embedding", m.id_embedding->weight);
  if (m.scale) {
    out.emplace_back("scale.W", m.scale->weight);
    out.emplace_back("scale.b", m.scale->bias);
  }
  return out;
}

Status LoadParameters(const ModelParameters& params, PinSageModelImpl* model) {
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : PublicParameters(*model)) {
    auto it = params.arrays.find(name);
    if (it == params.arrays.end()) {
      return Status::InvalidArgument("checkpoint lacks parameter " + name);
    }
    const NamedArray& a = it->second;
    if (a.shape != tensor.sizes().vec()) {
      return Status::InvalidArgument("checkpoint parameter " + name + " has the wrong shape");
    }
    at::Tensor src = at::from_blob(const_cast<float*>(a.data.data()), a.shape,
                                   at::TensorOptions().dtype(at::kFloat));
    tensor.copy_(src);
  }
  return Status::OK();
}

Result<PinSageModel> LoadModel(const storage::Store& store) {
  PGRAPH_ASSIGN_OR_RETURN(ModelParameters params, LoadLatestParameters(store));
  try {
    PinSageModel model(params.config);
    PGRAPH_RETURN_IF_ERROR(LoadParameters(params, model.get()));
    return model;
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("torch: ") + e.what_without_backtrace());
  }
}

at::Tensor ReferenceEmbed(PinSageModelImpl& model, std::span<const float> features,
                          std::span<const NodeId> neighbors, std::span<const float> weights,
                          std::uint32_t width, std::span<const NodeId> targets) {
  torch::NoGradGuard no_grad;
  const ModelConfig& c = model.config;
  const std::int64_t N = static_cast<std::int64_t>(neighbors.size() / width);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor h = at::from_blob(const_cast<float*>(features.data()),
                               {N, static_cast<std::int64_t>(c.feature_dim + c.structural_dim)},
                               at::TensorOptions().dtype(at::kFloat))
                     .to(at::kDouble);
  if (model.id_embedding) {
    h = at::cat({h, model.id_embedding->weight.to(at::kDouble)}, 1);
  }
  for (auto& conv : model.convs) {
    at::Tensor Q = conv->Q->weight.to(at::kDouble), q = conv->Q->bias.to(at::kDouble);
    at::Tensor W = conv->W->weight.to(at::kDouble), w = conv->W->bias.to(at::kDouble);
    std::vector<at::Tensor> rows;
    for (std::int64_t u = 0; u < N; ++u) {
      at::Tensor pooled = at::zeros({Q.size(0)}, f64);
      double count = 0;
      for (std::uint32_t t = 0; t < width; ++t) {
        NodeId v = neighbors[u * width + t];
        if (v == kInvalidNode) continue;
        at::Tensor p = at::relu(at::mv(Q, h[v]) + q);
        if (conv->pooling == Pooling::kImportance) {
          pooled += weights[u * width + t] * p;
        } else if (conv->pooling == Pooling::kMean) {
          pooled += p;
        } else {
          pooled = at::maximum(pooled, p);
        }
        count += 1;
      }
      if (conv->pooling == Pooling::kMean && count > 0) pooled /= count;
      at::Tensor z = at::relu(at::mv(W, at::cat({h[u], pooled})) + w);
      double norm = z.norm().item<double>();
      rows.push_back(z / std::max(norm, 1e-12));
    }
    h = at::stack(rows);
  }
  at::Tensor G1 = model.G1->weight.to(at::kDouble), g = model.G1->bias.to(at::kDouble);
  at::Tensor G2 = model.G2->weight.to(at::kDouble);
  std::vector<std::int64_t> idx(targets.begin(), targets.end());
  at::Tensor ht = h.index_select(0, at::tensor(idx, at::TensorOptions().dtype(at::kLong)));
  at::Tensor z = at::relu(ht.mm(G1.t()) + g).mm(G2.t());
  if (c.normalize) z = z / z.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  if (model.scale) {
    at::Tensor sw = model.scale->weight.to(at::kDouble), sb = model.scale->bias.to(at::kDouble);
    z = z * (2.0 * at::sigmoid(ht.mm(sw.t()) + sb));
  }
  return z;
}

}  // namespace pgraph::train
