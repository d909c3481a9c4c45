#include "tools/lib/metrics.h"

#include <algorithm>
#include <cmath>

namespace pgraph::tools {

double HitAt(std::uint64_t rank, std::uint64_t k) {
  return rank != kUnranked && rank <= k ? 1.0 : 0.0;
}

double ReciprocalRank(std::uint64_t rank) {
  return rank == kUnranked ? 0.0 : 1.0 / static_cast<double>(rank);
}

double ScaledReciprocalRank(std::uint64_t rank, std::uint64_t scale) {
  if (rank == kUnranked) return 0.0;
  if (scale == 0) scale = 1;
  return 1.0 / static_cast<double>((rank + scale - 1) / scale);
}

double NdcgAt(std::uint64_t rank, std::uint64_t k) {
  if (rank == kUnranked || rank > k) return 0.0;
  return 1.0 / std::log2(static_cast<double>(rank) + 1.0);
}

double RecallAt(std::span<const std::uint64_t> ranks, std::uint64_t k) {
  if (ranks.empty()) return 0.0;
  std::uint64_t hits = 0;
  for (std::uint64_t r : ranks) hits += r != kUnranked && r <= k;
  return static_cast<double>(hits) / static_cast<double>(ranks.size());
}

double NdcgAt(std::span<const std::uint64_t> ranks, std::uint64_t k) {
  if (ranks.empty() || k == 0) return 0.0;
  double dcg = 0;
  for (std::uint64_t r : ranks) dcg += NdcgAt(r, k);
  double ideal = 0;
  const std::uint64_t n = std::min<std::uint64_t>(k, ranks.size());
  for (std::uint64_t j = 1; j <= n; ++j) ideal += 1.0 / std::log2(static_cast<double>(j) + 1.0);
  return dcg / ideal;
}

MetricAccumulator::MetricAccumulator(std::vector<std::uint64_t> ks, std::uint64_t mrr_scale)
    : ks_(std::move(ks)),
      mrr_scale_(mrr_scale == 0 ? 1 : mrr_scale),
      hr_(ks_.size(), 0.0),
      ndcg_single_(ks_.size(), 0.0),
      recall_(ks_.size(), 0.0),
      ndcg_multi_(ks_.size(), 0.0) {}

void MetricAccumulator::AddSingle(std::uint64_t rank) {
  ++single_;
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    hr_[j] += HitAt(rank, ks_[j]);
    ndcg_single_[j] += NdcgAt(rank, ks_[j]);
  }
  mrr_ += ReciprocalRank(rank);
  mrr_scaled_ += ScaledReciprocalRank(rank, mrr_scale_);
}

void MetricAccumulator::AddMulti(std::span<const std::uint64_t> ranks) {
  ++multi_;
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    recall_[j] += RecallAt(ranks, ks_[j]);
    ndcg_multi_[j] += NdcgAt(ranks, ks_[j]);
  }
}

void MetricAccumulator::Merge(const MetricAccumulator& other) {
  single_ += other.single_;
  multi_ += other.multi_;
  for (std::size_t j = 0; j < ks_.size() && j < other.ks_.size(); ++j) {
    hr_[j] += other.hr_[j];
    ndcg_single_[j] += other.ndcg_single_[j];
    recall_[j] += other.recall_[j];
    ndcg_multi_[j] += other.ndcg_multi_[j];
  }
  mrr_ += other.mrr_;
  mrr_scaled_ += other.mrr_scaled_;
}

MetricList MetricAccumulator::SingleMeans() const {
  const double n = single_ == 0 ? 1.0 : static_cast<double>(single_);
  MetricList out;
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    out.emplace_back("hr@" + std::to_string(ks_[j]), hr_[j] / n);
  }
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    out.emplace_back("ndcg@" + std::to_string(ks_[j]), ndcg_single_[j] / n);
  }
  out.emplace_back("mrr", mrr_ / n);
  out.emplace_back("mrr_scaled", mrr_scaled_ / n);
  return out;
}

MetricList MetricAccumulator::MultiMeans() const {
  const double n = multi_ == 0 ? 1.0 : static_cast<double>(multi_);
  MetricList out;
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    out.emplace_back("recall@" + std::to_string(ks_[j]), recall_[j] / n);
  }
  for (std::size_t j = 0; j < ks_.size(); ++j) {
    out.emplace_back("ndcg@" + std::to_string(ks_[j]), ndcg_multi_[j] / n);
  }
  return out;
}

}  // namespace pgraph::tools
