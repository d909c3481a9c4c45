#pragma once
// Reading item features for ingest: a TSV file (`item<TAB>f1 f2 ...`) or a NumPy .npy
// float32 matrix with an id file. Private to storage/ingest.

#include <cstdint>
#include <string>
#include <vector>

#include "storage/ingest/id_table.h"
#include "storage/store.h"

namespace pgraph::storage {

struct FeatureMatrix {
  std::uint64_t dim = 0;
  std::vector<float> values;  // items x dim, row = dense item id
  std::uint64_t filled = 0;   // rows filled by --missing-features
};

// InvalidArgument naming file and line for: unknown item, wrong dimension, non-numeric or
// NaN/Inf value, duplicate row, empty input, bad .npy dtype/shape, missing rows (unless
// options.missing_features fills them). NotFound for a missing file.
// With options.isolated_items, rows for items absent from the edge list add those items
// (interned into `items`) instead of failing.
Result<FeatureMatrix> LoadFeatures(const IngestOptions& options, IdTable& items);

}  // namespace pgraph::storage
