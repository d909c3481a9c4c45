#include <catch2/catch.hpp>

#include <set>

#include "ann/ann.h"
#include "ann/lsh_impl.h"
#include "test/ann/ann_test_util.h"

namespace pgraph::ann {
namespace {

struct Fixture {
  std::uint64_t n;
  std::uint32_t d;
  std::vector<float> data;
  Embeddings emb;
  Fixture(std::uint64_t n_, std::uint32_t d_, std::uint32_t clusters, float spread)
      : n(n_), d(d_), data(testing::Clustered(n_, d_, clusters, spread, 42)) {
    emb = Embeddings::FromFloats(data, d).value();
  }
  // Planted neighbourhoods: n / 20 sub-clusters of ~20 items in n / 400 communities.
  Fixture(std::uint64_t n_, std::uint32_t d_, float noise)
      : n(n_), d(d_),
        data(testing::Planted(n_, d_, static_cast<std::uint32_t>(n_ / 400), 20, noise, 42)) {
    emb = Embeddings::FromFloats(data, d).value();
  }
  std::span<const float> Row(std::uint64_t i) const {
    return std::span<const float>(data).subspan(i * d, d);
  }
};

// Mean recall@k of `searcher` against exact search over queries = the first `m` rows
// (the query item itself excluded from both).
double MeanRecall(const Fixture& f, const Searcher& searcher, SearchOptions o, std::uint64_t m) {
  double sum = 0;
  for (std::uint64_t q = 0; q < m; ++q) {
    o.exclude = static_cast<NodeId>(q);
    std::vector<NodeId> ex = {o.exclude};
    auto truth = ExactSearch(f.emb, f.Row(q), o.k, ex);
    auto got = searcher.Search(f.Row(q), o);
    REQUIRE(truth.ok());
    REQUIRE(got.ok());
    sum += testing::Recall(*got, (*truth)[0]);
  }
  return sum / m;
}

TEST_CASE("lsh: every item is in exactly one bucket per table, the one it hashes to", "[ann]") {
  Fixture f(3000, 24, 20, 0.8f);
  LshParams p;
  p.tables = 5;
  p.bits = 9;
  auto index = LshIndex::Build(f.emb, p);
  REQUIRE(index.ok());
  const LshIndex& ix = **index;
  CHECK(ix.items() == f.n);
  CHECK(ix.dim() == f.d);
  std::vector<std::uint32_t> sigs(p.tables);
  std::vector<std::vector<int>> seen(p.tables, std::vector<int>(f.n, 0));
  std::uint64_t total = 0;
  for (std::uint32_t t = 0; t < p.tables; ++t) {
    for (std::uint32_t key = 0; key < (1u << p.bits); ++key) {
      auto items = ix.Bucket(t, key);
      CHECK(std::is_sorted(items.begin(), items.end()));
      for (NodeId id : items) ++seen[t][id];
      total += items.size();
    }
  }
  CHECK(total == p.tables * f.n);
  for (std::uint64_t i = 0; i < f.n; ++i) {
    ix.Hash(f.Row(i), sigs);
    for (std::uint32_t t = 0; t < p.tables; ++t) {
      REQUIRE(seen[t][i] == 1);
      auto items = ix.Bucket(t, sigs[t]);
      REQUIRE(std::binary_search(items.begin(), items.end(), static_cast<NodeId>(i)));
    }
  }
  const IndexStats s = ix.Stats();
  CHECK(s.buckets > p.tables);
  CHECK(s.mean_bucket == Approx(double(p.tables * f.n) / s.buckets));
}

TEST_CASE("lsh: a build through the BLAS puts every item where Hash finds it, on hyperplanes too",
          "[ann]") {
  if (storage::CblasSgemm() == nullptr) WARN("no BLAS in this process: both builds use DotBlock");
  const std::uint32_t d = 64;
  Fixture f(1500, d, 10, 0.8f);
  LshParams p;
  p.tables = 8;
  p.bits = 12;
  p.center = false;  // the offsets would move with the rows added below
  const std::size_t np = std::size_t{p.tables} * p.bits;
  // The hyperplanes, from Hash's projections (<plane_p, v>) of the unit vectors.
  auto probe = LshIndex::Build(f.emb, p).value();
  std::vector<std::uint32_t> sigs(p.tables);
  std::vector<float> x0(np), xc(np), planes(np * d);
  std::vector<float> v(d, 0.0f);
  probe->Hash(v, sigs, x0);
  for (std::uint32_t c = 0; c < d; ++c) {
    v.assign(d, 0.0f);
    v[c] = 1.0f;
    probe->Hash(v, sigs, xc);
    for (std::size_t q = 0; q < np; ++q) planes[q * d + c] = xc[q] - x0[q];
  }
  // Rows moved onto a hyperplane (in double) and nudged off it by a few ulps either way:
  // the signs that a second summation order could flip.
  std::vector<float> rows = f.data;
  for (std::uint64_t i = 0; i < 500; ++i) {
    const float* row = f.data.data() + i * d;
    const float* pl = planes.data() + (i % np) * d;
    double pv = -double{x0[i % np]}, pp = 0;  // <plane, row> - offset
    for (std::uint32_t c = 0; c < d; ++c) pv += double{pl[c]} * row[c], pp += double{pl[c]} * pl[c];
    for (int nudge = -3; nudge <= 3; ++nudge) {
      for (std::uint32_t c = 0; c < d; ++c) {
        rows.push_back(static_cast<float>(row[c] - (pv / pp) * pl[c] + nudge * 1e-7 * pl[c]));
      }
    }
  }
  const std::uint64_t n = rows.size() / d;
  auto emb = Embeddings::FromFloats(rows, d).value();
  internal::SetHashWithBlas(true);
  auto blas = LshIndex::Build(emb, p).value();
  internal::SetHashWithBlas(false);
  auto plain = LshIndex::Build(emb, p).value();
  internal::SetHashWithBlas(true);
  std::uint64_t missing = 0, differ = 0, near = 0;
  std::vector<float> proj(np);
  for (std::uint64_t i = 0; i < n; ++i) {
    blas->Hash(std::span<const float>(rows).subspan(i * d, d), sigs, proj);
    for (std::uint32_t t = 0; t < p.tables; ++t) {
      const auto a = blas->Bucket(t, sigs[t]), b = plain->Bucket(t, sigs[t]);
      missing += !std::binary_search(a.begin(), a.end(), static_cast<NodeId>(i));
      differ += a != b;
    }
    for (float x : proj) near += std::fabs(x) < 1e-5f;
  }
  CHECK(near > 500);  // the nudged rows do sit on hyperplanes
  CHECK(missing == 0);
  CHECK(differ == 0);
}

TEST_CASE("lsh: the seed fixes the tables; table t does not depend on L", "[ann]") {
  Fixture f(2000, 16, 10, 0.8f);
  LshParams p;
  p.tables = 3;
  p.bits = 8;
  auto a = LshIndex::Build(f.emb, p).value();
  auto b = LshIndex::Build(f.emb, p).value();
  p.tables = 6;
  auto c = LshIndex::Build(f.emb, p).value();
  p.seed = 99;
  auto other = LshIndex::Build(f.emb, p).value();
  int differ = 0;
  for (std::uint32_t t = 0; t < 3; ++t) {
    for (std::uint32_t key = 0; key < 256; ++key) {
      CHECK(a->Bucket(t, key) == b->Bucket(t, key));
      CHECK(a->Bucket(t, key) == c->Bucket(t, key));
      differ += a->Bucket(t, key) != other->Bucket(t, key);
    }
  }
  CHECK(differ > 0);
}

TEST_CASE("lsh: centering balances buckets of off-centre data", "[ann]") {
  // All vectors in one narrow cone: without centering most land in a few buckets.
  Fixture f(4000, 16, 1, 0.3f);
  LshParams p;
  p.tables = 4;
  p.bits = 10;
  p.center = false;
  const auto plain = LshIndex::Build(f.emb, p).value()->Stats();
  p.center = true;
  const auto centred = LshIndex::Build(f.emb, p).value()->Stats();
  CHECK(centred.max_bucket * 4 < plain.max_bucket);
  CHECK(centred.buckets > plain.buckets);
}

TEST_CASE("lsh: recall@10 on clustered vectors is above 0.9 with the defaults", "[ann]") {
  // 20k unit vectors, 64-d, planted neighbourhoods of ~20 items (cos ~0.85 to the 10th
  // neighbour); default LshParams (32 tables, bits auto = 10) and SearchOptions except a
  // candidate budget scaled to the data. Measured: ~0.99.
  Fixture f(20000, 64, 0.5f);
  auto index = LshIndex::Build(f.emb, LshParams{}).value();
  CHECK(index->params().bits == AutoBits(20000));
  CHECK(AutoBits(20000) == 10);
  CHECK(AutoBits(1000000) == 16);
  Searcher searcher(*index, f.emb);
  SearchOptions o;
  o.candidates = 500;
  const double recall = MeanRecall(f, searcher, o, 300);
  INFO("recall@10 = " << recall);
  CHECK(recall >= 0.9);
  SearchStats stats;
  REQUIRE(searcher.Search(f.Row(0), o, &stats).ok());
  CHECK(stats.reranked <= 2 * o.candidates);
  CHECK(stats.reranked >= 1);
}

TEST_CASE("lsh: more tables never lower recall at fixed theta = 1", "[ann]") {
  Fixture f(8000, 32, 0.5f);
  SearchOptions o;
  o.theta = 1;
  o.probes = 0;
  double last = 0;
  std::vector<std::set<NodeId>> last_found;
  for (std::uint32_t tables : {1u, 2u, 4u, 8u, 16u}) {
    LshParams p;
    p.tables = tables;
    p.bits = 10;
    auto index = LshIndex::Build(f.emb, p).value();
    Searcher searcher(*index, f.emb);
    const double recall = MeanRecall(f, searcher, o, 100);
    INFO("tables=" << tables << " recall=" << recall << " previous=" << last);
    CHECK(recall >= last);
    last = recall;
  }
  CHECK(last > 0.5);
}

TEST_CASE("lsh: an item's own vector finds it first, or never with exclude", "[ann]") {
  Fixture f(5000, 32, 0.5f);
  auto index = LshIndex::Build(f.emb, LshParams{}).value();
  Searcher searcher(*index, f.emb);
  SearchOptions o;
  o.candidates = 200;
  for (std::uint64_t i = 0; i < 200; i += 7) {
    auto r = searcher.Search(f.Row(i), o);
    REQUIRE(r.ok());
    REQUIRE(!r->empty());
    CHECK((*r)[0].id == i);
    o.exclude = static_cast<NodeId>(i);
    auto r2 = searcher.Search(f.Row(i), o);
    REQUIRE(r2.ok());
    CHECK(r2->size() == 10);
    for (const auto& n : *r2) CHECK(n.id != i);
    o.exclude = kInvalidNode;
  }
}

TEST_CASE("lsh: results are sorted, scores exact, batch equals single", "[ann]") {
  Fixture f(4000, 20, 40, 1.0f);
  auto index = LshIndex::Build(f.emb, LshParams{}).value();
  Searcher searcher(*index, f.emb);
  SearchOptions o;
  o.k = 25;
  o.candidates = 300;
  auto queries = testing::Gaussian(30, 20, 5);
  auto batch = searcher.SearchBatch(queries, o);
  REQUIRE(batch.ok());
  for (std::size_t q = 0; q < 30; ++q) {
    auto one = searcher.Search(std::span<const float>(queries).subspan(q * 20, 20), o);
    REQUIRE(one.ok());
    CHECK(*one == (*batch)[q]);
    for (std::size_t r = 0; r < one->size(); ++r) {
      CHECK((*one)[r].score == f.emb.Dot(std::span<const float>(queries).subspan(q * 20, 20),
                                         (*one)[r].id));
      if (r > 0) CHECK((*one)[r - 1].score >= (*one)[r].score);
    }
  }
}

TEST_CASE("lsh: multi-probe and a lower theta only add candidates", "[ann]") {
  Fixture f(6000, 32, 60, 1.0f);
  auto index = LshIndex::Build(f.emb, LshParams{}).value();
  Searcher searcher(*index, f.emb);
  for (std::uint64_t q = 0; q < 20; ++q) {
    SearchOptions o;
    o.theta = 2;
    o.probes = 0;
    SearchStats a, b, c;
    REQUIRE(searcher.Search(f.Row(q), o, &a).ok());
    o.probes = 3;
    REQUIRE(searcher.Search(f.Row(q), o, &b).ok());
    o.theta = 1;
    REQUIRE(searcher.Search(f.Row(q), o, &c).ok());
    CHECK(a.touched <= b.touched);
    CHECK(a.reranked <= b.reranked);
    CHECK(b.reranked <= c.reranked);
    CHECK(c.reranked == c.touched);
  }
}

TEST_CASE("lsh: bad parameters and queries are InvalidArgument", "[ann]") {
  Fixture f(100, 8, 2, 1.0f);
  LshParams p;
  p.tables = 0;
  CHECK(LshIndex::Build(f.emb, p).status().IsInvalidArgument());
  p.tables = 256;
  CHECK(LshIndex::Build(f.emb, p).status().IsInvalidArgument());
  p.tables = 4;
  p.bits = 33;
  CHECK(LshIndex::Build(f.emb, p).status().IsInvalidArgument());
  CHECK(LshIndex::Build(Embeddings(), LshParams{}).status().IsInvalidArgument());
  auto index = LshIndex::Build(f.emb, LshParams{}).value();
  CHECK(index->params().bits == 3);  // AutoBits(100)
  Searcher searcher(*index, f.emb);
  SearchOptions o;
  o.k = 0;
  CHECK(searcher.Search(f.Row(0), o).status().IsInvalidArgument());
  o.k = 1;
  o.probes = 30;  // more than bits: clamped, not an error
  CHECK(searcher.Search(f.Row(0), o).ok());
  o.probes = 0;
  CHECK(searcher.Search(f.Row(0).subspan(0, 7), o).status().IsInvalidArgument());
}

TEST_CASE("lsh: bits = 32 and tiny data work", "[ann]") {
  Fixture f(50, 8, 2, 1.0f);
  LshParams p;
  p.tables = 3;
  p.bits = 32;
  auto index = LshIndex::Build(f.emb, p).value();
  Searcher searcher(*index, f.emb);
  SearchOptions o;
  o.k = 100;
  o.probes = 32;
  auto r = searcher.Search(f.Row(3), o);
  REQUIRE(r.ok());
  CHECK((*r)[0].id == 3);
}

TEST_CASE("lsh: params text round-trips and rejects junk", "[ann]") {
  StoredParams sp;
  sp.params.tables = 7;
  sp.params.bits = 13;
  sp.params.seed = 123456789012345ull;
  sp.params.center = false;
  sp.dim = 48;
  sp.items = 99;
  sp.embedding_version = 5;
  auto back = ParseParams(FormatParams(sp));
  REQUIRE(back.ok());
  CHECK(back->params.tables == 7);
  CHECK(back->params.bits == 13);
  CHECK(back->params.seed == sp.params.seed);
  CHECK(!back->params.center);
  CHECK(back->dim == 48);
  CHECK(back->items == 99);
  CHECK(back->embedding_version == 5);
  CHECK(ParseParams("format=1 tables=x").status().IsInvalidArgument());
  CHECK(ParseParams("tables=3").status().IsInvalidArgument());
  CHECK(ParseParams("format=1 tables=3 bits=40").status().IsInvalidArgument());
  CHECK(ParseParams("format=1 tables=-3").status().IsInvalidArgument());
  CHECK(ParseParams("format=2").status().code() == StatusCode::kNotSupported);
  CHECK(ParseParams("format=1 tables=3 bits=0").status().IsInvalidArgument());
}

}  // namespace
}  // namespace pgraph::ann
