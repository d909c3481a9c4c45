#pragma once
// Private to train/: importance and mean pooling (CONVOLVE step 1) as one autograd op.
//
// at::embedding_bag computes the same sums, but its backward sorts the nnz neighbour
// entries (twice) to group them by row and then index-adds; with T = 10 that sort was ~20%
// of a training step on MovieLens (docs/BENCHMARKS.md, "train"). The pooling gradient is
// just the transposed sparse product, d projected[v] += w_uv * d pooled[u], which a scatter
// in entry order computes in one pass over the entries with no sort and no extra memory
// beyond the result. The scatter is deterministic: threads split the columns, not the
// entries.
//
// Max pooling is not handled here (embedding_bag keeps it).

#include <ATen/ATen.h>

namespace pgraph::train {

// Pooled rows n_u, [n x m], for the CSR neighbour lists of LayerBlock (train/batch.h):
// u's entries are index[offsets[u] .. offsets[u+1]) (the last one ends at index.size()).
//   mean == false: n_u = sum_e weight[e] * projected[index[e]]   (importance pooling)
//   mean == true:  n_u = the plain mean of projected[index[e]]   (weight unused)
// A u without entries gets a zero row. Summation runs in entry order, like embedding_bag.
// relu == true pools ReLU(projected) instead (CONVOLVE's p = ReLU(Q h + q)) without
// materialising it or recording a separate ReLU: the same result and gradient as
// CsrPool(at::relu(projected), ...).
// Differentiable with respect to `projected` only. On a non-CPU device it falls back to
// at::embedding_bag.
// Requires: projected float32 or float64 [R x m]; offsets int64 [n], non-decreasing,
// starting at 0; index int64 [nnz] with values in [0, R); weight [nnz] of projected's dtype
// (when !mean), without grad.
// Throws c10::Error when a requirement checked at run time (dtypes, shapes, index range)
// fails. The inputs must stay alive and unchanged until backward has run.
at::Tensor CsrPool(const at::Tensor& projected, const at::Tensor& offsets,
                   const at::Tensor& index, const at::Tensor& weight, bool mean,
                   bool relu = false);

}  // namespace pgraph::train
