// The naive per-node path (Algorithm 2 for one target at a time) and the GEMM bound, for
// tests and benchmarks.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cstring>

#include "infer/infer.h"
#include "infer/model_source.h"
#include "storage/store.h"
#include "train/batch.h"
#include "storage/blas_runtime.h"

namespace pgraph::infer {
namespace {

// N(u) from the store as the model uses it (truncated like training when T_model < T).
class StoreNeighborhoods final : public train::NeighborhoodSource {
 public:
  StoreNeighborhoods(const InputColumns& c, const ModelSource& m)
      : cols_(c), model_(m), width_(m.neighbors == 0 ? c.width : m.neighbors) {}
  std::uint64_t num_items() const override { return cols_.items; }
  std::uint32_t width() const override { return width_; }
  Status Get(std::span<const NodeId> ids, std::span<NodeId> neighbors,
             std::span<float> weights) const override {
    std::vector<NodeId> n;
    std::vector<float> w;
    for (std::size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] >= cols_.items) return Status::InvalidArgument("item id out of range");
      PGRAPH_RETURN_IF_ERROR(ReadNeighborRows(cols_, model_, ids[j], 1, &n, &w));
      std::memcpy(neighbors.data() + j * width_, n.data(), width_ * sizeof(NodeId));
      std::memcpy(weights.data() + j * width_, w.data(), width_ * sizeof(float));
    }
    return Status::OK();
  }

 private:
  const InputColumns& cols_;
  const ModelSource& model_;
  std::uint32_t width_;
};

at::Tensor WrapI64(std::vector<std::int64_t>& v) {
  return at::from_blob(v.data(), {static_cast<std::int64_t>(v.size())},
                       at::TensorOptions().dtype(at::kLong));
}

}  // namespace

Status NaiveEmbed(const storage::Store& store, std::string_view model_store,
                  std::span<const std::uint32_t> targets, std::span<float> out, double* flops) {
  try {
    torch::NoGradGuard no_grad;
    PGRAPH_ASSIGN_OR_RETURN(ModelSource model, LoadModelSource(store, model_store));
    PGRAPH_ASSIGN_OR_RETURN(InputColumns cols, OpenInputColumns(store, model));
    const std::uint32_t d = model.config.dim, in = model.in_dim;
    if (out.size() < targets.size() * d) return Status::InvalidArgument("output too small");
    StoreNeighborhoods nbrs(cols, model);
    double total_flops = 0;
    std::vector<float> h0, scratch;
    for (std::size_t j = 0; j < targets.size(); ++j) {
      const NodeId u = targets[j];
      if (u >= cols.items) return Status::InvalidArgument("target out of range");
      // Algorithm 2 with M = {u}: S^(K) .. S^(0), then CONVOLVE layer by layer on S^(k).
      train::MiniBatch batch;
      std::vector<std::int64_t> pos;
      PGRAPH_RETURN_IF_ERROR(
          train::BuildSubgraph(std::span<const NodeId>(&u, 1), model.config.layers, nbrs,
                               &batch, &pos));
      h0.resize(batch.nodes.size() * in);
      for (std::size_t r = 0; r < batch.nodes.size(); ++r) {
        PGRAPH_RETURN_IF_ERROR(ReadInputRows(cols, model, batch.nodes[r], 1,
                                             std::span<float>(h0).subspan(r * in, in), &scratch));
      }
      at::Tensor h = at::from_blob(h0.data(),
                                   {static_cast<std::int64_t>(batch.nodes.size()),
                                    static_cast<std::int64_t>(in)},
                                   at::TensorOptions().dtype(at::kFloat));
      for (std::size_t k = 0; k < model.model->convs.size(); ++k) {
        train::LayerBlock& l = batch.layers[k];
        at::Tensor w = at::from_blob(l.weight.data(), {static_cast<std::int64_t>(l.weight.size())},
                                     at::TensorOptions().dtype(at::kFloat));
        h = model.model->convs[k]->forward(h.narrow(0, 0, l.num_inputs), l.num_targets,
                                           WrapI64(l.offsets), WrapI64(l.index), w);
      }
      at::Tensor z = model.model->Head(h.narrow(0, pos[0], 1)).contiguous();
      std::memcpy(out.data() + j * d, z.data_ptr<float>(), d * sizeof(float));
      batch.feature_dim = model.config.feature_dim;
      total_flops += model.model->ForwardFlops(batch);
    }
    if (flops) *flops = total_flops;
    return Status::OK();
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("torch: ") + e.what_without_backtrace());
  }
}

Result<double> GemmFlopsPerSecond(std::span<const std::uint64_t> m,
                                  std::span<const std::uint64_t> k,
                                  std::span<const std::uint64_t> n, int threads,
                                  double min_seconds) {
  if (m.size() != k.size() || m.size() != n.size() || m.empty()) {
    return Status::InvalidArgument("GEMM shapes of different lengths");
  }
  storage::SelectBlasKernels();  // the bound uses the kernels inference uses
  try {
    torch::NoGradGuard no_grad;
    if (threads > 0) at::set_num_threads(threads);
    auto f32 = at::TensorOptions().dtype(at::kFloat);
    std::vector<at::Tensor> a, b, c;
    double per_round = 0;
    for (std::size_t i = 0; i < m.size(); ++i) {
      const auto M = static_cast<std::int64_t>(m[i]), K = static_cast<std::int64_t>(k[i]),
                 N = static_cast<std::int64_t>(n[i]);
      a.push_back(at::rand({M, K}, f32));
      b.push_back(at::rand({N, K}, f32).t());  // stored [out x in] like a Linear weight
      c.push_back(at::empty({M, N}, f32));
      per_round += 2.0 * M * K * N;
    }
    for (std::size_t i = 0; i < a.size(); ++i) at::mm_out(c[i], a[i], b[i]);  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    double seconds = 0;
    std::uint64_t rounds = 0;
    do {
      for (std::size_t i = 0; i < a.size(); ++i) at::mm_out(c[i], a[i], b[i]);
      ++rounds;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (seconds < min_seconds);
    return per_round * static_cast<double>(rounds) / seconds;
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("torch: ") + e.what_without_backtrace());
  }
}

}  // namespace pgraph::infer
