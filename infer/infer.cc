// Layer-by-layer PinSage inference over every item (see infer/infer.h for the contract).
#include "infer/infer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>
#include <tbb/task_arena.h>
// at::parallel_for only uses torch's thread team where this file is compiled with OpenMP;
// without it every range runs on the calling thread, silently (see the top CMakeLists.txt).
#ifndef _OPENMP
#error "compile with OpenMP (OpenMP::OpenMP_CXX), or at::parallel_for runs serially"
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "infer/model_source.h"
#include "infer/pool_kernel.h"
#include "infer/row_products.h"
#include "infer/scratch_arena.h"
#include "infer/serial_jobs.h"
#include "storage/blas_runtime.h"
#include "storage/huge_pages.h"
#include "storage/store.h"
#include "storage/test_hooks.h"
#include "train/trainer.h"
#include "walker/walker.h"
#if defined(PGRAPH_HAVE_ANN) && PGRAPH_HAVE_ANN
#include "ann/ann.h"
#endif

namespace pgraph::infer {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kStateKey = "infer.state";
constexpr const char* kPrefix = "infer.";
constexpr std::uint64_t kDefaultBlockRows = 65536;
constexpr std::uint64_t kDefaultSegmentRows = 1ull << 20;
constexpr std::uint64_t kMinBlockRows = 16;
// The store's ColumnWriter buffers up to this many bytes before it writes (storage/column.cc),
// and holds an encoded copy while writing.
constexpr std::uint64_t kStoreWriteBatch = 64ull << 20;
// In auto mode the locality order is used when the rows one layer gathers exceed this: below
// it they stay in the caches whatever the order.
constexpr std::uint64_t kLocalityMinRowBytes = 8ull << 20;
// ... and when at least this share of the neighbours lies within 4096 positions of their
// item in it (walk neighbourhoods of generated graphs: 0.8; random ones: 8192 / items).
constexpr double kLocalityMinShare = 0.5;
constexpr const char* kItemOrder = "items";

// Rows of `rows` x `dim` scaled to unit length (0 rows stay 0), as the model's head does.
void NormalizeRows(float* rows, std::uint64_t n, std::uint64_t dim) {
  for (std::uint64_t r = 0; r < n; ++r) {
    float* row = rows + r * dim;
    double ss = 0;
    for (std::uint64_t c = 0; c < dim; ++c) ss += static_cast<double>(row[c]) * row[c];
    const float inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
    for (std::uint64_t c = 0; c < dim; ++c) row[c] *= inv;
  }
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string SegmentName(const std::string& stage, std::uint64_t j) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ".%05llu", static_cast<unsigned long long>(j));
  return kPrefix + stage + buf;
}

// Progress of a run, in meta "infer.state" (key=value lines). Stages are numbered
// 2(k-1) = project layer k, 2(k-1)+1 = pool layer k, 2K = head, 2K+1 = done.
struct State {
  std::string fingerprint;
  std::uint32_t stage = 0;
  std::uint64_t segments = 0;  // published segments of `stage`
  std::uint64_t segment_rows = 0;
  // The order of the rows of the infer.h* segments: kItemOrder, or "locality:" and a hash
  // of the locality order (states written before there was a choice have no such line).
  std::string layout = kItemOrder;
};

std::string FormatState(const State& s) {
  return "fingerprint=" + s.fingerprint + "\nstage=" + std::to_string(s.stage) +
         "\nsegments=" + std::to_string(s.segments) +
         "\nsegment_rows=" + std::to_string(s.segment_rows) + "\nlayout=" + s.layout + "\n";
}

bool ParseState(const std::string& text, State* s) {
  std::size_t pos = 0;
  int found = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    try {
      if (key == "fingerprint") s->fingerprint = value, ++found;
      if (key == "stage") s->stage = static_cast<std::uint32_t>(std::stoul(value)), ++found;
      if (key == "segments") s->segments = std::stoull(value), ++found;
      if (key == "segment_rows") s->segment_rows = std::stoull(value), ++found;
      if (key == "layout") s->layout = value;
    } catch (...) {
      return false;
    }
  }
  return found == 4 && s->segment_rows > 0;
}

// The rows of one stage's output, spread over its published segment columns.
class SegmentedColumn {
 public:
  Status Open(const storage::Store& store, const std::string& stage, std::uint64_t rows,
              std::uint64_t segment_rows, std::uint32_t width) {
    segs_.clear();
    seg_rows_ = segment_rows;
    for (std::uint64_t j = 0; j * segment_rows < rows; ++j) {
      const std::string name = SegmentName(stage, j);
      auto c = store.OpenColumn(name);
      if (!c.ok()) return Status::Corruption("intermediate column " + name + " is missing");
      const auto& info = c.value()->info();
      const std::uint64_t want = std::min(segment_rows, rows - j * segment_rows);
      if (info.rows != want || info.width != width || info.dtype != storage::DType::kF32) {
        return Status::Corruption("intermediate column " + name + " has the wrong shape");
      }
      segs_.push_back(c.value());
    }
    width_ = width;
    return Status::OK();
  }
  Status Read(std::uint64_t first, std::uint64_t n, float* out) const {
    while (n > 0) {
      const std::uint64_t j = first / seg_rows_, off = first % seg_rows_;
      const std::uint64_t take = std::min(n, seg_rows_ - off);
      PGRAPH_RETURN_IF_ERROR(
          segs_[j]->ReadRowsAsFloat(off, take, std::span<float>(out, take * width_)));
      out += take * width_;
      first += take;
      n -= take;
    }
    return Status::OK();
  }

 private:
  std::vector<const storage::Column*> segs_;
  std::uint64_t seg_rows_ = 1;
  std::uint32_t width_ = 0;
};

struct LayerWeights {
  at::Tensor Qt, q, Wt, w;  // transposed weights [in x out] and biases, on the device
  // Wt split into the rows that multiply h^(k-1)_u and the pooled rows (linear pooling).
  at::Tensor WselfT, WpoolT;
};

// A CPU weight tensor (transposed, [in x out], contiguous) and bias as SliceProduct reads them.
DenseWeights Dense(const at::Tensor& wt, const at::Tensor& bias) {
  DenseWeights w;
  w.wt = wt.data_ptr<float>();
  w.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  w.in = static_cast<std::uint32_t>(wt.size(0));
  w.out = static_cast<std::uint32_t>(wt.size(1));
  return w;
}

// A range of rows given to a parallel loop body.
struct RowRange {
  std::uint64_t lo, hi;
  std::uint64_t begin() const { return lo; }
  std::uint64_t end() const { return hi; }
};

// Where an ordered run's neighbour lists by position come from: the order computed here from
// walk.neighbors, or the walk's layout (walker.h) read in place from LMDB's map or copied
// (other backends).
enum class LayoutSource { kComputed, kStoredMapped, kStoredCopied };

// A job run now (no queue), or queued behind the earlier ones: its error then shows up at a
// later call, or at the queue's Wait().
Status RunOrQueue(SerialJobs* jobs, std::function<Status()> job) {
  if (jobs == nullptr) return job();
  jobs->Post(std::move(job));
  return jobs->status();
}

// A column written through RunOrQueue: its Update and writer, made by the first job.
struct QueuedColumn {
  std::unique_ptr<storage::Update> update;
  storage::ColumnWriter* writer = nullptr;
};
std::function<Status()> BeginColumnJob(storage::Store* store, std::shared_ptr<QueuedColumn> c,
                                       storage::ColumnSpec spec) {
  return [store, c, spec]() -> Status {
    PGRAPH_ASSIGN_OR_RETURN(c->update, store->BeginUpdate());
    PGRAPH_ASSIGN_OR_RETURN(c->writer, c->update->AddColumn(spec));
    return Status::OK();
  };
}

class Runner {
 public:
  explicit Runner(const InferOptions& o) : opt_(o) {}
  ~Runner() {
    writes_.reset();  // first: its jobs use the store and the buffers below
    if (blas_threads_before_ > 0) storage::SetBlasThreads(blas_threads_before_);
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  Result<InferReport> Run();

 private:
  Status Setup();
  Status PlanAndResume();
  Status PlanBlocks();
  // How stage (b) of layer k holds the rows it gathers: all of them (in_memory, computed
  // right there from h^(k-1), never written to the store), or ranges of R rows read from the
  // stage (a) segments, for blocks of B items.
  struct PoolPlan {
    std::uint64_t B = 0, R = 0;
    bool in_memory = false;
  };
  Result<PoolPlan> PlanPool(std::uint32_t k) const;
  Status RunProject(std::uint32_t k);
  // Stage (a) for `rows` rows of h^(k-1): the rows pooling gathers into `out` (W_pool p when
  // pooling is linear, with p in `p_scratch`, rows x m; else p itself), and when `self` is
  // not null W_self h + w into it (rows x d; linear pooling only). Its FLOPs per row.
  void ProjectRows(std::uint32_t k, const float* h, std::int64_t rows, float* p_scratch,
                   float* out, float* self = nullptr);
  double ProjectFlopsPerRow(std::uint32_t k) const;
  // ProjectRows on the CPU for `rows` rows whose h^(k-1) slice [lo, lo + n) load(lo, n,
  // scratch) returns (in place, or put into the per-thread `scratch` of n x in floats): each
  // slice's rows go through the products back to back while they are in L2.
  template <typename Load>
  void ProjectSlices(std::uint32_t k, std::uint64_t rows, const Load& load, float* out,
                     float* self);
  // The in-memory plan's stage (a): the gathered rows of every item into `out`, in blocks of
  // `B` rows (scratch: B x m floats besides the h block of RunPool).
  Status ProjectAll(std::uint32_t k, std::uint64_t B, float* hbuf, float* out);
  // Stage (a) segments are gone but stage (b) of layer k is part-way (a run that pooled in
  // memory, resumed with a budget that does not fit): start layer k again.
  Status RestartLayer(std::uint32_t k);
  bool HasProjections(std::uint32_t k) const;
  Status RunPool(std::uint32_t k, const PoolPlan& plan);
  // The head for every item, then the `embedding` column in one publish. h^(K) comes from
  // the infer.h{K} segments, or (h_in_memory: an ordered run that pooled layer K in this
  // process) from oself_, by position.
  Status RunHead(bool h_in_memory);
  // z = head(h) for `rows` rows (G1, ReLU, G2, then normalise and the learned length), on
  // the thread team, slice by slice; g: rows x d of scratch for the GPU path (the CPU path
  // keeps its slices in per-thread scratch).
  void HeadRows(const float* h, std::uint64_t rows, float* g, float* z);
  // HeadRows on the CPU for rows whose h^(K) slice [lo, lo + n) load(lo, n, scratch) returns
  // (in place, or in the per-thread `scratch`), each slice's rows through the head in L2.
  template <typename Load>
  void HeadSlices(std::uint64_t rows, const Load& load, float* z);
  // Normalise z (when the model does) and scale it by the learned length from h.
  void FinishHeadRow(const float* h, float* z) const;
  Status BuildIndex();
  // The locality order (infer.h): decides whether this run uses it (never when
  // `allow_order` is false: a resumed run in item order) and, when it does, reads the walk's
  // layout or else every neighbour list (ordering the items, mapping the lists' ids to
  // positions), and names layout_.
  Status DecideLayout(bool allow_order);
  // The two ways DecideLayout fills lo_, the lists by position (pieces), onnz_ and the
  // locality share: from walk.neighbors (ordering here), or from the walk's layout.
  Status ComputeLayout(Clock::time_point t0);
  Status ReadStoredLayout();
  // The working set of an ordered run: what it holds throughout plus its largest phase.
  // `block` rows per GEMM block, `out_rows` per append of a layer's or the head's output.
  std::uint64_t OrderedBytes(std::uint64_t block, std::uint64_t out_rows) const;
  // Layer k in locality order: stage (a) for every node into orows_ / oself_ (unless
  // `projected`: done in memory at the end of layer k - 1), then (b) by position, h^(k)
  // into oself_ in place (each position reads only its own self term) and the infer.h{k}
  // segments; oself_ then holds h^(k) of every item.
  Status RunOrderedLayer(std::uint32_t k, bool projected);
  // Stage (a) of layer k from the features (k = 1) or the infer.h{k-1} segments.
  Status ProjectOrdered(std::uint32_t k);
  // Progress, FLOPs and seconds of an ordered stage (a) of layer k that started at t0.
  void ReportOrderedProject(std::uint32_t k, const std::string& label, Clock::time_point t0);
  // Stage (a) of layer k from h^(k-1) in oself_, in place, block by block as the rows' writes
  // (writes_) are done with them; returns once the writes of layer k - 1 are all done.
  Status ProjectInMemory(std::uint32_t k);

  // Stage `stage`'s output as resumable segments: fill(first, n, append) computes rows
  // [first, first + n) and hands them, in order, to append(rows, count). With `jobs` the
  // appends and publishes run there, behind the computation, and may still be running when
  // RunSegments returns: appended rows must stay unchanged until the caller has waited.
  using AppendFn = std::function<Status(const float* rows, std::uint64_t count)>;
  using FillFn = std::function<Status(std::uint64_t first, std::uint64_t n, const AppendFn& append)>;
  Status RunSegments(std::uint32_t stage, std::uint32_t width, const FillFn& fill,
                     const std::vector<std::string>& drop_at_end, SerialJobs* jobs = nullptr);
  std::string StageName(std::uint32_t s) const {
    if (s >= 2 * K_) return "head";
    return (s % 2 == 0 ? "p" : "h") + std::to_string(s / 2 + 1);
  }
  // What the last segment of layer k's pooling drops: its stage (a) rows and h^(k-1).
  std::vector<std::string> PooledDrops(std::uint32_t k) const {
    std::vector<std::string> drops = SegmentNames("p" + std::to_string(k));
    if (k > 1) {
      auto h = SegmentNames("h" + std::to_string(k - 1));
      drops.insert(drops.end(), h.begin(), h.end());
    }
    return drops;
  }
  std::vector<std::string> SegmentNames(const std::string& stage) const {
    std::vector<std::string> out;
    for (std::uint64_t j = 0; j * seg_rows_ < N_; ++j) out.push_back(SegmentName(stage, j));
    return out;
  }
  Status Stop(const std::string& point) {
    std::string hook = "infer." + point;
    std::replace(hook.begin(), hook.end(), ':', '.');
    storage::TestStopPoint(hook.c_str());
    if (opt_.test_stop && opt_.test_stop(point)) {
      return Status::Cancelled("stopped at test point " + point);
    }
    return Status::OK();
  }
  Status CheckCancel() const {
    if (opt_.cancel && opt_.cancel->load()) return Status::Cancelled("inference cancelled");
    return Status::OK();
  }
  // out[rows x n] = act(a[rows x k] * wt[k x n] + bias); on the CPU in slices of rows over
  // the thread team (see Setup).
  void Linear(const at::Tensor& wt, const at::Tensor& bias, const float* a, std::int64_t rows,
              float* out, bool relu);
  // h^(kprev) rows [first, first + n) into out.
  Status ReadH(std::uint32_t kprev, std::uint64_t first, std::uint64_t n, float* out);
  void Progress(const std::string& stage, std::uint32_t layer, std::uint64_t done,
                std::uint64_t start_done, Clock::time_point t0, bool finished);
  std::uint32_t InDim(std::uint32_t k) const { return k == 1 ? model_.in_dim : d_; }
  std::uint64_t PoolRowBytes(std::uint32_t k) const;
  // Width of the rows stage (a) writes and (b) gathers: W_pool p_v (d) when pooling is
  // linear and that is narrower, else p_v (m).
  std::uint32_t PooledWidth() const { return linear_pool_ ? d_ : m_; }

  // Runs f over [0, n) in ranges of at least `grain` rows on the torch (OpenMP) thread team
  // that also runs the GEMMs: one team for the layers' parallel work, so no second pool
  // spins for work while the other runs (TBB workers spinning beside an OpenMP GEMM cost
  // 10-15% of the run). Only the locality order, torch-free and computed once before the
  // layers, runs on TBB (arena_).
  template <typename F>
  void ForRows(std::uint64_t n, std::uint64_t grain, F&& f) {
    at::parallel_for(0, static_cast<std::int64_t>(n), static_cast<std::int64_t>(grain),
                     [&](std::int64_t b, std::int64_t e) {
                       f(RowRange{static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(e)});
                     });
  }
  // Runs f(lo, hi) for each slice [lo, hi) of kSliceRows rows of [0, n) (the last one
  // shorter), slices spread over the same team: the unit every CPU product works on.
  template <typename F>
  void ForSlices(std::uint64_t n, F&& f) {
    const std::uint64_t slices = (n + kSliceRows - 1) / kSliceRows;
    ForRows(slices, 1, [&](const RowRange& r) {
      for (std::uint64_t j = r.lo; j < r.hi; ++j) {
        f(j * kSliceRows, std::min(n, (j + 1) * kSliceRows));
      }
    });
  }

  const InferOptions& opt_;
  InferReport report_;
  std::unique_ptr<storage::Store> store_;
  ModelSource model_;
  InputColumns cols_;
  std::uint64_t N_ = 0;
  std::uint32_t K_ = 0, m_ = 0, d_ = 0, Tu_ = 0;
  train::Pooling pooling_ = train::Pooling::kImportance;
  // Importance and mean pooling are linear in p, so W_pool (sum_v a_uv p_v) equals
  // sum_v a_uv (W_pool p_v): stage (a) applies W_pool once per node, and (b) gathers rows of
  // width d instead of m, halving the bytes of the memory-bound gather when d = m / 2.
  bool linear_pool_ = false;
  std::uint64_t cache_bytes_ = 0, work_bytes_ = 0, block_cap_ = 0, seg_rows_ = 0;
  // Of work_bytes_: what the store's column writer buffers for one segment (its pending rows
  // and their encoded copy), and what is left for the blocks of a stage.
  std::uint64_t writer_bytes_ = 0, block_bytes_ = 0;
  State state_;
  std::string fingerprint_;
  int threads_ = 1;
  int blas_threads_before_ = 0;  // OpenBLAS's thread count before Setup (0: not OpenBLAS)
  std::unique_ptr<tbb::task_arena> arena_;
  at::Device device_{at::kCPU};
  std::vector<LayerWeights> layers_;
  at::Tensor G1t_, g_, G2t_;
  std::vector<float> scale_w_;  // magnitude: scale.W then scale.b (empty when off)
  std::vector<float> scratch_;
  // The blocks of the ordered stages and of the head (ScratchArena says why).
  ScratchArena arena_mem_;
  SegmentedColumn prev_h_;  // h^(k-1) for k > 1, opened per stage
  // Locality order (when ordered_): the order, the neighbour lists by position naming
  // positions (positions x Tu_) and their weights, the valid entries among them, and per
  // layer the rows of every node by position: W_pool p (orows_) and W_self h + w (oself_;
  // the head reuses it for the embeddings).
  bool ordered_ = false;
  std::string layout_ = kItemOrder;
  LayoutSource source_ = LayoutSource::kComputed;
  walker::LocalityOrder lo_;
  // They live in one allocation (OrderedMemory): the first region holds the lists in item
  // order while an order is computed and then orows_ / oself_, the second the lists by
  // position unless the walk's layout is read in place. Fresh pages cost a fault each (~0.5 s
  // per GiB on the VMs measured), so no byte is touched fresh twice. Plain pages: THP made
  // pooling faster but first touch of the 512 MB at 1M items 0.6-0.9 s slower on this
  // session's VM (direct compaction; docs/BENCHMARKS.md). Not zeroed: every element is
  // written before it is read.
  std::unique_ptr<std::byte[]> omem_;
  // The lists by position, naming positions, in pieces of piece_rows_ rows: the layout
  // column's chunks in LMDB's map, or one piece in omem_.
  std::vector<const NodeId*> piece_nbrs_;
  std::vector<const float*> piece_wts_;
  std::uint64_t piece_rows_ = 0;
  float* orows_ = nullptr;
  float* oself_ = nullptr;
  std::uint64_t onnz_ = 0;
  std::uint64_t oblock_ = 0, oout_rows_ = 0;  // rows per GEMM block and per output append
  // Ordered runs: the store writes (segments, embeddings), in order, behind the computation;
  // rows [0, rows_written_) of oself_ are written for the layer being pooled. Declared last:
  // destroyed (waited for) first.
  std::atomic<std::uint64_t> rows_written_{0};
  std::unique_ptr<SerialJobs> writes_;
};

// The two regions of an ordered run's allocation, in bytes (64-byte multiples): the rows of
// (a) and the self terms, and the lists by position (none when they stay in the map). A
// computed order first holds the lists in item order in the rows region.
struct OrderedMemory {
  std::uint64_t rows, lists;
  OrderedMemory(std::uint64_t n, std::uint32_t T, std::uint32_t d, LayoutSource source) {
    auto up = [](std::uint64_t b) { return (b + 63) & ~std::uint64_t{63}; };
    lists = source == LayoutSource::kStoredMapped ? 0 : up(n * T * 4) * 2;
    rows = up(n * d * 4) * 2;
    if (source == LayoutSource::kComputed) rows = std::max(rows, lists);
  }
};

void Runner::Linear(const at::Tensor& wt, const at::Tensor& bias, const float* a,
                    std::int64_t rows, float* out, bool relu) {
  if (device_.is_cpu()) {
    const DenseWeights w = Dense(wt, bias);
    ForSlices(static_cast<std::uint64_t>(rows), [&](std::uint64_t lo, std::uint64_t hi) {
      SliceProduct(w, a + lo * w.in, hi - lo, out + lo * w.out, relu);
    });
    return;
  }
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor A = at::from_blob(const_cast<float*>(a), {rows, wt.size(0)}, f32);
  at::Tensor O = at::from_blob(out, {rows, wt.size(1)}, f32);
  at::Tensor Ad = A.to(device_);
  at::Tensor r = bias.defined() ? at::addmm(bias, Ad, wt) : at::mm(Ad, wt);
  if (relu) r.relu_();
  O.copy_(r.to(at::kCPU));
}

Status Runner::ReadH(std::uint32_t kprev, std::uint64_t first, std::uint64_t n, float* out) {
  if (kprev == 0) {
    return ReadInputRows(cols_, model_, first, n, std::span<float>(out, n * model_.in_dim),
                         &scratch_);
  }
  return prev_h_.Read(first, n, out);
}

void Runner::Progress(const std::string& stage, std::uint32_t layer, std::uint64_t done,
                      std::uint64_t start_done, Clock::time_point t0, bool finished) {
  if (!opt_.on_progress) return;
  StageProgress p;
  p.stage = stage;
  p.layer = layer;
  p.rows_done = done;
  p.rows_total = N_;
  p.seconds = Since(t0);
  p.rows_per_second = p.seconds > 0 ? static_cast<double>(done - start_done) / p.seconds : 0;
  p.eta_seconds = p.rows_per_second > 0 ? static_cast<double>(N_ - done) / p.rows_per_second : 0;
  p.finished = finished;
  opt_.on_progress(p);
}

Status Runner::Setup() {
  if (opt_.store_dir.empty()) return Status::InvalidArgument("no store directory given");
  if (opt_.memory_budget < (4ull << 20)) {
    return Status::InvalidArgument("memory budget below 4 MiB");
  }
  // The chunk cache takes a slice of the budget; the rest is the working set.
  cache_bytes_ = std::clamp<std::uint64_t>(opt_.memory_budget / 8, 1ull << 20, 256ull << 20);
  work_bytes_ = opt_.memory_budget - cache_bytes_;
  storage::StoreOptions so;
  so.memory_budget = cache_bytes_;
  PGRAPH_ASSIGN_OR_RETURN(store_, storage::Store::Open(opt_.store_dir, so));
  PGRAPH_ASSIGN_OR_RETURN(std::string dev, train::ResolveDevice(opt_.device));
  device_ = at::Device(dev);
  report_.device = dev;
  threads_ = opt_.threads > 0 ? opt_.threads
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads_);
  // CPU products run in slices of rows on torch's OpenMP team (Linear), one single-threaded
  // BLAS call per slice: OpenBLAS's own pool beside that team spins on the same cores
  // between products (stage (a) of a 1M-item layer: 0.87 s -> 0.47 s without it). Restored
  // when the run ends.
  if (device_.is_cpu()) blas_threads_before_ = storage::SetBlasThreads(1);
  arena_ = std::make_unique<tbb::task_arena>(threads_);

  PGRAPH_ASSIGN_OR_RETURN(model_, LoadModelSource(*store_, opt_.model_store));
  PGRAPH_ASSIGN_OR_RETURN(cols_, OpenInputColumns(*store_, model_));
  N_ = cols_.items;
  if (N_ == 0) return Status::InvalidArgument("store '" + opt_.store_dir + "' has no items");
  if (N_ != store_->num_items()) {
    return Status::InvalidArgument("walk.neighbors has " + std::to_string(N_) +
                                   " rows, the store " + std::to_string(store_->num_items()) +
                                   " items (run `pgraph walk` again)");
  }
  K_ = model_.config.layers;
  m_ = model_.config.hidden;
  d_ = model_.config.dim;
  Tu_ = model_.neighbors == 0 ? cols_.width : model_.neighbors;
  pooling_ = model_.config.pooling;
  linear_pool_ = pooling_ != train::Pooling::kMax && d_ <= m_;
  report_.items = N_;
  report_.dim = d_;
  report_.layers = K_;
  report_.new_items = model_.new_items;

  torch::NoGradGuard no_grad;
  for (auto& conv : model_.model->convs) {
    LayerWeights lw;
    lw.Qt = conv->Q->weight.detach().t().contiguous().to(device_);
    lw.q = conv->Q->bias.detach().to(device_);
    lw.Wt = conv->W->weight.detach().t().contiguous().to(device_);
    lw.w = conv->W->bias.detach().to(device_);
    const std::int64_t in = lw.Wt.size(0) - lw.Qt.size(1);
    lw.WselfT = lw.Wt.narrow(0, 0, in).contiguous();
    lw.WpoolT = lw.Wt.narrow(0, in, lw.Qt.size(1)).contiguous();
    layers_.push_back(lw);
  }
  G1t_ = model_.model->G1->weight.detach().t().contiguous().to(device_);
  g_ = model_.model->G1->bias.detach().to(device_);
  G2t_ = model_.model->G2->weight.detach().t().contiguous().to(device_);
  if (model_.model->scale) {
    at::Tensor w = model_.model->scale->weight.detach().to(at::kCPU).contiguous();
    scale_w_.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    scale_w_.push_back(model_.model->scale->bias.detach().to(at::kCPU).item<float>());
  }

  block_cap_ = opt_.block_rows > 0 ? opt_.block_rows : kDefaultBlockRows;
  auto version = [](const storage::Column* c) { return c ? c->info().version : 0; };
  fingerprint_ = model_.fingerprint + " items=" + std::to_string(N_) +
                 " features=" + std::to_string(version(cols_.features)) +
                 " walk=" + std::to_string(version(cols_.neighbors)) + "," +
                 std::to_string(version(cols_.weights));
  // The shapes of every product (per block of rows).
  for (std::uint32_t k = 1; k <= K_; ++k) {
    report_.gemm_m.push_back(std::min(block_cap_, N_));
    report_.gemm_k.push_back(InDim(k));
    report_.gemm_n.push_back(m_);
    if (linear_pool_) {
      report_.gemm_m.push_back(std::min(block_cap_, N_));
      report_.gemm_k.push_back(m_);
      report_.gemm_n.push_back(d_);
    }
    report_.gemm_m.push_back(std::min(block_cap_, N_));
    report_.gemm_k.push_back(linear_pool_ ? InDim(k) : InDim(k) + m_);
    report_.gemm_n.push_back(d_);
  }
  for (int i = 0; i < 2; ++i) {
    report_.gemm_m.push_back(std::min(block_cap_, N_));
    report_.gemm_k.push_back(d_);
    report_.gemm_n.push_back(d_);
  }
  return Status::OK();
}

Status Runner::PlanAndResume() {
  // Segments are what the column writer buffers: a quarter of the working budget by default.
  const std::uint64_t out_row = 2ull * sizeof(float) * std::max(m_, d_);
  seg_rows_ = opt_.segment_rows > 0
                  ? opt_.segment_rows
                  : std::clamp<std::uint64_t>(work_bytes_ / 4 / out_row, 256, kDefaultSegmentRows);
  State old;
  bool have_old = false;
  if (auto meta = store_->GetMeta(kStateKey); meta.ok() && !meta.value().empty()) {
    have_old = ParseState(meta.value(), &old);
  }
  const bool resumable =
      opt_.resume && have_old && old.fingerprint == fingerprint_ && old.stage <= 2 * K_ + 1 &&
      (old.stage <= 2 * K_ || store_->HasColumn(storage::columns::kEmbedding));
  if (resumable) seg_rows_ = old.segment_rows;
  PGRAPH_RETURN_IF_ERROR(PlanBlocks());
  // A run resumed in item order stays in item order: its segments hold rows in that order.
  const bool item_order_run = resumable && old.stage > 0 && old.layout == kItemOrder;
  PGRAPH_RETURN_IF_ERROR(DecideLayout(!item_order_run));
  if (item_order_run && report_.layout_note.empty()) report_.layout_note = "resumed in item order";
  if (resumable && (old.layout == layout_ || old.stage == 0 || old.stage == 2 * K_ + 1)) {
    state_ = old;
    state_.layout = layout_;
    report_.resumed = true;
    report_.resumed_from = "stage " + StageName(old.stage) + ", " +
                           std::to_string(old.segments) + " segments";
    return Status::OK();
  }
  if (resumable) {
    report_.resumed_from = "rows of another order (memory budget changed?); started over";
  } else if (opt_.resume && have_old && old.fingerprint != fingerprint_) {
    report_.resumed_from = "state of another model or data; started over";
  }
  // A fresh run: remove what earlier runs left.
  state_ = State{fingerprint_, 0, 0, seg_rows_, layout_};
  std::vector<std::string> stale;
  for (const auto& c : store_->ListColumns()) {
    if (c.name.rfind(kPrefix, 0) == 0) stale.push_back(c.name);
  }
  PGRAPH_ASSIGN_OR_RETURN(auto update, store_->BeginUpdate());
  for (const auto& name : stale) update->DropColumn(name);
  update->SetMeta(kStateKey, FormatState(state_));
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  return Status::OK();
}

Status Runner::PlanBlocks() {
  const std::uint64_t out_row = 2ull * sizeof(float) * std::max(m_, d_);
  writer_bytes_ = std::min(std::min(seg_rows_, N_) * out_row, 2 * kStoreWriteBatch);
  block_bytes_ = writer_bytes_ <= work_bytes_ / 2 ? work_bytes_ - writer_bytes_ : work_bytes_ / 2;
  return Status::OK();
}

Status Runner::RunSegments(std::uint32_t stage, std::uint32_t width, const FillFn& fill,
                           const std::vector<std::string>& drop_at_end, SerialJobs* jobs) {
  const std::string name = StageName(stage);
  const std::uint64_t nseg = (N_ + seg_rows_ - 1) / seg_rows_;
  const std::uint64_t j0 = state_.stage == stage ? state_.segments : 0;
  auto run = [jobs](std::function<Status()> job) { return RunOrQueue(jobs, std::move(job)); };
  for (std::uint64_t j = j0; j < nseg; ++j) {
    const std::uint64_t first = j * seg_rows_, n = std::min(seg_rows_, N_ - first);
    auto seg = std::make_shared<QueuedColumn>();
    storage::ColumnSpec spec;
    spec.name = SegmentName(name, j);
    spec.dtype = storage::DType::kF32;
    spec.width = width;
    spec.codec = static_cast<int>(storage::Codec::kNone);  // floats barely compress
    PGRAPH_RETURN_IF_ERROR(run(BeginColumnJob(store_.get(), seg, spec)));
    PGRAPH_RETURN_IF_ERROR(fill(first, n, [&](const float* rows, std::uint64_t count) {
      return run([seg, rows, count, width] {
        return seg->writer->AppendValues<float>(std::span(rows, count * width));
      });
    }));
    PGRAPH_RETURN_IF_ERROR(run([this, seg, name, j, nseg, stage, drop_at_end]() -> Status {
      PGRAPH_RETURN_IF_ERROR(Stop("segment:" + name + ":" + std::to_string(j)));
      State next = state_;
      if (j + 1 == nseg) {
        next.stage = stage + 1;
        next.segments = 0;
        if (!opt_.keep_intermediates) {
          for (const auto& d : drop_at_end) seg->update->DropColumn(d);
        }
      } else {
        next.stage = stage;
        next.segments = j + 1;
      }
      seg->update->SetMeta(kStateKey, FormatState(next));
      PGRAPH_RETURN_IF_ERROR(seg->update->Publish());
      seg->update.reset();
      state_ = next;
      return Stop("published:" + name + ":" + std::to_string(j));
    }));
  }
  return jobs ? jobs->status() : Status::OK();
}

Status Runner::RunProject(std::uint32_t k) {
  const std::uint32_t stage = 2 * (k - 1);
  const std::uint32_t in = InDim(k);
  if (k > 1) PGRAPH_RETURN_IF_ERROR(prev_h_.Open(*store_, "h" + std::to_string(k - 1), N_, seg_rows_, d_));
  const std::uint32_t pw = PooledWidth();
  // Working set per row: h (in), p (m), W_pool p (pw, when linear), the feature scratch (in).
  const std::uint64_t row_bytes = (2ull * in + m_ + (linear_pool_ ? pw : 0)) * sizeof(float);
  const std::uint64_t B = std::min({block_cap_, block_bytes_ / row_bytes, N_});
  if (B < std::min<std::uint64_t>(kMinBlockRows, N_)) {
    return Status::ResourceExhausted("memory budget too small for a block of layer " +
                                     std::to_string(k) + " projections");
  }
  report_.peak_working_bytes =
      std::max(report_.peak_working_bytes, B * row_bytes + writer_bytes_);
  std::vector<float> hbuf(B * in), pbuf(B * m_), rbuf(linear_pool_ ? B * pw : 0);
  const double flops_per_row = ProjectFlopsPerRow(k);
  const std::string label = "project " + std::to_string(k) + "/" + std::to_string(K_);
  const auto t0 = Clock::now();
  const std::uint64_t start_done = state_.stage == stage ? state_.segments * seg_rows_ : 0;
  std::uint64_t done = start_done;
  PGRAPH_RETURN_IF_ERROR(RunSegments(
      stage, pw,
      [&](std::uint64_t first, std::uint64_t n, const AppendFn& append) -> Status {
        for (std::uint64_t b = first; b < first + n; b += B) {
          PGRAPH_RETURN_IF_ERROR(CheckCancel());
          const std::uint64_t nb = std::min(B, first + n - b);
          PGRAPH_RETURN_IF_ERROR(ReadH(k - 1, b, nb, hbuf.data()));
          std::vector<float>& out = linear_pool_ ? rbuf : pbuf;
          ProjectRows(k, hbuf.data(), static_cast<std::int64_t>(nb), pbuf.data(), out.data());
          PGRAPH_RETURN_IF_ERROR(append(out.data(), nb));
          done += nb;
          report_.flops += flops_per_row * nb;
          Progress(label, k, done, start_done, t0, false);
        }
        return Status::OK();
      },
      {}));
  Progress(label, k, N_, start_done, t0, true);
  if (report_.per_layer.empty() || report_.per_layer.back().layer != k) {
    report_.per_layer.push_back(LayerReport{});
    report_.per_layer.back().layer = k;
  }
  report_.per_layer.back().project_seconds = Since(t0);
  report_.per_layer.back().flops += flops_per_row * (N_ - start_done);
  return Status::OK();
}

std::uint64_t Runner::PoolRowBytes(std::uint32_t k) const {
  // Per item row: neighbour ids and weights (read width and used width), the h scratch, the
  // pooled rows (behind a copy of h for max pooling's concat), the output and the mean count.
  const std::uint64_t concat = (linear_pool_ ? 0 : InDim(k)) + PooledWidth();
  return 8ull * (cols_.width + Tu_) + 4ull * (InDim(k) + concat + d_ + 1);
}

Result<Runner::PoolPlan> Runner::PlanPool(std::uint32_t k) const {
  const std::uint64_t row_bytes = PoolRowBytes(k);
  const std::uint64_t p_row = 4ull * PooledWidth();
  const std::uint64_t p_all = N_ * p_row;
  // In memory, stage (a) also needs a block of p (m wide) while it computes the rows.
  const std::uint64_t mem_row = row_bytes + 4ull * m_;
  PoolPlan plan;
  if (opt_.partition_rows == 0 && p_all + std::min(N_, kMinBlockRows) * mem_row <= block_bytes_) {
    plan.B = std::min({block_cap_, (block_bytes_ - p_all) / mem_row, N_});
    // Prefer partitioning over blocks so small that per-block overheads dominate.
    plan.in_memory = plan.B >= std::min<std::uint64_t>(N_, 256);
  }
  if (plan.in_memory) {
    plan.R = N_;
  } else {
    plan.B = std::min({block_cap_, block_bytes_ / 2 / row_bytes, N_});
    plan.R = opt_.partition_rows > 0 ? opt_.partition_rows
                                     : (block_bytes_ - plan.B * row_bytes) / p_row;
    plan.R = std::min(plan.R, N_);
  }
  if (plan.B < std::min<std::uint64_t>(kMinBlockRows, N_) || plan.R == 0) {
    return Status::ResourceExhausted("memory budget too small to pool layer " + std::to_string(k));
  }
  return plan;
}

void Runner::ProjectRows(std::uint32_t k, const float* h, std::int64_t rows, float* p_scratch,
                         float* out, float* self) {
  const LayerWeights& lw = layers_[k - 1];
  if (!device_.is_cpu()) {
    if (linear_pool_) {
      Linear(lw.Qt, lw.q, h, rows, p_scratch, true);
      Linear(lw.WpoolT, at::Tensor(), p_scratch, rows, out, false);
    } else {
      Linear(lw.Qt, lw.q, h, rows, out, true);
    }
    if (self != nullptr) Linear(lw.WselfT, lw.w, h, rows, self, false);
    return;
  }
  const std::uint64_t in = InDim(k);
  ProjectSlices(
      k, static_cast<std::uint64_t>(rows),
      [&](std::uint64_t lo, std::uint64_t, float*) { return h + lo * in; }, out, self);
}

// Per-thread scratch of the fused CPU slices: an h slice and a p slice.
struct SliceScratch {
  std::vector<float> h, p;
};
SliceScratch& ThreadSliceScratch(std::uint64_t h_floats, std::uint64_t p_floats) {
  thread_local SliceScratch s;
  if (s.h.size() < h_floats) s.h.resize(h_floats);
  if (s.p.size() < p_floats) s.p.resize(p_floats);
  return s;
}

template <typename Load>
void Runner::ProjectSlices(std::uint32_t k, std::uint64_t rows, const Load& load, float* out,
                           float* self) {
  const LayerWeights& lw = layers_[k - 1];
  const std::uint64_t in = InDim(k), pw = PooledWidth();
  const DenseWeights q = Dense(lw.Qt, lw.q), wpool = Dense(lw.WpoolT, at::Tensor()),
                     wself = Dense(lw.WselfT, lw.w);
  ForSlices(rows, [&](std::uint64_t lo, std::uint64_t hi) {
    const std::uint64_t n = hi - lo;
    SliceScratch& scratch = ThreadSliceScratch(kSliceRows * in, kSliceRows * m_);
    const float* hs = load(lo, n, scratch.h.data());
    if (linear_pool_) {
      SliceProduct(q, hs, n, scratch.p.data(), true);
      SliceProduct(wpool, scratch.p.data(), n, out + lo * pw, false);
    } else {
      SliceProduct(q, hs, n, out + lo * pw, true);
    }
    if (self != nullptr) SliceProduct(wself, hs, n, self + lo * d_, false);
  });
}

double Runner::ProjectFlopsPerRow(std::uint32_t k) const {
  return 2.0 * InDim(k) * m_ + (linear_pool_ ? 2.0 * m_ * PooledWidth() : 0.0);
}

Status Runner::ProjectAll(std::uint32_t k, std::uint64_t B, float* hbuf, float* out) {
  const auto t0 = Clock::now();
  const std::uint32_t pw = PooledWidth();
  std::vector<float> pbuf(linear_pool_ ? B * m_ : 0);
  const std::string label = "project " + std::to_string(k) + "/" + std::to_string(K_);
  for (std::uint64_t b = 0; b < N_; b += B) {
    PGRAPH_RETURN_IF_ERROR(CheckCancel());
    Progress(label, k, b, 0, t0, false);
    const std::uint64_t nb = std::min(B, N_ - b);
    PGRAPH_RETURN_IF_ERROR(ReadH(k - 1, b, nb, hbuf));
    ProjectRows(k, hbuf, static_cast<std::int64_t>(nb), pbuf.data(), out + b * pw);
  }
  Progress(label, k, N_, 0, t0, true);
  const double flops = N_ * ProjectFlopsPerRow(k);
  report_.flops += flops;
  LayerReport& lr = report_.per_layer.back();
  lr.project_seconds += Since(t0);
  lr.flops += flops;
  return Status::OK();
}

bool Runner::HasProjections(std::uint32_t k) const {
  for (const auto& name : SegmentNames("p" + std::to_string(k))) {
    if (!store_->HasColumn(name)) return false;
  }
  return true;
}

Status Runner::RestartLayer(std::uint32_t k) {
  PGRAPH_ASSIGN_OR_RETURN(auto update, store_->BeginUpdate());
  for (const auto& name : SegmentNames("h" + std::to_string(k))) update->DropColumn(name);
  State next{fingerprint_, 2 * (k - 1), 0, seg_rows_};
  update->SetMeta(kStateKey, FormatState(next));
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  state_ = next;
  return Status::OK();
}

Status Runner::RunPool(std::uint32_t k, const PoolPlan& plan) {
  const std::uint32_t stage = 2 * (k - 1) + 1;
  const std::uint32_t pw = PooledWidth();
  // Max pooling fills W's input [h | pooled] (cw wide, pooled at column `off`); linear
  // pooling only the pooled rows, which are added to W_self h.
  const std::uint32_t in = InDim(k), off = linear_pool_ ? 0 : in, cw = off + pw;
  if (k > 1) PGRAPH_RETURN_IF_ERROR(prev_h_.Open(*store_, "h" + std::to_string(k - 1), N_, seg_rows_, d_));
  const std::uint64_t B = plan.B, R = plan.R;
  const bool in_memory = plan.in_memory;
  const std::uint64_t row_bytes = PoolRowBytes(k), p_row = 4ull * pw;
  SegmentedColumn proj;
  if (!in_memory) {
    PGRAPH_RETURN_IF_ERROR(proj.Open(*store_, "p" + std::to_string(k), N_, seg_rows_, pw));
  }
  const std::uint64_t ranges = (N_ + R - 1) / R;
  report_.peak_working_bytes =
      std::max(report_.peak_working_bytes, B * row_bytes + R * p_row + writer_bytes_ +
                                               (in_memory ? B * m_ * sizeof(float) : 0));

  std::vector<float> pbuf;
  storage::ResizeHuge(&pbuf, R * pw);  // gathered at random: TLB misses cost more than the reads
  std::vector<NodeId> nbrs;
  std::vector<float> wts;
  std::vector<float> hbuf(B * in), cbuf(B * cw), zbuf(B * d_), cnt(B);
  if (report_.per_layer.empty() || report_.per_layer.back().layer != k) {
    report_.per_layer.push_back(LayerReport{});
    report_.per_layer.back().layer = k;
  }
  if (in_memory) PGRAPH_RETURN_IF_ERROR(ProjectAll(k, B, hbuf.data(), pbuf.data()));
  std::vector<char> touched(ranges);
  const LayerWeights& lw = layers_[k - 1];
  const std::string label = "pool " + std::to_string(k) + "/" + std::to_string(K_);
  const auto t0 = Clock::now();
  const std::uint64_t start_done = state_.stage == stage ? state_.segments * seg_rows_ : 0;
  std::uint64_t done = start_done;
  double pool_flops = 0;

  const std::vector<std::string> drops = PooledDrops(k);
  const std::uint32_t Tu = Tu_;
  const train::Pooling pooling = pooling_;
  const bool add_pooled = linear_pool_;  // z = ReLU(W_self h + w + pooled), no concat
  PGRAPH_RETURN_IF_ERROR(RunSegments(
      stage, d_,
      [&](std::uint64_t first, std::uint64_t n, const AppendFn& append) -> Status {
        for (std::uint64_t b = first; b < first + n; b += B) {
          PGRAPH_RETURN_IF_ERROR(CheckCancel());
          const std::uint64_t nb = std::min(B, first + n - b);
          // The two reads are independent copies out of the store: one on each thread.
          Status read_n, read_h;
          arena_->execute([&] {
            tbb::parallel_invoke(
                [&] { read_n = ReadNeighborRows(cols_, model_, b, nb, &nbrs, &wts); },
                [&] { read_h = ReadH(k - 1, b, nb, hbuf.data()); });
          });
          PGRAPH_RETURN_IF_ERROR(read_n);
          PGRAPH_RETURN_IF_ERROR(read_h);
          std::uint64_t nnz = 0;
          std::fill(touched.begin(), touched.end(), 0);
          if (in_memory) {  // one range; the count only feeds the FLOP report
            nnz = nb * Tu - static_cast<std::uint64_t>(std::count(
                                nbrs.begin(), nbrs.begin() + nb * Tu, kInvalidNode));
            touched[0] = 1;
          } else {
            for (std::uint64_t i = 0; i < nb * Tu; ++i) {
              if (nbrs[i] == kInvalidNode) continue;
              ++nnz;
              touched[nbrs[i] / R] = 1;
            }
          }
          ForRows(nb, 256, [&](const RowRange& r) {
            for (std::uint64_t u = r.begin(); u < r.end(); ++u) {
              float* row = cbuf.data() + u * cw;
              std::memcpy(row, hbuf.data() + u * in, off * sizeof(float));
              std::fill(row + off, row + cw, 0.0f);
              cnt[u] = 0;
            }
          });
          for (std::uint64_t rg = 0; rg < ranges; ++rg) {
            if (!touched[rg]) continue;
            const std::uint64_t lo = rg * R, hi = std::min(N_, lo + R);
            if (!in_memory) PGRAPH_RETURN_IF_ERROR(proj.Read(lo, hi - lo, pbuf.data()));
            PoolInputs pin;
            pin.neighbors = nbrs.data();
            pin.weights = wts.data();
            pin.T = Tu;
            pin.p = pbuf.data();
            pin.lo = static_cast<NodeId>(lo);
            pin.hi = static_cast<NodeId>(hi);
            pin.m = pw;
            ForRows(nb, 64, [&](const RowRange& r) {
              PoolNeighbors(pin, pooling, r.begin(), r.end(), cbuf.data() + off, cw,
                            cnt.data());
            });
          }
          if (pooling == train::Pooling::kMean) {
            for (std::uint64_t u = 0; u < nb; ++u) {
              if (cnt[u] > 0) {
                float* acc = cbuf.data() + u * cw + off;
                for (std::uint32_t i = 0; i < pw; ++i) acc[i] /= cnt[u];
              }
            }
          }
          const std::uint32_t d = d_;
          if (linear_pool_) {
            Linear(lw.WselfT, lw.w, hbuf.data(), static_cast<std::int64_t>(nb), zbuf.data(), false);
          } else {
            Linear(lw.Wt, lw.w, cbuf.data(), static_cast<std::int64_t>(nb), zbuf.data(), true);
          }
          ForRows(nb, 256, [&](const RowRange& r) {
            for (std::uint64_t u = r.begin(); u < r.end(); ++u) {
              float* z = zbuf.data() + u * d;
              if (add_pooled) {  // z = normalise(ReLU(W_self h + w + pooled W_pool p))
                ActivateRow(z, cbuf.data() + u * cw + off, z, d);  // as the ordered kernel
              } else {  // max pooling: W's ReLU is done
                NormalizeRows(z, 1, d);
              }
            }
          });
          PGRAPH_RETURN_IF_ERROR(append(zbuf.data(), nb));
          done += nb;
          const double f = 2.0 * nnz * pw + 2.0 * nb * (linear_pool_ ? in : cw) * d_;
          pool_flops += f;
          report_.flops += f;
          Progress(label, k, done, start_done, t0, false);
        }
        return Status::OK();
      },
      drops));
  Progress(label, k, N_, start_done, t0, true);
  if (report_.per_layer.empty() || report_.per_layer.back().layer != k) {
    report_.per_layer.push_back(LayerReport{});
    report_.per_layer.back().layer = k;
  }
  LayerReport& lr = report_.per_layer.back();
  lr.pool_seconds = Since(t0);
  lr.partitions = in_memory ? 1 : ranges;
  lr.range_rows = R;
  lr.block_rows = B;
  lr.flops += pool_flops;
  return Status::OK();
}

std::uint64_t Runner::OrderedBytes(std::uint64_t B, std::uint64_t out_rows) const {
  const std::uint64_t d = d_, f = sizeof(float);
  std::uint32_t max_in = 0;
  for (std::uint32_t k = 1; k <= K_; ++k) max_in = std::max(max_in, InDim(k));
  // Held throughout: the two regions (neighbour lists; rows of (a) and self terms), order
  // and positions.
  const OrderedMemory mem(N_, Tu_, d_, source_);
  const std::uint64_t held = mem.rows + mem.lists + N_ * 2 * sizeof(NodeId);
  // Ordering (a block of neighbour rows as read), then the layers and the head, whose blocks
  // come out of one arena that keeps the largest of them: (a) h, the input scratch, p and the
  // two outputs of a block; (b) a block of outputs; the head three blocks, then the output
  // rows. Beside the arena, a segment writer in (b) or the embedding writer in the head.
  const std::uint64_t order = source_ == LayoutSource::kComputed
                                 ? walker::LocalityOrderScratchBytes(N_) + B * cols_.width * 8
                                 : 0;
  const std::uint64_t project = B * (2ull * max_in + m_ + 2 * d) * f;
  const std::uint64_t pool = out_rows * d * f;
  const std::uint64_t head = std::max(B * 3, out_rows) * d * f;
  const std::uint64_t writer =
      std::max(writer_bytes_, 2 * std::min(N_ * d * f, kStoreWriteBatch));
  return held + std::max(order, std::max({project, pool, head}) + writer);
}

Status Runner::DecideLayout(bool allow_order) {
  ordered_ = false;
  layout_ = kItemOrder;
  if (!allow_order) return Status::OK();
  if (opt_.locality == LocalityMode::kOff) {
    report_.layout_note = "--locality-order off";
    return Status::OK();
  }
  if (!linear_pool_) {
    report_.layout_note = "max pooling";
    return Status::OK();
  }
  if (opt_.locality == LocalityMode::kAuto &&
      N_ * PooledWidth() * sizeof(float) <= kLocalityMinRowBytes) {
    report_.layout_note = "the rows of a layer fit the caches";
    return Status::OK();
  }
  if (opt_.partition_rows > 0) {
    report_.layout_note = "partitioning forced";
    return Status::OK();
  }
  // A layout the walk wrote for these lists is read instead of computed (walker.h): in place
  // from LMDB's map when the model uses whole lists; copied (and cut to the model's T)
  // otherwise.
  source_ = LayoutSource::kComputed;
  if (opt_.stored_layout && walker::HasCurrentLayout(*store_)) {
    source_ = store_->backend() == storage::Backend::kLmdb && Tu_ == cols_.width
                  ? LayoutSource::kStoredMapped
                  : LayoutSource::kStoredCopied;
  }
  // Blocks as large as allowed, appends of a whole write batch of the store (so the column
  // writer encodes straight from our buffer instead of staging a copy); smaller when the
  // budget says so.
  std::uint64_t block = std::min(block_cap_, N_);
  std::uint64_t out_rows =
      std::max(block, std::min<std::uint64_t>({seg_rows_, N_, kStoreWriteBatch / (4ull * d_)}));
  const std::uint64_t min_block = std::min<std::uint64_t>(N_, 1024);
  while (OrderedBytes(block, out_rows) > block_bytes_ && (out_rows > block || block > min_block)) {
    if (out_rows > block) {
      out_rows = block;
    } else {
      block = std::max(min_block, block / 2);
      out_rows = block;
    }
  }
  if (OrderedBytes(block, out_rows) > block_bytes_) {
    report_.layout_note = "it needs " + std::to_string(OrderedBytes(block, out_rows) >> 20) +
                          " MiB of working memory (more --memory-budget)";
    return Status::OK();
  }
  oblock_ = block;
  oout_rows_ = out_rows;
  const auto t0 = Clock::now();
  const OrderedMemory mem(N_, Tu_, d_, source_);
  omem_ = std::make_unique_for_overwrite<std::byte[]>(mem.rows + mem.lists);
  if (source_ == LayoutSource::kComputed) {
    PGRAPH_RETURN_IF_ERROR(ComputeLayout(t0));
  } else {
    PGRAPH_RETURN_IF_ERROR(ReadStoredLayout());
  }
  if (opt_.locality == LocalityMode::kAuto && report_.locality_share < kLocalityMinShare) {
    // Neighbourhoods without clusters (random graphs): the order would not pay for itself.
    char buf[96];
    std::snprintf(buf, sizeof buf, "the neighbourhoods have no locality to exploit (%.0f%% near)",
                  100.0 * report_.locality_share);
    report_.layout_note = buf;
    omem_.reset();
    piece_nbrs_.clear();
    piece_wts_.clear();
    lo_ = walker::LocalityOrder{};
    report_.order_seconds = Since(t0);
    return Status::OK();
  }
  orows_ = reinterpret_cast<float*>(omem_.get());
  oself_ = reinterpret_cast<float*>(omem_.get() + mem.rows / 2);
  // Names the order in the state, so a resume never mixes rows of two orders.
  std::uint64_t h = 1469598103934665603ull;
  for (NodeId x : lo_.order) h = (h ^ x) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  layout_ = std::string("locality:") + buf;
  ordered_ = true;
  report_.locality_order = true;
  report_.layout_source = source_ == LayoutSource::kComputed ? "computed" : "stored";
  report_.order_seconds = Since(t0);
  Progress("order", 0, N_, 0, t0, true);
  report_.peak_working_bytes =
      std::max(report_.peak_working_bytes, OrderedBytes(oblock_, oout_rows_));
  return Status::OK();
}

Status Runner::ComputeLayout(Clock::time_point t0) {
  const OrderedMemory mem(N_, Tu_, d_, source_);
  // The lists in item order, in the rows region for now.
  NodeId* item_nbrs = reinterpret_cast<NodeId*>(omem_.get());
  float* item_wts = reinterpret_cast<float*>(omem_.get() + mem.lists / 2);
  {
    // Block by block; within a block, pieces of whole chunks of the neighbour column on the
    // TBB threads: the lists are usually zstd chunks, and decoding them is most of the read.
    const std::uint64_t B = oblock_;
    const std::uint64_t piece =
        std::max<std::uint64_t>(1, cols_.neighbors->info().rows_per_chunk);
    for (std::uint64_t b = 0; b < N_; b += B) {
      PGRAPH_RETURN_IF_ERROR(CheckCancel());
      Progress("order", 0, b, 0, t0, false);  // reading the lists is most of the stage
      const std::uint64_t n = std::min(B, N_ - b);
      const std::uint64_t pieces = (n + piece - 1) / piece;
      std::vector<Status> errors(pieces);
      arena_->execute([&] {
        tbb::parallel_for(std::uint64_t{0}, pieces, [&](std::uint64_t j) {
          const std::uint64_t lo = b + j * piece, m = std::min(piece, b + n - lo);
          NodeId* ids = item_nbrs + lo * Tu_;
          float* wts = item_wts + lo * Tu_;
          Status st;
          if (Tu_ == cols_.width) {  // the model uses whole lists: straight into place
            st = cols_.neighbors->ReadRows(lo, m,
                                           std::as_writable_bytes(std::span(ids, m * Tu_)));
            if (st.ok()) st = cols_.weights->ReadRowsAsFloat(lo, m, std::span(wts, m * Tu_));
            if (st.ok()) st = CheckNeighborIds(std::span(ids, m * Tu_), N_);
          } else {
            std::vector<NodeId> nb;
            std::vector<float> wt;
            st = ReadNeighborRows(cols_, model_, lo, m, &nb, &wt);
            if (st.ok()) {
              std::memcpy(ids, nb.data(), m * Tu_ * sizeof(NodeId));
              std::memcpy(wts, wt.data(), m * Tu_ * sizeof(float));
            }
          }
          errors[j] = std::move(st);
        });
      });
      for (const Status& st : errors) PGRAPH_RETURN_IF_ERROR(st);
    }
  }
  arena_->execute([&] { lo_ = walker::ComputeLocalityOrder(item_nbrs, item_wts, N_, Tu_); });
  report_.locality_share =
      walker::LocalityShare(lo_, item_nbrs, N_, Tu_, 4096, std::max<std::uint64_t>(1, N_ / 65536));
  if (opt_.locality == LocalityMode::kAuto && report_.locality_share < kLocalityMinShare) {
    return Status::OK();  // DecideLayout keeps item order
  }
  // The lists by position, naming positions, into the lists region.
  NodeId* const onbrs = reinterpret_cast<NodeId*>(omem_.get() + mem.rows);
  float* const owts = reinterpret_cast<float*>(omem_.get() + mem.rows + mem.lists / 2);
  std::atomic<std::uint64_t> nnz{0};
  ForRows(N_, 4096, [&](const RowRange& r) {
    std::uint64_t valid = 0;
    for (std::uint64_t i = r.begin(); i < r.end(); ++i) {
      if (i + 8 < r.end()) {  // the lists are read in a random order: ask for them early
        const std::uint64_t ahead = static_cast<std::uint64_t>(lo_.order[i + 8]) * Tu_;
        for (std::uint64_t off = 0; off < Tu_ * sizeof(NodeId); off += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(item_nbrs + ahead) + off);
          __builtin_prefetch(reinterpret_cast<const char*>(item_wts + ahead) + off);
        }
      }
      const std::uint64_t from = static_cast<std::uint64_t>(lo_.order[i]) * Tu_;
      for (std::uint32_t t = 0; t < Tu_; ++t) {
        const NodeId v = item_nbrs[from + t];
        onbrs[i * Tu_ + t] = v == kInvalidNode ? kInvalidNode : lo_.pos[v];
        valid += v != kInvalidNode;
      }
      std::memcpy(owts + i * Tu_, item_wts + from, Tu_ * sizeof(float));
    }
    nnz += valid;
  });
  onnz_ = nnz.load();
  piece_rows_ = N_;
  piece_nbrs_ = {onbrs};
  piece_wts_ = {owts};
  return Status::OK();
}

Status Runner::ReadStoredLayout() {
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* oc, store_->OpenColumn(walker::kLayoutOrder));
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* nc,
                          store_->OpenColumn(walker::kLayoutNeighbors));
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* wc, store_->OpenColumn(walker::kLayoutWeights));
  lo_.order.resize(N_);
  PGRAPH_RETURN_IF_ERROR(oc->ReadRows(0, N_, std::as_writable_bytes(std::span(lo_.order))));
  lo_.pos.assign(N_, kInvalidNode);
  for (std::uint64_t i = 0; i < N_; ++i) {
    const NodeId u = lo_.order[i];
    if (u >= N_ || lo_.pos[u] != kInvalidNode) {
      return Status::Corruption(std::string(walker::kLayoutOrder) + " in " + store_->dir() +
                                " is not a permutation of the items (position " +
                                std::to_string(i) + " names item " + std::to_string(u) + ")");
    }
    lo_.pos[u] = static_cast<NodeId>(i);
  }
  // Chunk by chunk on the TBB threads: each is checked (checksum, then the ids) once; in
  // LMDB's map it is then used in place.
  const std::uint64_t piece = nc->info().rows_per_chunk;
  const std::uint64_t pieces = nc->info().num_chunks();
  if (piece == 0 || wc->info().rows_per_chunk != piece) {
    return Status::Corruption("the layout columns of " + store_->dir() + " are chunked apart");
  }
  const bool mapped = source_ == LayoutSource::kStoredMapped;
  const OrderedMemory mem(N_, Tu_, d_, source_);
  NodeId* const copy_n = mapped ? nullptr : reinterpret_cast<NodeId*>(omem_.get() + mem.rows);
  float* const copy_w =
      mapped ? nullptr : reinterpret_cast<float*>(omem_.get() + mem.rows + mem.lists / 2);
  piece_rows_ = mapped ? piece : N_;
  piece_nbrs_.assign(mapped ? pieces : 1, copy_n);
  piece_wts_.assign(mapped ? pieces : 1, copy_w);
  std::vector<Status> errors(pieces);
  std::atomic<std::uint64_t> nnz{0}, near{0};
  arena_->execute([&] {
    tbb::parallel_for(std::uint64_t{0}, pieces, [&](std::uint64_t c) {
      auto nref = nc->ReadChunk(c);
      auto wref = nref.ok() ? wc->ReadChunk(c) : Result<storage::ChunkRef>(nref.status());
      if (!wref.ok()) {
        errors[c] = wref.status();
        return;
      }
      auto ids = nref->as<NodeId>();
      auto wts = wref->as<float>();
      const std::uint64_t first = c * piece, rows = std::min(piece, N_ - first);
      if (ids.size() != rows * cols_.width || wts.size() != rows * cols_.width) {
        errors[c] = Status::Corruption("layout chunk " + std::to_string(c) + " of " +
                                       store_->dir() + " has the wrong size");
        return;
      }
      if (Tu_ < cols_.width) {  // cut into place first: the checks below see what is used
        const std::span<NodeId> cut_n(copy_n + first * Tu_, rows * Tu_);
        const std::span<float> cut_w(copy_w + first * Tu_, rows * Tu_);
        errors[c] = TruncateLists(ids, wts, rows, cols_.width, Tu_, cut_n, cut_w);
        if (!errors[c].ok()) return;
        ids = cut_n;
        wts = cut_w;
      }
      std::uint64_t valid = 0, close = 0;
      for (std::uint64_t r = 0; r < rows; ++r) {
        for (std::uint32_t t = 0; t < Tu_; ++t) {
          const NodeId v = ids[r * Tu_ + t];
          if (v == kInvalidNode) continue;
          if (v >= N_) {
            errors[c] = Status::Corruption(std::string(walker::kLayoutNeighbors) + " in " +
                                           store_->dir() + " names position " +
                                           std::to_string(v) + " of " + std::to_string(N_));
            return;
          }
          ++valid;
          const std::uint64_t i = first + r;
          close += (v > i ? v - i : i - v) <= 4096;
        }
      }
      nnz += valid;
      near += close;
      if (mapped) {
        // Zero-copy chunks have no holder: their bytes live in the map as long as the store.
        // (HasCurrentLayout admits raw chunks only; a holder here would be a store bug.)
        if (nref->hold || wref->hold) {
          errors[c] = Status::Internal("layout chunk " + std::to_string(c) + " of " +
                                       store_->dir() + " is not in the memory map");
          return;
        }
        piece_nbrs_[c] = ids.data();
        piece_wts_[c] = wts.data();
      } else if (Tu_ == cols_.width) {
        std::memcpy(copy_n + first * Tu_, ids.data(), ids.size_bytes());
        std::memcpy(copy_w + first * Tu_, wts.data(), wts.size_bytes());
      }
    });
  });
  for (const Status& st : errors) PGRAPH_RETURN_IF_ERROR(st);
  onnz_ = nnz.load();
  report_.locality_share =
      onnz_ == 0 ? 1.0 : static_cast<double>(near.load()) / static_cast<double>(onnz_);
  return Status::OK();
}

void Runner::ReportOrderedProject(std::uint32_t k, const std::string& label,
                                  Clock::time_point t0) {
  Progress(label, k, N_, 0, t0, true);
  const double flops = N_ * (ProjectFlopsPerRow(k) + 2.0 * InDim(k) * d_);
  report_.flops += flops;
  LayerReport& lr = report_.per_layer.back();
  lr.project_seconds += Since(t0);
  lr.flops += flops;
}

Status Runner::ProjectOrdered(std::uint32_t k) {
  const auto t0 = Clock::now();
  const std::uint32_t in = InDim(k), d = d_;
  const std::uint64_t B = oblock_;
  if (k > 1) {
    PGRAPH_RETURN_IF_ERROR(prev_h_.Open(*store_, "h" + std::to_string(k - 1), N_, seg_rows_, d));
  }
  // Later layers read h^(k-1) by position, straight into place. Layer 1 gathers h^(0) by
  // position where the features lie in place in LMDB's map; otherwise it reads them in item
  // order and scatters its output rows to their positions.
  std::optional<InputGather> gather;
  if (k == 1) {
    auto g = InputGather::Make(cols_, model_, cache_bytes_);
    if (g.ok()) gather = std::move(g).value();
  }
  const bool scatter = k == 1 && !gather;
  const auto [hbuf, pbuf, rbuf, sbuf] =
      arena_mem_.Carve<4>({B * in, B * m_, scatter ? B * d : 0, scatter ? B * d : 0});
  const std::string label = "project " + std::to_string(k) + "/" + std::to_string(K_);
  for (std::uint64_t b = 0; b < N_; b += B) {
    PGRAPH_RETURN_IF_ERROR(CheckCancel());
    Progress(label, k, b, 0, t0, false);
    const std::uint64_t nb = std::min(B, N_ - b);
    if (gather && device_.is_cpu()) {  // each slice gathered into L2 and projected there
      ProjectSlices(
          k, nb,
          [&](std::uint64_t lo, std::uint64_t n, float* scratch) {
            gather->Gather(std::span(lo_.order).subspan(b + lo, n), scratch);
            return scratch;
          },
          orows_ + b * d, oself_ + b * d);
      continue;
    }
    if (gather) {
      ForRows(nb, 1024, [&](const RowRange& r) {
        gather->Gather(std::span(lo_.order).subspan(b + r.lo, r.hi - r.lo), hbuf + r.lo * in);
      });
    } else {
      PGRAPH_RETURN_IF_ERROR(ReadH(k - 1, b, nb, hbuf));
    }
    float* r = scatter ? rbuf : orows_ + b * d;
    float* sv = scatter ? sbuf : oself_ + b * d;
    ProjectRows(k, hbuf, static_cast<std::int64_t>(nb), pbuf, r, sv);
    if (scatter) {
      ForRows(nb, 1024, [&](const RowRange& rr) {
        for (std::uint64_t j = rr.begin(); j < rr.end(); ++j) {
          const std::uint64_t at = static_cast<std::uint64_t>(lo_.pos[b + j]) * d;
          std::memcpy(orows_ + at, r + j * d, d * sizeof(float));
          std::memcpy(oself_ + at, sv + j * d, d * sizeof(float));
        }
      });
    }
  }
  ReportOrderedProject(k, label, t0);
  return Status::OK();
}

Status Runner::ProjectInMemory(std::uint32_t k) {
  const auto t0 = Clock::now();
  if (report_.per_layer.empty() || report_.per_layer.back().layer != k) {
    report_.per_layer.push_back(LayerReport{});
    report_.per_layer.back().layer = k;
  }
  const std::uint32_t in = InDim(k), d = d_;
  const std::uint64_t B = oblock_;
  const bool cpu = device_.is_cpu();
  // oself_ holds h^(k-1) and receives W_self h + w: each slice (on the GPU, each block) of h
  // is copied out first.
  const auto [hbuf, pbuf] = arena_mem_.Carve<2>({cpu ? 0 : B * in, cpu ? 0 : B * m_});
  const std::string label = "project " + std::to_string(k) + "/" + std::to_string(K_);
  for (std::uint64_t b = 0; b < N_; b += B) {
    Progress(label, k, b, 0, t0, false);
    const std::uint64_t nb = std::min(B, N_ - b);
    // The rows about to be replaced may still be queued for the store (the last blocks of
    // the layer before): those wait; earlier ones were written long ago.
    if (rows_written_.load() < b + nb) PGRAPH_RETURN_IF_ERROR(writes_->Wait());
    float* const hb = oself_ + b * in;
    if (cpu) {
      ProjectSlices(
          k, nb,
          [&](std::uint64_t lo, std::uint64_t n, float* scratch) {
            std::memcpy(scratch, hb + lo * in, n * in * sizeof(float));
            return scratch;
          },
          orows_ + b * d, oself_ + b * d);
      continue;
    }
    std::memcpy(hbuf, hb, nb * in * sizeof(float));
    ProjectRows(k, hbuf, static_cast<std::int64_t>(nb), pbuf, orows_ + b * d, oself_ + b * d);
  }
  ReportOrderedProject(k, label, t0);
  // The last segment's publish too, before the next layer reads the state it sets.
  return writes_->Wait();
}

Status Runner::RunOrderedLayer(std::uint32_t k, bool projected) {
  const std::uint32_t stage = 2 * (k - 1) + 1;
  if (report_.per_layer.empty() || report_.per_layer.back().layer != k) {
    report_.per_layer.push_back(LayerReport{});
    report_.per_layer.back().layer = k;
  }
  if (!projected) PGRAPH_RETURN_IF_ERROR(ProjectOrdered(k));
  const std::uint64_t B = oout_rows_;
  OrderedPoolInputs pin;
  pin.T = Tu_;
  pin.r = orows_;
  pin.s = oself_;
  pin.d = d_;
  pin.mean = pooling_ == train::Pooling::kMean;
  const std::vector<std::string> drops = PooledDrops(k);
  const std::string label = "pool " + std::to_string(k) + "/" + std::to_string(K_);
  const auto t0 = Clock::now();
  const std::uint64_t start_done = state_.stage == stage ? state_.segments * seg_rows_ : 0;
  std::uint64_t done = start_done;
  // Writing block j's rows overlaps pooling block j + 1 (and the last block's, the next
  // layer's stage (a)): rows of oself_ are final once pooled, until ProjectInMemory replaces
  // them once written.
  rows_written_ = start_done;
  PGRAPH_RETURN_IF_ERROR(RunSegments(
      stage, d_,
      [&](std::uint64_t first, std::uint64_t n, const AppendFn& append) -> Status {
        for (std::uint64_t b = first; b < first + n; b += B) {
          PGRAPH_RETURN_IF_ERROR(CheckCancel());
          const std::uint64_t nb = std::min(B, first + n - b);
          ForRows(nb, 256, [&](const RowRange& r) {
            for (std::uint64_t i = b + r.lo, end; i < b + r.hi; i = end) {
              const std::uint64_t piece = i / piece_rows_, base = piece * piece_rows_;
              end = std::min(b + r.hi, base + piece_rows_);
              OrderedPoolInputs at = pin;
              at.neighbors = piece_nbrs_[piece] + (i - base) * Tu_;
              at.weights = piece_wts_[piece] + (i - base) * Tu_;
              PoolActivateOrdered(at, i, end, oself_ + i * d_);
            }
          });
          PGRAPH_RETURN_IF_ERROR(append(oself_ + b * d_, nb));
          writes_->Post([this, end = b + nb] {
            rows_written_ = end;
            return Status::OK();
          });
          done += nb;
          Progress(label, k, done, start_done, t0, false);
        }
        return Status::OK();
      },
      drops, writes_.get()));
  if (start_done > 0) {
    // A resumed layer: h^(k) of the segments published before the stop is in the store (the
    // segments of this run may still be in the queue).
    SegmentedColumn h;
    PGRAPH_RETURN_IF_ERROR(h.Open(*store_, "h" + std::to_string(k), start_done, seg_rows_, d_));
    PGRAPH_RETURN_IF_ERROR(h.Read(0, start_done, oself_));
  }
  Progress(label, k, N_, start_done, t0, true);
  // The pooling FLOPs of the rows pooled by this call (a resume skips published segments).
  const double flops = 2.0 * onnz_ * PooledWidth() * (N_ - start_done) / N_;
  report_.flops += flops;
  LayerReport& lr = report_.per_layer.back();
  lr.pool_seconds = Since(t0);
  lr.partitions = 1;
  lr.range_rows = N_;
  lr.block_rows = B;
  lr.flops += flops;
  return Status::OK();
}

void Runner::HeadRows(const float* h, std::uint64_t rows, float* g, float* z) {
  if (device_.is_cpu()) {
    HeadSlices(rows, [&](std::uint64_t lo, std::uint64_t, float*) { return h + lo * d_; }, z);
    return;
  }
  Linear(G1t_, g_, h, static_cast<std::int64_t>(rows), g, true);
  Linear(G2t_, at::Tensor(), g, static_cast<std::int64_t>(rows), z, false);
  ForRows(rows, 1024, [&](const RowRange& rr) {
    for (std::uint64_t r = rr.lo; r < rr.hi; ++r) FinishHeadRow(h + r * d_, z + r * d_);
  });
  report_.flops += 4.0 * rows * d_ * d_;
}

void Runner::FinishHeadRow(const float* h, float* z) const {
  if (model_.config.normalize) NormalizeRows(z, 1, d_);
  if (!scale_w_.empty()) {  // the learned length, from h_K
    double a = scale_w_[d_];
    for (std::uint64_t c = 0; c < d_; ++c) a += double{scale_w_[c]} * h[c];
    const float len = static_cast<float>(2.0 / (1.0 + std::exp(-a)));
    for (std::uint64_t c = 0; c < d_; ++c) z[c] *= len;
  }
}

template <typename Load>
void Runner::HeadSlices(std::uint64_t rows, const Load& load, float* z) {
  const DenseWeights g1 = Dense(G1t_, g_), g2 = Dense(G2t_, at::Tensor());
  ForSlices(rows, [&](std::uint64_t lo, std::uint64_t hi) {
    const std::uint64_t n = hi - lo;
    SliceScratch& scratch = ThreadSliceScratch(kSliceRows * d_, kSliceRows * d_);
    const float* hs = load(lo, n, scratch.h.data());
    SliceProduct(g1, hs, n, scratch.p.data(), true);
    SliceProduct(g2, scratch.p.data(), n, z + lo * d_, false);
    for (std::uint64_t r = 0; r < n; ++r) FinishHeadRow(hs + r * d_, z + (lo + r) * d_);
  });
  report_.flops += 4.0 * rows * d_ * d_;
}

Status Runner::RunHead(bool h_in_memory) {
  const auto t0 = Clock::now();
  SegmentedColumn h;
  if (!h_in_memory) {
    PGRAPH_RETURN_IF_ERROR(h.Open(*store_, "h" + std::to_string(K_), N_, seg_rows_, d_));
    // In locality order the head reads h^(K) by position, at random: all of it, into oself_.
    if (ordered_) PGRAPH_RETURN_IF_ERROR(h.Read(0, N_, oself_));
  }
  const bool f16 = opt_.dtype == OutputType::kFloat16;
  const std::uint64_t row_bytes = 3ull * d_ * sizeof(float) + 2ull * d_;
  // The embedding column is one atomic write: the store buffers it in batches.
  const std::uint64_t esize = f16 ? 2 : 4;
  const std::uint64_t head_writer = std::min(N_ * d_ * esize, kStoreWriteBatch) * 2;
  const std::uint64_t head_bytes =
      head_writer <= work_bytes_ / 2 ? work_bytes_ - head_writer : work_bytes_ / 2;
  // In locality order the head runs in item order over h^(K) gathered from oself_ by
  // position, into orows_ (the layers are done with it), so each block can be written while
  // the next is computed; OrderedBytes() planned the block.
  const std::uint64_t B = ordered_ ? oblock_
                                   : std::min({block_cap_, head_bytes / row_bytes, N_});
  report_.peak_working_bytes = std::max(report_.peak_working_bytes, B * row_bytes + head_writer);
  if (B < std::min<std::uint64_t>(kMinBlockRows, N_)) {
    return Status::ResourceExhausted("memory budget too small for the head");
  }
  // On the CPU an ordered head loads its slices itself, and float32 output goes to orows_.
  const bool cpu = device_.is_cpu();
  const bool f32_in_place = ordered_ && !f16;
  auto [hbuf, gbuf, zbuf] = arena_mem_.Carve<3>({ordered_ && cpu ? 0 : B * d_, cpu ? 0 : B * d_,
                                                 f32_in_place ? 0 : B * d_});
  // The embedding column's writes: in an ordered run, jobs queued behind the computation
  // (and behind the last layer's final segment, which may still be in the queue), from
  // float32 rows in orows_ or float16 blocks they own; otherwise right here.
  SerialJobs* const writes = writes_.get();
  auto run = [writes](std::function<Status()> job) { return RunOrQueue(writes, std::move(job)); };
  auto out = std::make_shared<QueuedColumn>();
  storage::ColumnSpec spec;
  spec.name = storage::columns::kEmbedding;
  spec.dtype = f16 ? storage::DType::kF16 : storage::DType::kF32;
  spec.width = d_;
  spec.codec = static_cast<int>(storage::Codec::kNone);
  PGRAPH_RETURN_IF_ERROR(run(BeginColumnJob(store_.get(), out, spec)));
  for (std::uint64_t b = 0; b < N_; b += B) {
    PGRAPH_RETURN_IF_ERROR(CheckCancel());
    const std::uint64_t nb = std::min(B, N_ - b);
    float* z = f32_in_place ? orows_ + b * d_ : zbuf;
    if (ordered_ && cpu) {  // each slice gathered by position into L2
      HeadSlices(
          nb,
          [&](std::uint64_t lo, std::uint64_t n, float* scratch) {
            for (std::uint64_t r = 0; r < n; ++r) {
              const float* hr = oself_ + static_cast<std::uint64_t>(lo_.pos[b + lo + r]) * d_;
              std::memcpy(scratch + r * d_, hr, d_ * sizeof(float));
            }
            return scratch;
          },
          z);
    } else {
      if (ordered_) {
        ForRows(nb, 1024, [&](const RowRange& rr) {
          for (std::uint64_t r = rr.lo; r < rr.hi; ++r) {
            const float* hr = oself_ + static_cast<std::uint64_t>(lo_.pos[b + r]) * d_;
            std::memcpy(hbuf + r * d_, hr, d_ * sizeof(float));
          }
        });
      } else {
        PGRAPH_RETURN_IF_ERROR(h.Read(b, nb, hbuf));
      }
      HeadRows(hbuf, nb, gbuf, z);
    }
    const std::uint64_t n = nb * d_;
    if (f16) {
      auto half = std::make_shared<std::vector<std::uint16_t>>(n);
      ForRows(n, 1 << 14, [&](const RowRange& rr) {
        for (std::uint64_t i = rr.lo; i < rr.hi; ++i) (*half)[i] = storage::FloatToHalf(z[i]);
      });
      PGRAPH_RETURN_IF_ERROR(run([out, half] {
        return out->writer->AppendValues<std::uint16_t>(*half);
      }));
    } else {
      PGRAPH_RETURN_IF_ERROR(
          run([out, z, n] { return out->writer->AppendValues<float>(std::span(z, n)); }));
    }
    Progress("head", 0, b + nb, 0, t0, false);
  }
  if (writes) PGRAPH_RETURN_IF_ERROR(writes->Wait());
  std::unique_ptr<storage::Update> update = std::move(out->update);
  PGRAPH_RETURN_IF_ERROR(Stop("segment:head:0"));
  if (!opt_.keep_intermediates) {
    for (const auto& c : store_->ListColumns()) {
      if (c.name.rfind(kPrefix, 0) == 0) update->DropColumn(c.name);
    }
  }
  State done{fingerprint_, 2 * K_ + 1, 0, seg_rows_};
  update->SetMeta(kStateKey, FormatState(done));
  update->SetMeta("infer.model", model_.fingerprint);
  update->SetMeta("infer.dtype", f16 ? "float16" : "float32");
  update->SetCount("infer.new_items", model_.new_items);
  PGRAPH_RETURN_IF_ERROR(update->Publish());
  state_ = done;
  PGRAPH_RETURN_IF_ERROR(Stop("published:head:0"));
  Progress("head", 0, N_, 0, t0, true);
  report_.head_seconds = Since(t0);
  return Status::OK();
}

Status Runner::BuildIndex() {
  if (!opt_.build_index) {
    report_.index_note = "not requested";
    return Status::OK();
  }
#if defined(PGRAPH_HAVE_ANN) && PGRAPH_HAVE_ANN
  auto r = ann::BuildStoreIndex(store_.get(), ann::LshParams{});
  if (!r.ok()) {
    report_.index_note = r.status().ToString();
    return Status::OK();
  }
  report_.index_built = true;
#else
  report_.index_note = "pgraph_ann is not linked";
#endif
  return Status::OK();
}

Result<InferReport> Runner::Run() {
  const auto t0 = Clock::now();
  try {
    PGRAPH_RETURN_IF_ERROR(Setup());
    PGRAPH_RETURN_IF_ERROR(PlanAndResume());
    torch::NoGradGuard no_grad;
    // In locality order a layer's stage (a) runs in memory from the h^(k-1) the previous
    // layer left in oself_, and the head from h^(K) there: the segments are read back only
    // after a resume.
    bool projected = false, h_in_memory = false;
    if (ordered_) writes_ = std::make_unique<SerialJobs>(arena_.get());
    for (std::uint32_t k = 1; k <= K_; ++k) {
      if (state_.stage > 2 * (k - 1) + 1) continue;
      if (ordered_) {
        PGRAPH_RETURN_IF_ERROR(RunOrderedLayer(k, projected));
        if (k < K_) {
          PGRAPH_RETURN_IF_ERROR(CheckCancel());
          PGRAPH_RETURN_IF_ERROR(ProjectInMemory(k + 1));
          projected = true;
        } else {
          h_in_memory = true;
        }
        continue;
      }
      PGRAPH_ASSIGN_OR_RETURN(PoolPlan plan, PlanPool(k));
      if (!plan.in_memory) {
        if (state_.stage == 2 * (k - 1) + 1 && !HasProjections(k)) {
          PGRAPH_RETURN_IF_ERROR(RestartLayer(k));
        }
        if (state_.stage <= 2 * (k - 1)) PGRAPH_RETURN_IF_ERROR(RunProject(k));
      }
      PGRAPH_RETURN_IF_ERROR(RunPool(k, plan));
    }
    if (state_.stage <= 2 * K_) PGRAPH_RETURN_IF_ERROR(RunHead(h_in_memory));
    PGRAPH_RETURN_IF_ERROR(BuildIndex());
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("torch: ") + e.what_without_backtrace());
  }
  report_.seconds = Since(t0);
  return report_;
}

}  // namespace

Result<OutputType> ParseOutputType(std::string_view s) {
  if (s == "float32" || s == "f32") return OutputType::kFloat32;
  if (s == "float16" || s == "f16") return OutputType::kFloat16;
  return Status::InvalidArgument("unknown dtype '" + std::string(s) +
                                 "' (expected float32 or float16)");
}

Result<LocalityMode> ParseLocalityMode(std::string_view s) {
  if (s == "auto") return LocalityMode::kAuto;
  if (s == "on") return LocalityMode::kOn;
  if (s == "off") return LocalityMode::kOff;
  return Status::InvalidArgument("unknown --locality-order '" + std::string(s) +
                                 "' (expected auto, on or off)");
}

Result<InferReport> Infer(const InferOptions& options) {
  Runner runner(options);
  return runner.Run();
}

Result<std::vector<float>> ReadEmbeddings(const storage::Store& store, std::uint32_t* dim) {
  if (!store.HasColumn(storage::columns::kEmbedding)) {
    return Status::NotFound("no embedding column in " + store.dir() + " (run `pgraph infer`)");
  }
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* c,
                          store.OpenColumn(storage::columns::kEmbedding));
  std::vector<float> out(c->info().rows * c->info().width);
  PGRAPH_RETURN_IF_ERROR(c->ReadRowsAsFloat(0, c->info().rows, out));
  if (dim) *dim = c->info().width;
  return out;
}

}  // namespace pgraph::infer
