// Ranking metrics (tools/lib/metrics.h) against hand-computed cases.
#include "tools/lib/metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

namespace pgraph::tools {
namespace {

using Catch::Detail::Approx;

double Value(const MetricList& m, const std::string& name) {
  for (const auto& [n, v] : m) {
    if (n == name) return v;
  }
  FAIL("no metric " << name);
  return 0;
}

TEST_CASE("metrics: hit rate", "[tools]") {
  CHECK(HitAt(1, 10) == 1.0);
  CHECK(HitAt(10, 10) == 1.0);
  CHECK(HitAt(11, 10) == 0.0);
  CHECK(HitAt(kUnranked, 10) == 0.0);
  CHECK(HitAt(500, 500) == 1.0);
}

TEST_CASE("metrics: MRR and the paper's scaled MRR", "[tools]") {
  CHECK(ReciprocalRank(1) == 1.0);
  CHECK(ReciprocalRank(4) == 0.25);
  CHECK(ReciprocalRank(kUnranked) == 0.0);
  // 1 / ceil(R / 100)
  CHECK(ScaledReciprocalRank(1) == 1.0);
  CHECK(ScaledReciprocalRank(100) == 1.0);
  CHECK(ScaledReciprocalRank(101) == 0.5);
  CHECK(ScaledReciprocalRank(250) == Approx(1.0 / 3));
  CHECK(ScaledReciprocalRank(1000) == 0.1);
  CHECK(ScaledReciprocalRank(1001) == Approx(1.0 / 11));
  CHECK(ScaledReciprocalRank(kUnranked) == 0.0);
  CHECK(ScaledReciprocalRank(7, 1) == Approx(1.0 / 7));  // scale 1 is plain MRR
}

TEST_CASE("metrics: NDCG with one relevant item", "[tools]") {
  CHECK(NdcgAt(1, 10) == 1.0);
  CHECK(NdcgAt(2, 10) == Approx(1.0 / std::log2(3.0)));  // 0.6309
  CHECK(NdcgAt(3, 10) == Approx(0.5));                   // 1 / log2(4)
  CHECK(NdcgAt(7, 10) == Approx(1.0 / 3));               // 1 / log2(8)
  CHECK(NdcgAt(11, 10) == 0.0);
  CHECK(NdcgAt(kUnranked, 10) == 0.0);
}

TEST_CASE("metrics: recall and NDCG with several relevant items", "[tools]") {
  // Relevant items at positions 1, 3 and 30 of the list.
  const std::vector<std::uint64_t> ranks = {1, 3, 30};
  CHECK(RecallAt(ranks, 20) == Approx(2.0 / 3));
  CHECK(RecallAt(ranks, 2) == Approx(1.0 / 3));
  CHECK(RecallAt(ranks, 30) == 1.0);
  // DCG@20 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@20 = 1 + 1/log2(3) + 1/log2(4) = 2.130930.
  CHECK(NdcgAt(std::span<const std::uint64_t>(ranks), 20) == Approx(1.5 / 2.1309298));
  // K = 2: DCG = 1, IDCG = 1 + 0.6309298.
  CHECK(NdcgAt(std::span<const std::uint64_t>(ranks), 2) == Approx(1.0 / 1.6309298));
  // A perfect list scores 1 and the order of `ranks` does not matter.
  const std::vector<std::uint64_t> perfect = {2, 1};
  CHECK(NdcgAt(std::span<const std::uint64_t>(perfect), 20) == Approx(1.0));
  CHECK(RecallAt(perfect, 1) == 0.5);
  // Unranked items count in the denominators.
  const std::vector<std::uint64_t> with_unknown = {1, kUnranked};
  CHECK(RecallAt(with_unknown, 20) == 0.5);
  CHECK(NdcgAt(std::span<const std::uint64_t>(with_unknown), 20) == Approx(1.0 / 1.6309298));
  CHECK(RecallAt(std::vector<std::uint64_t>{}, 20) == 0.0);
}

TEST_CASE("metrics: accumulator means", "[tools]") {
  MetricAccumulator acc({1, 10});
  acc.AddSingle(1);
  acc.AddSingle(5);
  acc.AddSingle(150);
  acc.AddSingle(kUnranked);
  const MetricList m = acc.SingleMeans();
  REQUIRE(acc.single_queries() == 4);
  CHECK(m[0].first == "hr@1");
  CHECK(m[1].first == "hr@10");
  CHECK(Value(m, "hr@1") == Approx(0.25));
  CHECK(Value(m, "hr@10") == Approx(0.5));
  CHECK(Value(m, "ndcg@10") == Approx((1.0 + 1.0 / std::log2(6.0)) / 4));
  CHECK(Value(m, "mrr") == Approx((1.0 + 0.2 + 1.0 / 150) / 4));
  CHECK(Value(m, "mrr_scaled") == Approx((1.0 + 1.0 + 0.5) / 4));

  // Merging two halves gives the same means.
  MetricAccumulator a({1, 10}), b({1, 10});
  a.AddSingle(1);
  a.AddSingle(5);
  b.AddSingle(150);
  b.AddSingle(kUnranked);
  a.Merge(b);
  const MetricList merged = a.SingleMeans();
  for (std::size_t j = 0; j < m.size(); ++j) CHECK(merged[j].second == Approx(m[j].second));

  MetricAccumulator multi({20});
  multi.AddMulti(std::vector<std::uint64_t>{1, 3, 30});
  multi.AddMulti(std::vector<std::uint64_t>{25});
  const MetricList mm = multi.MultiMeans();
  CHECK(Value(mm, "recall@20") == Approx((2.0 / 3 + 0) / 2));
  CHECK(Value(mm, "ndcg@20") == Approx((1.5 / 2.1309298 + 0) / 2));
}

}  // namespace
}  // namespace pgraph::tools
