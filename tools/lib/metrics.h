#pragma once
// Ranking metrics for `pgraph eval`: pure functions over 1-based ranks, and a small
// accumulator that averages them over queries.
//
// A rank is the 1-based position of a relevant item in a ranked candidate list (1 = first).
// kUnranked (0) marks a relevant item that could not be ranked at all (for example an item
// the store does not know): it scores 0 on every metric but still counts in the means.
//
// Definitions (one relevant item per query unless stated):
//  - hit-rate@K   1 if rank <= K, else 0.
//  - MRR          1 / rank.
//  - scaled MRR   1 / ceil(rank / scale), the PinSage paper's MRR (scale 100 over 5M
//                 candidates): ranks 1..100 all score 1, 101..200 score 1/2, ...
//  - NDCG@K       1 / log2(rank + 1) if rank <= K, else 0 (the ideal DCG of one relevant
//                 item is 1).
// Several relevant items per query (the LightGCN protocol); `ranks` are the positions of
// every relevant item in one ranked list (distinct, other relevant items included):
//  - recall@K     |{r in ranks : r <= K}| / |ranks|   (0 for an empty list).
//  - NDCG@K       sum_{r <= K} 1 / log2(r + 1), divided by the ideal
//                 sum_{j = 1 .. min(K, |ranks|)} 1 / log2(j + 1).
//
// All functions are pure and thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace pgraph::tools {

inline constexpr std::uint64_t kUnranked = 0;

double HitAt(std::uint64_t rank, std::uint64_t k);
double ReciprocalRank(std::uint64_t rank);
// Requires: scale >= 1.
double ScaledReciprocalRank(std::uint64_t rank, std::uint64_t scale = 100);
double NdcgAt(std::uint64_t rank, std::uint64_t k);

double RecallAt(std::span<const std::uint64_t> ranks, std::uint64_t k);
double NdcgAt(std::span<const std::uint64_t> ranks, std::uint64_t k);

// Named metric values in a fixed order, e.g. {"hr@10", 0.17}, {"mrr", 0.08}.
using MetricList = std::vector<std::pair<std::string, double>>;

// Sums per-query metrics and reports their means. Not thread-safe: keep one per thread and
// Merge() them. Both kinds of queries may be mixed, though a protocol uses one.
class MetricAccumulator {
 public:
  // `ks`: the cut-offs reported (e.g. 10, 100, 500); `mrr_scale` as ScaledReciprocalRank.
  explicit MetricAccumulator(std::vector<std::uint64_t> ks, std::uint64_t mrr_scale = 100);

  // One query with one relevant item: hr@K, ndcg@K for every K, mrr and mrr_scaled.
  void AddSingle(std::uint64_t rank);
  // One query with several relevant items: recall@K and ndcg@K for every K.
  void AddMulti(std::span<const std::uint64_t> ranks);
  void Merge(const MetricAccumulator& other);

  std::uint64_t single_queries() const { return single_; }
  std::uint64_t multi_queries() const { return multi_; }

  // Means over the single queries: hr@K for each K, ndcg@K for each K, mrr, mrr_scaled.
  MetricList SingleMeans() const;
  // Means over the multi queries: recall@K for each K, then ndcg@K for each K.
  MetricList MultiMeans() const;

 private:
  std::vector<std::uint64_t> ks_;
  std::uint64_t mrr_scale_;
  std::uint64_t single_ = 0, multi_ = 0;
  std::vector<double> hr_, ndcg_single_, recall_, ndcg_multi_;
  double mrr_ = 0, mrr_scaled_ = 0;
};

}  // namespace pgraph::tools
