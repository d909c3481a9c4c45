// Searcher: level one (bucket probes, collision counts), level two (Weak-AND threshold),
// exact re-ranking.
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <array>
#include <atomic>
#include <mutex>

#include "ann/lsh_impl.h"
#include "ann/topk.h"

namespace pgraph::ann {

struct Searcher::Scratch {
  std::vector<std::uint8_t> counts;  // per item: tables collided in this query, then 0 again
  std::vector<NodeId> touched;
  std::vector<NodeId> survivors;
  std::vector<float> scores;
  std::vector<float> proj;
  std::vector<std::uint32_t> sigs;
  std::vector<std::uint32_t> order;  // bit positions sorted by margin
  internal::TopK top;
};

struct Searcher::ScratchPool {
  tbb::enumerable_thread_specific<Scratch> local;
};

Searcher::Searcher(const LshIndex& index, const Embeddings& embeddings)
    : index_(index), embeddings_(embeddings), scratch_(std::make_unique<ScratchPool>()) {
  PGRAPH_CHECK(index.items() == embeddings.rows());
  PGRAPH_CHECK(index.dim() == embeddings.dim());
}

Searcher::~Searcher() = default;

Result<std::vector<Neighbor>> Searcher::Search(std::span<const float> query,
                                               const SearchOptions& options,
                                               SearchStats* stats) const {
  const LshIndex::Impl& ix = *index_.impl_;
  if (query.size() != ix.dim) {
    return Status::InvalidArgument("search: query has " + std::to_string(query.size()) +
                                   " values, embeddings have dim " + std::to_string(ix.dim));
  }
  if (options.k < 1) return Status::InvalidArgument("search: k must be >= 1");
  const std::uint32_t probes = std::min(options.probes, ix.bits);
  Scratch& s = scratch_->local.local();
  if (s.counts.size() != ix.items) s.counts.assign(ix.items, 0);
  s.proj.resize(std::size_t{ix.tables} * ix.bits);
  s.sigs.resize(ix.tables);
  s.touched.clear();
  s.survivors.clear();

  // Level one: the query's bucket in every table, plus the `probes` buckets reached by
  // flipping the bits whose hyperplanes pass closest to the query.
  ix.Hash(query.data(), s.proj.data(), s.sigs.data());
  std::uint8_t* counts = s.counts.data();
  auto visit = [&](std::uint32_t id) {
    if (counts[id]++ == 0) s.touched.push_back(id);
  };
  s.order.resize(ix.bits);
  for (std::uint32_t t = 0; t < ix.tables; ++t) {
    const std::uint32_t key = s.sigs[t];
    const auto [b, e] = ix.Find(t, key);
    ix.ids.ForEach(b, e, visit);
    if (probes == 0) continue;
    const float* margin = s.proj.data() + std::size_t{t} * ix.bits;
    for (std::uint32_t j = 0; j < ix.bits; ++j) s.order[j] = j;
    std::partial_sort(s.order.begin(), s.order.begin() + probes, s.order.end(),
                      [&](std::uint32_t a, std::uint32_t c) {
                        return std::abs(margin[a]) < std::abs(margin[c]);
                      });
    for (std::uint32_t p = 0; p < probes; ++p) {
      const auto [pb, pe] = ix.Find(t, key ^ (1u << s.order[p]));
      ix.ids.ForEach(pb, pe, visit);
    }
  }

  // Level two: the Weak-AND threshold theta on the collision counts.
  std::array<std::uint64_t, 257> at_least{};  // at_least[c]: candidates seen in >= c tables
  for (NodeId id : s.touched) ++at_least[counts[id]];
  for (int c = 255; c >= 0; --c) at_least[c] += at_least[c + 1];
  std::uint32_t theta = options.theta;
  if (theta == 0) {
    theta = 1;
    for (std::uint32_t c = ix.tables; c >= 1; --c) {
      if (at_least[c] >= options.candidates) {
        theta = c;
        break;
      }
    }
  }
  theta = std::min<std::uint32_t>(theta, 256);
  std::uint64_t cap = options.max_candidates;
  if (cap == 0) cap = options.theta == 0 ? 2 * options.candidates : ~0ull;
  cap = std::max<std::uint64_t>(cap, 1);
  // With a cap below the survivors, keep whole count levels from the top, then part of the
  // next level in the order candidates were first seen.
  std::uint32_t full = theta;  // every candidate with count >= full is kept
  while (full <= 255 && at_least[full] > cap) ++full;
  std::uint64_t partial = full > theta ? cap - at_least[full] : 0;
  const NodeId skip = options.exclude;
  for (NodeId id : s.touched) {
    const std::uint8_t c = counts[id];
    counts[id] = 0;
    if (id == skip) continue;
    if (c >= full) {
      s.survivors.push_back(id);
    } else if (partial > 0 && c == full - 1) {
      s.survivors.push_back(id);
      --partial;
    }
  }

  // Re-rank by exact inner product (Score prefetches rows ahead of the dot products).
  s.scores.resize(s.survivors.size());
  embeddings_.Score(query, s.survivors, s.scores);
  s.top.Reset(options.k);
  for (std::size_t i = 0; i < s.survivors.size(); ++i) {
    if (s.top.MayEnter(s.scores[i])) s.top.Push(s.survivors[i], s.scores[i]);
  }
  if (stats) {
    stats->touched = s.touched.size();
    stats->reranked = s.survivors.size();
    stats->theta = theta;
  }
  return s.top.Take();
}

Result<std::vector<std::vector<Neighbor>>> Searcher::SearchBatch(
    std::span<const float> queries, const SearchOptions& options,
    std::span<const NodeId> exclude) const {
  const std::uint32_t d = index_.dim();
  if (queries.size() % d != 0) {
    return Status::InvalidArgument("search: query length " + std::to_string(queries.size()) +
                                   " is not a multiple of dim " + std::to_string(d));
  }
  const std::size_t m = queries.size() / d;
  if (!exclude.empty() && exclude.size() != m) {
    return Status::InvalidArgument("search: exclude must hold one id per query");
  }
  std::vector<std::vector<Neighbor>> out(m);
  std::mutex mu;
  Status first_error;  // Guarded by mu
  std::atomic<bool> failed{false};
  tbb::parallel_for(std::size_t{0}, m, [&](std::size_t q) {
    if (failed.load(std::memory_order_relaxed)) return;
    SearchOptions o = options;
    if (!exclude.empty()) o.exclude = exclude[q];
    auto r = Search(queries.subspan(q * d, d), o);
    if (!r.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = r.status();
      failed = true;
      return;
    }
    out[q] = std::move(r).value();
  });
  if (!first_error.ok()) return first_error;
  return out;
}

}  // namespace pgraph::ann
