#include "tools/lib/eval.h"
#include "tools/lib/text_lines.h"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "storage/blas_runtime.h"
#include "storage/store.h"

namespace pgraph::tools {
namespace {

// ---- Small helpers -----------------------------------------------------------------------

std::uint64_t Mix64(std::uint64_t x) {  // SplitMix64 finaliser: a bijection
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Distinct items get distinct keys for one query (Mix64 is a bijection).
inline std::uint64_t TieKey(std::uint64_t query_key, NodeId v) {
  return Mix64(query_key ^ (static_cast<std::uint64_t>(v) * 0xd6e8feb86659fd93ull));
}

float Dot(const float* a, const float* b, std::uint32_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::uint32_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[j + k] * b[j + k];
  }
  float s = 0;
  for (; j < d; ++j) s += a[j] * b[j];
  for (int k = 0; k < 8; ++k) s += acc[k];
  return s;
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == '\t' || line[i] == ' ' || line[i] == ',')) ++i;
    if (i == line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != '\t' && line[j] != ' ' && line[j] != ',') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// Calls f(fields, line_number) for every data line of `path` (not blank, not '#').
template <typename F>
Status ForEachRecord(const std::string& path, F&& f) {
  return ForEachTextLine(path, [&](std::string_view line, std::uint64_t number) -> Status {
    if (IsBlankOrCommentLine(line)) return Status::OK();
    return f(SplitFields(line), number);
  });
}

// ---- Scorers -----------------------------------------------------------------------------

class MatrixScorer final : public Scorer {
 public:
  MatrixScorer(std::vector<float> rows, std::uint32_t dim, Similarity similarity,
               Aggregation aggregation, float temperature)
      : rows_(std::move(rows)), dim_(dim), aggregation_(aggregation), temperature_(temperature) {
    n_ = dim_ == 0 ? 0 : rows_.size() / dim_;
    // int-sized shapes only (CBLAS takes int); larger matrices score one query at a time.
    if (n_ < (1ull << 31) && dim_ < (1u << 20)) sgemm_ = storage::CblasSgemm();
    if (similarity == Similarity::kCosine) {
      for (std::uint64_t r = 0; r < n_; ++r) {
        float* row = &rows_[r * dim_];
        const float norm = std::sqrt(Dot(row, row, dim_));
        if (norm > 0 && std::isfinite(norm)) {
          for (std::uint32_t j = 0; j < dim_; ++j) row[j] /= norm;
        }
      }
    }
  }

  std::uint64_t num_items() const override { return n_; }

  Status ScoreFromItem(NodeId q, std::span<float> scores) const override {
    ScoreVector(&rows_[static_cast<std::uint64_t>(q) * dim_], scores);
    return Status::OK();
  }

  // Through the BLAS a batch of queries is one product, the item rows read once for all of
  // them (one query at a time it is a pass over every row per query, bound by memory). Up
  // to 32 MiB of scores per batch.
  std::size_t batch_size() const override {
    if (sgemm_ == nullptr || n_ == 0) return 1;
    return static_cast<std::size_t>(std::clamp<std::uint64_t>((32ull << 20) / (4 * n_), 1, 64));
  }

  Status ScoreFromItemBatch(std::span<const NodeId> qs, std::span<float> scores) const override {
    if (sgemm_ == nullptr || qs.size() == 1) return Scorer::ScoreFromItemBatch(qs, scores);
    std::vector<float> query(qs.size() * dim_);
    for (std::size_t j = 0; j < qs.size(); ++j) {
      std::copy_n(&rows_[static_cast<std::uint64_t>(qs[j]) * dim_], dim_, &query[j * dim_]);
    }
    sgemm_(storage::kCblasRowMajor, storage::kCblasNoTrans, storage::kCblasTrans,
           static_cast<int>(qs.size()), static_cast<int>(n_), static_cast<int>(dim_), 1.0f,
           query.data(), static_cast<int>(dim_), rows_.data(), static_cast<int>(dim_), 0.0f,
           scores.data(), static_cast<int>(n_));
    return Status::OK();
  }

  Status ScoreFromItems(std::span<const NodeId> items, std::span<float> scores) const override {
    if (items.empty()) {
      std::fill(scores.begin(), scores.end(), 0.0f);
      return Status::OK();
    }
    if (aggregation_ == Aggregation::kMean) {
      std::vector<float> query(dim_, 0.0f);
      for (NodeId it : items) {
        const float* row = &rows_[static_cast<std::uint64_t>(it) * dim_];
        for (std::uint32_t j = 0; j < dim_; ++j) query[j] += row[j];
      }
      const float inv = 1.0f / static_cast<float>(items.size());
      for (float& x : query) x *= inv;
      ScoreVector(query.data(), scores);
      return Status::OK();
    }
    if (aggregation_ == Aggregation::kSoftmax) return SoftmaxMixture(items, scores);
    std::fill(scores.begin(), scores.end(), -std::numeric_limits<float>::infinity());
    for (NodeId it : items) {
      const float* query = &rows_[static_cast<std::uint64_t>(it) * dim_];
      for (std::uint64_t v = 0; v < n_; ++v) {
        scores[v] = std::max(scores[v], Dot(&rows_[v * dim_], query, dim_));
      }
    }
    return Status::OK();
  }

 private:
  void ScoreVector(const float* query, std::span<float> scores) const {
    for (std::uint64_t v = 0; v < n_; ++v) scores[v] = Dot(&rows_[v * dim_], query, dim_);
  }

  // scores[v] = log(mean over j in items of P(v | j)), P(v | j) the softmax over v != j of
  // s_jv / tau (Aggregation::kSoftmax). j leaves its own distribution: training never pairs
  // an item with itself, and its self-score (|z_j|^2, the largest) would only shrink the
  // mass it gives everything else. Probabilities are summed in double; an item that gets
  // none scores -inf.
  Status SoftmaxMixture(std::span<const NodeId> items, std::span<float> scores) const {
    const double inv_tau = 1.0 / temperature_;
    std::vector<double> mass(n_, 0.0), e(n_);
    for (NodeId j : items) {
      ScoreVector(&rows_[static_cast<std::uint64_t>(j) * dim_], scores);
      float top = -std::numeric_limits<float>::infinity();
      for (std::uint64_t v = 0; v < n_; ++v) {
        if (v != j) top = std::max(top, scores[v]);
      }
      double z = 0;
      for (std::uint64_t v = 0; v < n_; ++v) {
        e[v] = v == j ? 0.0 : std::exp((static_cast<double>(scores[v]) - top) * inv_tau);
        z += e[v];
      }
      if (!(z > 0) || !std::isfinite(z)) continue;  // a one-item catalogue, or NaN scores
      for (std::uint64_t v = 0; v < n_; ++v) mass[v] += e[v] / z;
    }
    const double inv_count = 1.0 / static_cast<double>(items.size());
    for (std::uint64_t v = 0; v < n_; ++v) {
      scores[v] = mass[v] > 0 ? static_cast<float>(std::log(mass[v] * inv_count))
                              : -std::numeric_limits<float>::infinity();
    }
    return Status::OK();
  }

  std::vector<float> rows_;
  std::uint32_t dim_;
  std::uint64_t n_ = 0;
  Aggregation aggregation_;
  float temperature_;
  storage::SgemmFn sgemm_ = nullptr;
};

class ItemKnnScorer final : public Scorer {
 public:
  ItemKnnScorer(const storage::Graph& graph, bool use_weights, Aggregation aggregation)
      : graph_(graph),
        weighted_(use_weights && graph.weighted()),
        aggregation_(aggregation),
        norms_(graph.num_items(), 0.0f) {
    std::vector<NodeId> ctx;
    std::vector<float> w;
    for (NodeId v = 0; v < graph.num_items(); ++v) {
      if (!weighted_) {
        norms_[v] = std::sqrt(static_cast<float>(graph.ItemDegree(v)));
        continue;
      }
      ctx.clear();
      w.clear();
      graph.ItemNeighbors(v, &ctx, &w);
      double s = 0;
      for (float x : w) s += static_cast<double>(x) * x;
      norms_[v] = static_cast<float>(std::sqrt(s));
    }
  }

  std::uint64_t num_items() const override { return graph_.num_items(); }

  Status ScoreFromItem(NodeId q, std::span<float> scores) const override {
    std::fill(scores.begin(), scores.end(), 0.0f);
    if (norms_[q] == 0) return Status::OK();
    AddCooccurrence(q, 1.0f / norms_[q], scores);
    Normalise(scores);
    return Status::OK();
  }

  Status ScoreFromItems(std::span<const NodeId> items, std::span<float> scores) const override {
    std::fill(scores.begin(), scores.end(), 0.0f);
    if (aggregation_ == Aggregation::kMean) {
      // sum_j cos(j, v) = (sum_j <x_j, x_v> / |x_j|) / |x_v|
      for (NodeId j : items) {
        if (norms_[j] > 0) AddCooccurrence(j, 1.0f / norms_[j], scores);
      }
      Normalise(scores);
      return Status::OK();
    }
    std::vector<float> one(scores.size(), 0.0f);
    for (NodeId j : items) {
      if (norms_[j] == 0) continue;
      std::fill(one.begin(), one.end(), 0.0f);
      AddCooccurrence(j, 1.0f / norms_[j], one);
      Normalise(one);
      for (std::size_t v = 0; v < one.size(); ++v) scores[v] = std::max(scores[v], one[v]);
    }
    return Status::OK();
  }

 private:
  // scores[v] += scale * <x_q, x_v> for every v sharing a context with q.
  void AddCooccurrence(NodeId q, float scale, std::span<float> scores) const {
    if (!weighted_) {
      const std::uint64_t qd = graph_.ItemDegree(q);
      for (std::uint64_t r = 0; r < qd; ++r) {
        const NodeId c = graph_.ItemNeighbor(q, r);
        const std::uint64_t cd = graph_.ContextDegree(c);
        for (std::uint64_t s = 0; s < cd; ++s) scores[graph_.ContextNeighbor(c, s)] += scale;
      }
      return;
    }
    std::vector<NodeId> ctx, items;
    std::vector<float> wq, wc;
    graph_.ItemNeighbors(q, &ctx, &wq);
    for (std::size_t r = 0; r < ctx.size(); ++r) {
      items.clear();
      wc.clear();
      graph_.ContextNeighbors(ctx[r], &items, &wc);
      const float a = scale * wq[r];
      for (std::size_t s = 0; s < items.size(); ++s) scores[items[s]] += a * wc[s];
    }
  }

  void Normalise(std::span<float> scores) const {
    for (std::size_t v = 0; v < scores.size(); ++v) {
      scores[v] = norms_[v] > 0 ? scores[v] / norms_[v] : 0.0f;
    }
  }

  const storage::Graph& graph_;
  bool weighted_;
  Aggregation aggregation_;
  std::vector<float> norms_;
};

class PopularityScorer final : public Scorer {
 public:
  explicit PopularityScorer(const storage::Graph& graph) : graph_(graph) {}
  std::uint64_t num_items() const override { return graph_.num_items(); }
  Status ScoreFromItem(NodeId, std::span<float> scores) const override {
    Fill(scores);
    return Status::OK();
  }
  Status ScoreFromItems(std::span<const NodeId>, std::span<float> scores) const override {
    Fill(scores);
    return Status::OK();
  }

 private:
  void Fill(std::span<float> scores) const {
    for (std::size_t v = 0; v < scores.size(); ++v) {
      scores[v] = static_cast<float>(graph_.ItemDegree(static_cast<NodeId>(v)));
    }
  }
  const storage::Graph& graph_;
};

// ---- Ranking -----------------------------------------------------------------------------

// Per-thread scratch: a score for every item and a stamp per item (mark[v] == stamp means
// excluded, == stamp + 1 means in the sampled pool).
struct Scratch {
  std::vector<float> scores;
  std::vector<float> batch;  // scores of a batch of queries (Scorer::ScoreFromItemBatch)
  std::vector<NodeId> batch_queries;
  std::vector<std::uint32_t> mark;
  std::uint32_t stamp = 1;
  std::vector<NodeId> pool;
  void Resize(std::uint64_t n) {
    if (scores.size() != n) {
      scores.assign(n, 0.0f);
      mark.assign(n, 0);
      stamp = 1;
    }
  }
  // A fresh pair of stamp values for a new query.
  void NextQuery() {
    if (stamp >= std::numeric_limits<std::uint32_t>::max() - 4) {
      std::fill(mark.begin(), mark.end(), 0);
      stamp = 1;
    }
    stamp += 2;
  }
  bool Excluded(NodeId v) const { return mark[v] == stamp; }
  bool InPool(NodeId v) const { return mark[v] == stamp + 1; }
};

// Ranks targets for one query. Scores must be set; excluded items marked; targets
// unmarked. Fills ranks[j] for targets[j].
class QueryRanker {
 public:
  QueryRanker(Scratch* s, std::uint64_t query_key) : s_(s), key_(query_key) {
    for (float& x : s_->scores) {
      if (std::isnan(x)) x = -std::numeric_limits<float>::infinity();
    }
  }

  // Samples `candidates` items among those not excluded and not targets (all of them when
  // fewer are eligible). Returns false when every eligible item is in the pool (then
  // Rank uses a full pass, which gives the same answer faster).
  bool SamplePool(std::uint64_t candidates, std::span<const NodeId> targets) {
    const std::uint64_t n = s_->scores.size();
    std::uint64_t excluded = 0;
    for (std::uint64_t v = 0; v < n; ++v) excluded += s_->mark[v] == s_->stamp;
    // Targets are distinct and not excluded; mark them so they are never drawn.
    for (NodeId t : targets) s_->mark[t] = s_->stamp + 1;
    const std::uint64_t eligible = n - excluded - targets.size();
    s_->pool.clear();
    std::uint64_t rng = Mix64(key_ ^ 0x5851f42d4c957f2dull);
    auto next = [&rng]() { return Mix64(rng++); };
    bool sampled = false;
    if (candidates < eligible) {
      sampled = true;
      if (eligible >= 2 * candidates) {
        while (s_->pool.size() < candidates) {
          const NodeId v = static_cast<NodeId>(next() % n);
          if (s_->mark[v] == s_->stamp || s_->mark[v] == s_->stamp + 1) continue;
          s_->mark[v] = s_->stamp + 1;
          s_->pool.push_back(v);
        }
      } else {
        std::vector<NodeId> all;
        all.reserve(eligible);
        for (std::uint64_t v = 0; v < n; ++v) {
          if (s_->mark[v] != s_->stamp && s_->mark[v] != s_->stamp + 1) {
            all.push_back(static_cast<NodeId>(v));
          }
        }
        for (std::uint64_t j = 0; j < candidates; ++j) {
          std::swap(all[j], all[j + next() % (all.size() - j)]);
          s_->pool.push_back(all[j]);
        }
      }
    }
    for (NodeId t : targets) s_->mark[t] = 0;
    return sampled;
  }

  // 1-based rank of target t among the non-excluded items (or the pool plus `others`,
  // when sampled), t itself left out of the comparison.
  std::uint64_t Rank(NodeId t, bool sampled, std::span<const NodeId> others) const {
    const float st = s_->scores[t];
    const std::uint64_t kt = TieKey(key_, t);
    auto better = [&](NodeId v) {
      const float sv = s_->scores[v];
      return sv > st || (sv == st && TieKey(key_, v) < kt);
    };
    std::uint64_t rank = 1;
    if (sampled) {
      for (NodeId v : s_->pool) rank += better(v);
      for (NodeId v : others) rank += v != t && better(v);
      return rank;
    }
    const std::uint64_t n = s_->scores.size();
    const float* scores = s_->scores.data();
    const std::uint32_t* mark = s_->mark.data();
    const std::uint32_t stamp = s_->stamp;
    for (std::uint64_t v = 0; v < n; ++v) {
      if (scores[v] < st || mark[v] == stamp || v == t) continue;
      if (scores[v] > st || TieKey(key_, static_cast<NodeId>(v)) < kt) ++rank;
    }
    return rank;
  }

 private:
  Scratch* s_;
  std::uint64_t key_;
};

std::vector<std::size_t> ChooseQueries(std::size_t n, const EvalOptions& o) {
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (o.max_queries == 0 || o.max_queries >= n) return idx;
  std::uint64_t rng = Mix64(o.seed ^ 0x2545f4914f6cdd1dull);
  for (std::size_t j = 0; j < o.max_queries; ++j) {
    std::swap(idx[j], idx[j + Mix64(rng++) % (n - j)]);
  }
  idx.resize(o.max_queries);
  std::sort(idx.begin(), idx.end());
  return idx;
}

Status CheckOptions(const Scorer& scorer, const storage::Graph& graph, const EvalOptions& o) {
  if (o.ks.empty()) return Status::InvalidArgument("no cut-off K given");
  for (std::uint64_t k : o.ks) {
    if (k == 0) return Status::InvalidArgument("cut-off K must be >= 1");
  }
  if (scorer.num_items() != graph.num_items()) {
    return Status::InvalidArgument("the method scores " + std::to_string(scorer.num_items()) +
                                   " items but the store has " + std::to_string(graph.num_items()));
  }
  return Status::OK();
}

// Runs `body(query_position, scratch)` for positions [0, n) in parallel; first error wins.
// Positions go in groups of `group`, and `prepare(first, count, scratch)` runs before the
// bodies of each group (to score the group's queries in one batch).
template <typename Prepare, typename Body>
Status ParallelQueryGroups(std::size_t n, std::size_t group, std::uint64_t items,
                           const EvalOptions& o, Prepare&& prepare, Body&& body) {
  tbb::enumerable_thread_specific<Scratch> scratch;
  std::mutex mu;
  Status first;  // Guarded by mu
  std::atomic<bool> failed{false};
  auto fail = [&](const Status& st) {
    std::lock_guard<std::mutex> lock(mu);
    if (first.ok()) first = st;
    failed = true;
  };
  const std::size_t groups = (n + group - 1) / group;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, groups, std::max<std::size_t>(1, 4 / group)),
                    [&](const tbb::blocked_range<std::size_t>& range) {
                      if (failed.load(std::memory_order_relaxed)) return;
                      Scratch& s = scratch.local();
                      s.Resize(items);
                      std::size_t done = 0;
                      for (std::size_t g = range.begin(); g != range.end(); ++g) {
                        const std::size_t lo = g * group, count = std::min(group, n - lo);
                        if (Status st = prepare(lo, count, &s); !st.ok()) return fail(st);
                        for (std::size_t p = lo; p < lo + count; ++p) {
                          s.NextQuery();
                          if (Status st = body(p, &s); !st.ok()) return fail(st);
                        }
                        done += count;
                      }
                      if (o.progress) o.progress(done);
                    });
  return first;
}

template <typename Body>
Status ParallelQueries(std::size_t n, std::uint64_t items, const EvalOptions& o, Body&& body) {
  return ParallelQueryGroups(
      n, 1, items, o, [](std::size_t, std::size_t, Scratch*) { return Status::OK(); }, body);
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- Public functions --------------------------------------------------------------------

Status Scorer::ScoreFromItemBatch(std::span<const NodeId> qs, std::span<float> scores) const {
  const std::uint64_t n = num_items();
  for (std::size_t j = 0; j < qs.size(); ++j) {
    PGRAPH_RETURN_IF_ERROR(ScoreFromItem(qs[j], scores.subspan(j * n, n)));
  }
  return Status::OK();
}

Result<Aggregation> ParseAggregation(std::string_view s) {
  if (s == "mean") return Aggregation::kMean;
  if (s == "max") return Aggregation::kMax;
  if (s == "softmax") return Aggregation::kSoftmax;
  return Status::InvalidArgument("unknown aggregation '" + std::string(s) +
                                 "' (expected mean, max or softmax)");
}

Result<Similarity> ParseSimilarity(std::string_view s) {
  if (s == "cosine") return Similarity::kCosine;
  if (s == "dot") return Similarity::kDot;
  return Status::InvalidArgument("unknown similarity '" + std::string(s) +
                                 "' (expected cosine or dot)");
}

namespace {
Status CheckTemperature(Aggregation aggregation, float temperature) {
  if (aggregation == Aggregation::kSoftmax && !(temperature > 0 && std::isfinite(temperature))) {
    return Status::InvalidArgument("softmax aggregation needs a temperature > 0, got " +
                                   std::to_string(temperature));
  }
  return Status::OK();
}
}  // namespace

Result<std::unique_ptr<Scorer>> MakeMatrixScorer(std::span<const float> rows, std::uint32_t dim,
                                                 Similarity similarity, Aggregation aggregation,
                                                 float temperature) {
  if (dim == 0 || rows.size() % dim != 0) {
    return Status::InvalidArgument("matrix size is not a multiple of its dimension");
  }
  PGRAPH_RETURN_IF_ERROR(CheckTemperature(aggregation, temperature));
  return std::unique_ptr<Scorer>(std::make_unique<MatrixScorer>(
      std::vector<float>(rows.begin(), rows.end()), dim, similarity, aggregation, temperature));
}

Result<std::unique_ptr<Scorer>> MakeColumnScorer(const storage::Store& store,
                                                 std::string_view column, Similarity similarity,
                                                 Aggregation aggregation, float temperature) {
  PGRAPH_RETURN_IF_ERROR(CheckTemperature(aggregation, temperature));
  auto col = store.OpenColumn(column);
  if (!col.ok()) {
    return Status::NotFound(
        "store '" + store.dir() + "' has no column '" + std::string(column) + "'" +
        (column == storage::columns::kEmbedding  ? " (run pgraph infer first)"
         : column == storage::columns::kFeatures ? " (it was ingested without --features)"
                                                 : ""));
  }
  const storage::ColumnInfo& info = (*col)->info();
  if (info.dtype != storage::DType::kF32 && info.dtype != storage::DType::kF16) {
    return Status::InvalidArgument("column '" + info.name + "' is " +
                                   storage::DTypeName(info.dtype) + ", expected f32 or f16");
  }
  if (info.rows != store.num_items() || info.width == 0) {
    return Status::InvalidArgument("column '" + info.name + "' has " + std::to_string(info.rows) +
                                   " rows of width " + std::to_string(info.width) +
                                   " but the store has " + std::to_string(store.num_items()) +
                                   " items");
  }
  std::vector<float> rows(info.rows * info.width);
  constexpr std::uint64_t kBlock = 1 << 16;
  for (std::uint64_t first = 0; first < info.rows; first += kBlock) {
    const std::uint64_t count = std::min(kBlock, info.rows - first);
    PGRAPH_RETURN_IF_ERROR((*col)->ReadRowsAsFloat(
        first, count, std::span<float>(rows.data() + first * info.width, count * info.width)));
  }
  return std::unique_ptr<Scorer>(std::make_unique<MatrixScorer>(
      std::move(rows), info.width, similarity, aggregation, temperature));
}

std::unique_ptr<Scorer> MakeItemKnnScorer(const storage::Graph& graph, bool use_weights,
                                          Aggregation aggregation) {
  return std::make_unique<ItemKnnScorer>(graph, use_weights, aggregation);
}

std::unique_ptr<Scorer> MakePopularityScorer(const storage::Graph& graph) {
  return std::make_unique<PopularityScorer>(graph);
}

Result<PairQueries> ReadPairQueries(const std::string& path, const storage::IdMap& items,
                                    const storage::IdMap* contexts) {
  PairQueries out;
  Status s = ForEachRecord(
      path, [&](const std::vector<std::string_view>& f, std::uint64_t line) -> Status {
        if (f.size() < 2) {
          return Status::InvalidArgument("'" + path + "' line " + std::to_string(line) +
                                         ": expected `q<TAB>i[<TAB>context]`");
        }
        PairQuery p;
        auto q = items.Find(f[0]);
        auto i = items.Find(f[1]);
        if (q.ok()) p.q = *q;
        if (i.ok()) p.item = *i;
        if (!q.ok() || !i.ok()) {
          p.q = p.item = kInvalidNode;
          ++out.unknown;
        }
        if (contexts != nullptr && f.size() >= 3) {
          auto c = contexts->Find(f[2]);
          if (c.ok()) {
            p.context = *c;
          } else {
            ++out.unknown_contexts;
          }
        }
        out.queries.push_back(p);
        return Status::OK();
      });
  if (!s.ok()) return s;
  return out;
}

Result<TestQueries> ReadTestQueries(const std::string& path, const storage::IdMap& items,
                                    const storage::IdMap& contexts) {
  TestQueries out;
  std::unordered_map<std::string, std::size_t> position;  // context name -> query
  std::vector<std::unordered_set<std::string>> seen;      // held-out item names per query
  Status s = ForEachRecord(
      path, [&](const std::vector<std::string_view>& f, std::uint64_t line) -> Status {
        if (f.size() < 2) {
          return Status::InvalidArgument("'" + path + "' line " + std::to_string(line) +
                                         ": expected `context<TAB>item`");
        }
        ++out.lines;
        auto [it, inserted] = position.try_emplace(std::string(f[0]), out.queries.size());
        if (inserted) {
          TestQuery q;
          auto c = contexts.Find(f[0]);
          if (c.ok()) {
            q.context = *c;
          } else {
            ++out.unknown_contexts;
          }
          out.queries.push_back(std::move(q));
          seen.emplace_back();
        }
        const std::size_t p = it->second;
        if (!seen[p].insert(std::string(f[1])).second) return Status::OK();
        auto i = items.Find(f[1]);
        if (i.ok()) {
          out.queries[p].items.push_back(*i);
        } else {
          ++out.queries[p].unknown_items;
          ++out.unknown_items;
        }
        return Status::OK();
      });
  if (!s.ok()) return s;
  return out;
}

// A report for `protocol` with the queries to evaluate chosen (sampled per the options);
// those left out are counted as skipped.
static EvalReport StartReport(const char* protocol, std::size_t num_queries, const EvalOptions& o,
                              std::vector<std::size_t>* chosen) {
  EvalReport report;
  report.protocol = protocol;
  report.candidates = o.candidates;
  *chosen = ChooseQueries(num_queries, o);
  report.skipped = num_queries - chosen->size();
  return report;
}

Result<EvalReport> EvaluatePairs(const Scorer& scorer, const storage::Graph& graph,
                                 std::span<const PairQuery> queries, const EvalOptions& o) {
  PGRAPH_RETURN_IF_ERROR(CheckOptions(scorer, graph, o));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::size_t> chosen;
  EvalReport report = StartReport("pairs", queries.size(), o, &chosen);
  // Unknown pairs: a miss, or skipped.
  std::vector<std::size_t> work;
  for (std::size_t idx : chosen) {
    const PairQuery& p = queries[idx];
    if (p.q == kInvalidNode || p.item == kInvalidNode) {
      ++report.unknown;
      if (o.skip_unknown) ++report.skipped;
      continue;
    }
    work.push_back(idx);
  }
  std::vector<std::uint64_t> ranks(queries.size(), kUnranked);
  const std::uint64_t n = graph.num_items();
  // Batches score on the TBB threads, each product on its caller's thread.
  const std::size_t group = scorer.batch_size();
  std::optional<storage::ScopedBlasThreads> one_blas_thread;
  if (group > 1) one_blas_thread.emplace(1);
  auto prepare = [&](std::size_t first, std::size_t count, Scratch* sc) -> Status {
    if (group == 1) return Status::OK();
    sc->batch_queries.clear();
    for (std::size_t j = 0; j < count; ++j) sc->batch_queries.push_back(queries[work[first + j]].q);
    sc->batch.resize(count * n);
    return scorer.ScoreFromItemBatch(sc->batch_queries, sc->batch);
  };
  Status s = ParallelQueryGroups(work.size(), group, n, o, prepare,
                                 [&](std::size_t pos, Scratch* sc) -> Status {
    const std::size_t idx = work[pos];
    const PairQuery& p = queries[idx];
    if (group == 1) {
      PGRAPH_RETURN_IF_ERROR(scorer.ScoreFromItem(p.q, sc->scores));
    } else {
      const float* row = sc->batch.data() + (pos % group) * n;
      std::copy(row, row + n, sc->scores.begin());
    }
    sc->mark[p.q] = sc->stamp;
    if (o.exclude_seen && p.context != kInvalidNode && p.context < graph.num_contexts()) {
      const std::uint64_t d = graph.ContextDegree(p.context);
      for (std::uint64_t r = 0; r < d; ++r)
        sc->mark[graph.ContextNeighbor(p.context, r)] = sc->stamp;
    }
    sc->mark[p.item] = 0;
    QueryRanker ranker(sc, Mix64(o.seed * 0x9e3779b97f4a7c15ull + idx));
    const NodeId target[1] = {p.item};
    const bool sampled = o.candidates > 0 && ranker.SamplePool(o.candidates, target);
    ranks[idx] = ranker.Rank(p.item, sampled, {});
    return Status::OK();
  });
  if (!s.ok()) return s;
  MetricAccumulator acc(o.ks, o.mrr_scale);
  for (std::size_t idx : chosen) {
    const PairQuery& p = queries[idx];
    const bool unknown = p.q == kInvalidNode || p.item == kInvalidNode;
    if (unknown && o.skip_unknown) continue;
    acc.AddSingle(ranks[idx]);
  }
  report.queries = acc.single_queries();
  report.metrics = acc.SingleMeans();
  report.seconds = SecondsSince(t0);
  return report;
}

Result<EvalReport> EvaluateTest(const Scorer& scorer, const storage::Graph& graph,
                                std::span<const TestQuery> queries, const EvalOptions& o) {
  PGRAPH_RETURN_IF_ERROR(CheckOptions(scorer, graph, o));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::size_t> chosen;
  EvalReport report = StartReport("test", queries.size(), o, &chosen);
  std::vector<std::size_t> work;
  for (std::size_t idx : chosen) {
    const TestQuery& q = queries[idx];
    report.unknown += q.unknown_items;
    if (o.skip_unknown && (q.items.empty() || q.context == kInvalidNode)) {
      ++report.skipped;
      continue;
    }
    if (q.items.empty() && q.unknown_items == 0) {  // nothing held out
      ++report.skipped;
      continue;
    }
    work.push_back(idx);
  }
  std::vector<std::vector<std::uint64_t>> ranks(queries.size());
  const std::uint64_t n = graph.num_items();
  Status s = ParallelQueries(work.size(), n, o, [&](std::size_t pos, Scratch* sc) -> Status {
    const std::size_t idx = work[pos];
    const TestQuery& q = queries[idx];
    std::vector<NodeId> history;
    if (q.context != kInvalidNode && q.context < graph.num_contexts()) {
      graph.ContextNeighbors(q.context, &history);
    }
    PGRAPH_RETURN_IF_ERROR(scorer.ScoreFromItems(history, sc->scores));
    if (o.exclude_seen) {
      for (NodeId v : history) sc->mark[v] = sc->stamp;
    }
    for (NodeId t : q.items) sc->mark[t] = 0;
    QueryRanker ranker(sc, Mix64(o.seed * 0x9e3779b97f4a7c15ull + idx));
    const bool sampled = o.candidates > 0 && ranker.SamplePool(o.candidates, q.items);
    std::vector<std::uint64_t>& r = ranks[idx];
    for (NodeId t : q.items) r.push_back(ranker.Rank(t, sampled, q.items));
    if (!o.skip_unknown) r.insert(r.end(), q.unknown_items, kUnranked);
    return Status::OK();
  });
  if (!s.ok()) return s;
  MetricAccumulator acc(o.ks, o.mrr_scale);
  for (std::size_t idx : work) acc.AddMulti(ranks[idx]);
  report.queries = acc.multi_queries();
  report.metrics = acc.MultiMeans();
  report.seconds = SecondsSince(t0);
  return report;
}

std::string EvalReportJson(const EvalReport& r, std::string_view method) {
  std::string out = "{\"method\": \"" + std::string(method) + "\", \"protocol\": \"" + r.protocol +
                    "\", \"queries\": " + std::to_string(r.queries);
  char buf[64];
  for (const auto& [name, value] : r.metrics) {
    std::snprintf(buf, sizeof buf, "%.6f", value);
    out += ", \"" + name + "\": " + buf;
  }
  out += ", \"unknown\": " + std::to_string(r.unknown) +
         ", \"skipped\": " + std::to_string(r.skipped) + ", \"candidates\": " +
         (r.candidates == 0 ? std::string("\"all\"") : std::to_string(r.candidates));
  if (!r.aggregate.empty()) out += ", \"aggregate\": \"" + r.aggregate + "\"";
  std::snprintf(buf, sizeof buf, "%.3f", r.seconds);
  out += ", \"seconds\": " + std::string(buf) + "}";
  return out;
}

Result<std::vector<std::uint64_t>> ParseKs(std::string_view s) {
  std::vector<std::uint64_t> ks;
  while (!s.empty()) {
    const std::size_t comma = s.find(',');
    std::string_view tok = s.substr(0, comma);
    std::uint64_t k = 0;
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), k);
    if (ec != std::errc() || p != tok.data() + tok.size() || k == 0) {
      return Status::InvalidArgument("bad cut-off '" + std::string(tok) +
                                     "' (expected a list like 10,100,500 of integers >= 1)");
    }
    ks.push_back(k);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (ks.empty()) return Status::InvalidArgument("empty list of cut-offs");
  return ks;
}

}  // namespace pgraph::tools
