#pragma once
// Private to train/: the PinSage model in libtorch.
//
// infer/ may include this header (a documented exception to "public headers only"): it is
// the way to get the trained model as torch modules. Torch-free callers use
// LoadLatestParameters() in train/trainer.h instead. Typical use from infer:
//
//   PGRAPH_ASSIGN_OR_RETURN(PinSageModel model, LoadModel(store));   // latest checkpoint
//   for (auto& layer : model->convs)  // layer->Q->weight [m x in], layer->Q->bias = q,
//     ...                             // layer->W->weight [d x (in+m)], layer->W->bias = w
//   model->G1->weight, model->G1->bias (= g), model->G2->weight   (G2 has no bias)
//   model->ConvolveAll(...) / model->Head(h) give the per-layer computation.
//
// Functions here throw c10::Error like torch does; the public entry points in trainer.cc
// and LoadModel catch it.

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "storage/status.h"
#include "train/batch.h"
#include "train/trainer.h"

namespace pgraph::storage {
class Store;
}

namespace pgraph::train {

// One CONVOLVE layer (Algorithm 1): Q, q (Q->bias), W, w (W->bias).
class ConvolveImpl : public torch::nn::Module {
 public:
  ConvolveImpl(std::int64_t in, std::int64_t hidden, std::int64_t out, Pooling pooling);
  // h_prev: [num_inputs x in], the previous layer's rows in G' order; the first `n` rows are
  // the targets' own rows. offsets [n], index [nnz] (rows of h_prev), weight [nnz]: the
  // neighbour lists CSR-style as in LayerBlock. Returns h: [n x out], rows L2-normalised.
  at::Tensor forward(const at::Tensor& h_prev, std::int64_t n, const at::Tensor& offsets,
                     const at::Tensor& index, const at::Tensor& weight);
  // The pooled neighbourhood vectors n_u [n x hidden] from the projections
  // p = ReLU(Q h + q) of h_prev (importance: sum weighted by alpha, or mean: CsrPool in
  // train/csr_pool.h; max: embedding_bag; 0 for a node without neighbours).
  at::Tensor Pool(const at::Tensor& projected, const at::Tensor& offsets,
                  const at::Tensor& index, const at::Tensor& weight) const;

  torch::nn::Linear Q{nullptr}, W{nullptr};
  Pooling pooling;
};
TORCH_MODULE(Convolve);

// A MiniBatch as tensors on a device.
struct LayerTensors {
  std::int64_t num_targets = 0;
  at::Tensor offsets, index, weight;
};
struct BatchTensors {
  at::Tensor nodes;     // [V'] int64 global ids (for id embeddings)
  at::Tensor features;  // [V' x F] float
  std::vector<LayerTensors> layers;
  at::Tensor query, positive, negative, hard;  // int64 rows of the targets
  std::int64_t hard_per_pair = 0;
};
// Wraps the batch's vectors (no copy on CPU; `batch` must outlive the result there). On CUDA,
// copies through pinned memory with non_blocking transfers.
BatchTensors ToTensors(const MiniBatch& batch, const at::Device& device);

class PinSageModelImpl : public torch::nn::Module {
 public:
  explicit PinSageModelImpl(const ModelConfig& config);
  // Embeddings z of the batch's targets S^(K): [num_targets x dim].
  at::Tensor forward(const BatchTensors& batch);
  // h^(0) rows for global ids `nodes` with their features: concat(x, id_embedding).
  at::Tensor Input(const at::Tensor& features, const at::Tensor& nodes);
  // z = G2 ReLU(G1 h + g), L2-normalised when config.normalize, then scaled by
  // 2 sigmoid(scale(h)) when config.magnitude.
  at::Tensor Head(const at::Tensor& h);
  // FLOPs of one forward pass over `batch` (multiply-adds count 2).
  double ForwardFlops(const MiniBatch& batch) const;
  // The dense products of one forward pass over `batch` (Q, W per layer, G1, G2).
  std::vector<GemmShape> ForwardGemms(const MiniBatch& batch) const;

  ModelConfig config;
  std::vector<Convolve> convs;
  torch::nn::Linear G1{nullptr}, G2{nullptr};
  torch::nn::Linear scale{nullptr};  // config.magnitude only
  torch::nn::Embedding id_embedding{nullptr};
};
TORCH_MODULE(PinSageModel);

// The parameters under their public names (trainer.h, ModelParameters), in a fixed order.
std::vector<std::pair<std::string, at::Tensor>> PublicParameters(PinSageModelImpl& model);
// Copies `params` into `model`. InvalidArgument naming a missing or misshaped array.
Status LoadParameters(const ModelParameters& params, PinSageModelImpl* model);
// The model of the latest checkpoint in `store`, on the CPU. NotFound without checkpoint.
Result<PinSageModel> LoadModel(const storage::Store& store);

// Algorithm 2 computed directly on the full graph, in double precision, one node at a time
// (no G', no batching): the reference the minibatch forward is tested against.
// features: num_items x (F + structural_dim) rows; neighbors/weights: num_items x T
// (kInvalidNode / 0 padded).
// Returns [targets.size() x dim] double.
at::Tensor ReferenceEmbed(PinSageModelImpl& model, std::span<const float> features,
                          std::span<const NodeId> neighbors, std::span<const float> weights,
                          std::uint32_t width, std::span<const NodeId> targets);

}  // namespace pgraph::train
