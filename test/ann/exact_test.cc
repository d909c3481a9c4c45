#include <catch2/catch.hpp>

#include <algorithm>

#include "ann/ann.h"
#include "ann/kernels.h"
#include "test/ann/ann_test_util.h"

namespace pgraph::ann {
namespace {

// The reference: score every row with the same float kernel, sort all rows.
std::vector<Neighbor> NaiveScan(const std::vector<float>& data, std::uint32_t d, const float* q,
                                std::uint32_t k, NodeId exclude = kInvalidNode) {
  std::vector<Neighbor> all;
  for (std::uint64_t i = 0; i < data.size() / d; ++i) {
    if (i == exclude) continue;
    all.push_back({static_cast<NodeId>(i), internal::Dot(q, data.data() + i * d, d)});
  }
  std::sort(all.begin(), all.end(), [](const Neighbor& a, const Neighbor& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
  all.resize(std::min<std::size_t>(k, all.size()));
  return all;
}

TEST_CASE("exact: equals a naive scan", "[ann]") {
  for (std::uint32_t d : {1u, 7u, 32u, 100u}) {
    const std::uint64_t n = 3000;
    auto data = testing::Gaussian(n, d, d);
    auto queries = testing::Gaussian(70, d, d + 1000);  // > one query group
    auto emb = Embeddings::FromFloats(data, d);
    REQUIRE(emb.ok());
    for (std::uint32_t k : {1u, 10u, 50u}) {
      auto got = ExactSearch(*emb, queries, k);
      REQUIRE(got.ok());
      REQUIRE(got->size() == 70);
      for (std::size_t q = 0; q < 70; ++q) {
        INFO("d=" << d << " k=" << k << " q=" << q);
        CHECK((*got)[q] == NaiveScan(data, d, &queries[q * d], k));
      }
    }
  }
}

TEST_CASE("exact: ties break by id, duplicates and exclusions", "[ann]") {
  const std::uint32_t d = 4;
  std::vector<float> data;
  for (int i = 0; i < 50; ++i) data.insert(data.end(), {1, 0, 0, 0});  // all tied
  auto emb = Embeddings::FromFloats(data, d);
  REQUIRE(emb.ok());
  std::vector<float> q = {1, 0, 0, 0};
  std::vector<NodeId> exclude = {0};
  auto got = ExactSearch(*emb, q, 3, exclude);
  REQUIRE(got.ok());
  REQUIRE((*got)[0].size() == 3);
  CHECK((*got)[0][0].id == 1);
  CHECK((*got)[0][1].id == 2);
  CHECK((*got)[0][2].id == 3);
}

TEST_CASE("exact: k larger than the data returns every row", "[ann]") {
  auto data = testing::Gaussian(5, 8, 1);
  auto emb = Embeddings::FromFloats(data, 8);
  REQUIRE(emb.ok());
  auto got = ExactSearch(*emb, std::span<const float>(data).subspan(0, 8), 100);
  REQUIRE(got.ok());
  CHECK((*got)[0].size() == 5);
  CHECK((*got)[0] == NaiveScan(data, 8, data.data(), 100));
}

TEST_CASE("exact: bad arguments are InvalidArgument", "[ann]") {
  auto data = testing::Gaussian(10, 8, 1);
  auto emb = Embeddings::FromFloats(data, 8);
  REQUIRE(emb.ok());
  std::vector<float> q(8);
  CHECK(ExactSearch(*emb, q, 0).status().IsInvalidArgument());
  CHECK(ExactSearch(*emb, std::span<const float>(q).subspan(0, 5), 1).status()
            .IsInvalidArgument());
  std::vector<NodeId> two = {1, 2};
  CHECK(ExactSearch(*emb, q, 1, two).status().IsInvalidArgument());
  CHECK(Embeddings::FromFloats(data, 0).status().IsInvalidArgument());
  CHECK(Embeddings::FromFloats(std::span<const float>(data).subspan(0, 7), 8).status()
            .IsInvalidArgument());
}

}  // namespace
}  // namespace pgraph::ann
