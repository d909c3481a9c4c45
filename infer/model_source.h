#pragma once
// Private to infer/: the trained model as inference needs it, and the h^(0) rows.
//
// The model comes from the latest checkpoint of the store itself or of another store (the
// one it was trained on: items ingested later are then new). Id embeddings are matched by
// external item id in that case; an item without a learned row gets zeros for its id part.
// Functions here throw c10::Error like torch; callers in infer.cc / naive.cc catch it.

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"
#include "storage/store.h"
#include "train/model.h"

namespace pgraph::infer {

struct ModelSource {
  train::PinSageModel model{nullptr};
  train::ModelConfig config;
  std::uint32_t in_dim = 0;     // config.input_dim(): features, structural, id embedding
  std::uint32_t neighbors = 0;  // T used by the model (<= the walk width)
  std::string fingerprint;      // identifies the checkpoint (for resume)
  // Trained id row of each item (-1: none). Empty when id embeddings are off.
  std::vector<std::int64_t> id_rows;
  std::uint64_t new_items = 0;  // items the model never saw
  at::Tensor id_weight;         // [trained items x id_dim] contiguous float, or undefined
};

// Loads the latest checkpoint of `model_store` ("" = `store`) for inference over `store`.
// NotFound without checkpoint; InvalidArgument when the feature width differs.
Result<ModelSource> LoadModelSource(const storage::Store& store, std::string_view model_store);

// The store's columns inference reads.
struct InputColumns {
  const storage::Column* features = nullptr;  // null when the store has no features
  const storage::Column* neighbors = nullptr;
  const storage::Column* weights = nullptr;
  const storage::Column* item_offsets = nullptr;  // for the degree feature, else null
  std::uint64_t items = 0;
  std::uint32_t width = 0;  // T of the walk columns
};
Result<InputColumns> OpenInputColumns(const storage::Store& store, const ModelSource& model);

// h^(0) rows [first, first+n) into out (n x in_dim floats). `scratch` is reused.
Status ReadInputRows(const InputColumns& cols, const ModelSource& model, std::uint64_t first,
                     std::uint64_t n, std::span<float> out, std::vector<float>* scratch);

// h^(0) rows of any items, read in place: the features' raw chunks in LMDB's map, the degree
// feature's offsets through a ColumnView, id embeddings from the model. For the locality
// order's first layer, which wants the rows of the items in position order: a random read per
// row instead of reading in item order and scattering two output rows per item (1M items:
// 0.26 s of scattering).
class InputGather {
 public:
  // NotSupported when the features are not in place (compressed, float16, or not LMDB):
  // read them in item order then. ResourceExhausted when the offsets need pinning beyond
  // `max_pinned_bytes`. `cols` and `model` must outlive the result.
  static Result<InputGather> Make(const InputColumns& cols, const ModelSource& model,
                                  std::uint64_t max_pinned_bytes);
  // out[r * in_dim ..] = h^(0) of item ids[r] (ids < items). Thread-safe.
  void Gather(std::span<const NodeId> ids, float* out) const;

 private:
  const ModelSource* model_ = nullptr;
  std::vector<const float*> chunks_;  // the features' chunks, rows_per_chunk = 1 << shift_
  unsigned shift_ = 0;
  std::uint64_t mask_ = 0;
  storage::ColumnView<std::uint64_t> offsets_;  // the degree feature's item offsets
};

// Neighbour rows [first, first+n) as the model uses them: n x model.neighbors ids and
// weights (the walk width truncated to the heaviest neighbours and renormalised exactly as
// in training when the model used fewer than the walk width).
Status ReadNeighborRows(const InputColumns& cols, const ModelSource& model, std::uint64_t first,
                        std::uint64_t n, std::vector<NodeId>* nbrs, std::vector<float>* wts);

// Rows of neighbour lists (rows x T ids and weights, any id space) cut to the model's Tu
// heaviest entries, renormalised, exactly as ReadNeighborRows and training do: into
// `out_ids` / `out_wts` (rows x Tu). The choice depends on the weights and the list order
// only, never on the ids, so lists naming positions are cut like the lists they rename.
Status TruncateLists(std::span<const NodeId> ids, std::span<const float> wts, std::uint64_t rows,
                     std::uint32_t T, std::uint32_t Tu, std::span<NodeId> out_ids,
                     std::span<float> out_wts);

// Corruption naming the first id of `ids` that is neither kInvalidNode nor below `items`: the
// check ReadNeighborRows makes, for lists read into place by other means.
Status CheckNeighborIds(std::span<const NodeId> ids, std::uint64_t items);

}  // namespace pgraph::infer
