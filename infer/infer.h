#pragma once
// pgraph::infer — PinSage inference without repeated computation (docs/pinsage.md, 3.4).
//
// The public surface of the inference library. Torch-free: tools and tests compile against
// it without torch headers; the tensor code lives in infer/*.cc and private headers.
//
// What a run does, for a store with a checkpoint (train) and walk.* columns (walker):
//   for k = 1..K:
//     (a) project every node once: p_v = ReLU(Q^(k) h^(k-1)_v + q^(k)), streaming h^(k-1)
//         in blocks of rows (one GEMM per block). Importance and mean pooling are linear in
//         p, so when d <= m the rows kept are r_v = W_pool^(k) p_v (d wide: the half of W^(k)
//         that multiplies the pooled vector) instead of p_v; max pooling keeps p_v;
//     (b) for every item u: pool those rows over N(u) with the weights (importance / mean /
//         max, as in training); then ReLU(W_self h^(k-1)_u + pooled r + w) (or W^(k) of
//         [h^(k-1)_u | pooled p] for max), L2-normalise -> column segments infer.h{k}.NNNNN.
//   head: z_u = G2 ReLU(G1 h^(K)_u + g) for every item -> the `embedding` column (f32|f16),
//   published in one atomic Update together with meta "infer.*" and the removal of every
//   intermediate column. Then (when pgraph_ann is linked) the LSH index is rebuilt.
// Every representation at every layer is computed exactly once per run (a resume may
// compute one layer's rows of (a) again).
//
// h^(0)_u = concat(x_u, id_embedding[u]). Items that were not in the training data (ingested
// later; see InferOptions::model_store) have no learned id row: their id part is zero, so
// with id embeddings off (the default) inference is fully inductive.
//
// Locality order: when pooling is linear and everything a layer holds fits the budget, the
// layers run in a locality order of the items (walker.h: items whose neighbourhoods overlap
// get nearby positions): the layout `pgraph walk` stored with the neighbourhoods, read in
// place from LMDB's map, or else an order computed here from walk.neighbors. The rows of (a) are then laid out, and the
// items of (b) visited, in that order, so the gathers of (b) mostly hit rows that nearby
// items just brought into cache instead of missing it at random over the whole layer; the
// intermediate infer.h{k} segments hold their rows in that order, and the head writes
// `embedding` back in item order. Same values as item order (the same float operations per
// item); only the memory access pattern changes.
//
// Out of core: when the rows of (a) fit the working budget they are computed into memory
// and never stored. Otherwise (a) writes them as column segments infer.p{k}.NNNNN and (b)
// partitions neighbour ids into ranges that fit, making one pass per range for each block
// of items (sums accumulate, max keeps a running maximum). Anonymous memory stays within
// `memory_budget` plus a fixed overhead (torch, BLAS buffers, the model's parameters).
//
// Resumable: every segment of intermediate rows is published on its own, with the progress
// in meta "infer.state". With `resume`, a killed run continues after the last published
// segment of the last stage (recomputing in-memory rows of (a); a layer pooled in memory
// whose rows no longer fit the budget starts again); the `embedding` column only ever
// changes in one atomic publish, so a reader never sees a half-written one.
//
// Errors are Status / Result (storage/status.h); torch errors (c10::Error) are caught here
// and returned as kInternal. Not thread-safe: one Infer call per store at a time (the store's
// writer lock enforces it across processes).

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace pgraph::storage {
class Store;
}

namespace pgraph::infer {

enum class OutputType { kFloat32, kFloat16 };
// "float32" | "f32" | "float16" | "f16". InvalidArgument otherwise.
Result<OutputType> ParseOutputType(std::string_view s);

// Whether layers run in a locality order (see above). auto: when the rows one layer gathers
// exceed what caches hold (8 MiB), the ordered plan fits the budget and the order puts at
// least half of the neighbours within 4096 positions of their item; on: whenever it fits
// (small stores and random graphs too: tests); off: item order always.
enum class LocalityMode { kAuto, kOn, kOff };
// "auto" | "on" | "off". InvalidArgument otherwise.
Result<LocalityMode> ParseLocalityMode(std::string_view s);

// What the progress callback sees, once per block of rows (and once at each stage's end).
struct StageProgress {
  std::string stage;              // "order", "project 1/2", "pool 1/2", "head"
  std::uint32_t layer = 0;        // 1-based; 0 for the head
  std::uint64_t rows_done = 0, rows_total = 0;
  double seconds = 0;             // since the stage started (this process)
  double rows_per_second = 0;
  double eta_seconds = 0;
  bool finished = false;
};

struct InferOptions {
  std::string store_dir;          // required; opened for writing
  // Where the checkpoint comes from: "" = store_dir's own latest checkpoint. Otherwise the
  // directory of another store (the one the model was trained on), for items ingested after
  // training into a new store; id embeddings are then matched by external item id.
  std::string model_store;
  std::uint64_t memory_budget = 512ull << 20;  // bytes: working set + the store's chunk cache
  // torch intra-op and TBB threads; 0: hardware concurrency. CPU products run single-threaded
  // in slices on torch's team, so OpenBLAS's own pool is held at one thread while Infer runs
  // (process-wide; restored when it returns).
  int threads = 0;
  std::string device = "cpu";      // cpu | cuda | cuda:N | auto (GEMMs only; pooling on CPU)
  OutputType dtype = OutputType::kFloat32;  // of the `embedding` column; intermediates f32
  bool resume = false;             // continue a killed run (else: start from layer 1)
  bool keep_intermediates = false; // keep infer.p*/infer.h* columns after publishing
  bool build_index = true;         // rebuild the LSH index after publishing (if ann linked)
  LocalityMode locality = LocalityMode::kAuto;
  // Use the locality layout `pgraph walk` wrote for the current neighbourhoods (walker.h)
  // instead of ordering the items here. Same order, same embeddings; false makes this run
  // compute it (benchmarks compare the two).
  bool stored_layout = true;
  // Rows per block (one GEMM, one pooling task set); 0: 65536, reduced to fit the budget.
  std::uint64_t block_rows = 0;
  // Rows per published segment of intermediates (the resume granularity); 0: 1 << 20.
  std::uint64_t segment_rows = 0;
  // Rows of p^(k) per neighbour-range pass when partitioning; 0: as many as fit the budget.
  // A value > 0 forces that range size (tests force the out-of-core path with it).
  std::uint64_t partition_rows = 0;
  std::function<void(const StageProgress&)> on_progress;  // called on the calling thread
  const std::atomic<bool>* cancel = nullptr;  // checked between blocks: Cancelled
  // Tests: called at named points ("segment:<stage>:<n>" after a segment's chunks are
  // written but before it is published, "published:<stage>:<n>" after); returning true
  // makes Infer return Cancelled right there, as if the process had been killed.
  std::function<bool(std::string_view point)> test_stop;
};

struct LayerReport {
  std::uint32_t layer = 0;
  double project_seconds = 0, pool_seconds = 0;
  std::uint64_t partitions = 0;    // neighbour-id ranges per item block (1: in memory)
  std::uint64_t range_rows = 0;    // rows of p per range
  std::uint64_t block_rows = 0;
  double flops = 0;                // GEMM + pooling FLOPs of this layer (multiply-add = 2)
};

struct InferReport {
  std::uint64_t items = 0;
  std::uint32_t dim = 0, layers = 0;
  std::vector<LayerReport> per_layer;  // layers run by this call (resumed ones skipped)
  double head_seconds = 0, seconds = 0;
  double flops = 0;                    // of the work done by this call
  std::vector<std::uint64_t> gemm_m, gemm_k, gemm_n;  // every GEMM shape of a full run
  bool resumed = false;                // continued from a published state
  std::string resumed_from;            // the state resumed from ("" when none)
  std::uint64_t new_items = 0;         // items without a learned id row (inductive)
  bool index_built = false;
  std::string index_note;              // why no index was built, when it was not
  std::string device;
  std::uint64_t peak_working_bytes = 0;  // largest working set planned (excl. the cache)
  bool locality_order = false;         // the layers ran in a locality order
  std::string layout_note;             // why they did not, when they did not
  std::string layout_source;           // "stored" (the walk's layout) or "computed"
  double order_seconds = 0;            // reading the layout, or the lists and ordering them
  // Of the neighbour entries of a sample of items: the share whose position lies within 4096
  // positions of their item's (item order on random ids: about 8192 / items).
  double locality_share = 0;
};

// Runs inference over every item of options.store_dir and publishes `embedding`.
// NotFound naming a missing column (features, walk.*) or checkpoint; InvalidArgument when
// the checkpoint does not fit the store (feature width) or for bad options;
// ResourceExhausted when even one block does not fit memory_budget; NotSupported for an
// unusable device; Cancelled (options.cancel / test_stop; the published segments stay for
// --resume); IOError / Corruption from the store; Internal for torch errors.
// Cost: K passes of (a) + (b) over every item, plus
// ceil(p_bytes / range_bytes) reads of p^(k) per item block when partitioned.
Result<InferReport> Infer(const InferOptions& options);

// Reference path for tests and benchmarks: Algorithm 2 run independently for each of
// `targets` (its own K-hop neighbourhood, recomputing shared nodes; float32, no reuse across
// targets), from the store's features, walk.* columns and the checkpoint of `model_store`
// ("" = the store's own). Writes targets.size() x dim floats into `out`, and the FLOPs it
// spent into `*flops` when not null. Same errors as Infer.
Status NaiveEmbed(const storage::Store& store, std::string_view model_store,
                  std::span<const std::uint32_t> targets, std::span<float> out,
                  double* flops = nullptr);

// FLOP/s of plain GEMMs of the given shapes (C[m x n] = A[m x k] B[k x n], float32, CPU,
// `threads` threads), repeated for at least `min_seconds`: the arithmetic bound benchmarks
// compare inference with. Internal for torch errors.
Result<double> GemmFlopsPerSecond(std::span<const std::uint64_t> m,
                                  std::span<const std::uint64_t> k,
                                  std::span<const std::uint64_t> n, int threads,
                                  double min_seconds);

// The bound for the memory-bound part of inference: neighbour rows gathered per second by
// the pooling kernel inference uses (importance pooling), with no store I/O: every item of
// `items` sums T uniformly random rows of an items x `width` float32 matrix in memory, on
// `threads` threads, repeated for at least `min_seconds`. InvalidArgument for empty shapes.
Result<double> GatherRowsPerSecond(std::uint64_t items, std::uint32_t width, std::uint32_t T,
                                   int threads, double min_seconds);

// Reads the `embedding` column of `store` as float rows: `*dim` gets its width.
// NotFound when there is none. Cost: one pass over the column.
Result<std::vector<float>> ReadEmbeddings(const storage::Store& store, std::uint32_t* dim);

}  // namespace pgraph::infer
