// The evaluation protocols (tools/lib/eval.h) on tiny stores with hand-computed ranks.
#include "tools/lib/eval.h"

#include <tbb/global_control.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "storage/store.h"
#include "test/support/temp_dir.h"

namespace pgraph::tools {
namespace {

using Catch::Detail::Approx;
using test::TempDir;
using test::WriteFile;

double Value(const MetricList& m, const std::string& name) {
  for (const auto& [n, v] : m) {
    if (n == name) return v;
  }
  FAIL("no metric " << name);
  return 0;
}

// A store ingested from `edges` (item<TAB>context lines), with an `embedding` column holding
// `vectors` by external item name (width d; items without a vector get zeros).
struct TinyStore {
  TempDir tmp;
  std::string dir;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<storage::Graph> graph;
  std::unique_ptr<storage::IdMap> items, contexts;

  TinyStore(const std::string& edges, const std::map<std::string, std::vector<float>>& vectors,
            std::uint32_t d) {
    dir = tmp.Sub("store");
    WriteFile(tmp.Sub("edges.tsv"), edges);
    storage::IngestOptions o;
    o.store_dir = dir;
    o.edges_path = tmp.Sub("edges.tsv");
    o.header = 0;
    o.progress = false;
    o.threads = 1;
    auto r = storage::Ingest(o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    {
      auto s = storage::Store::Open(dir, storage::StoreOptions{});
      REQUIRE(s.ok());
      auto ids = storage::IdMap::Open(**s, NodeKind::kItem);
      REQUIRE(ids.ok());
      std::vector<float> rows((*s)->num_items() * d, 0.0f);
      for (const auto& [name, v] : vectors) {
        auto id = (*ids)->Find(name);
        REQUIRE(id.ok());
        REQUIRE(v.size() == d);
        std::copy(v.begin(), v.end(), rows.begin() + *id * d);
      }
      auto update = (*s)->BeginUpdate();
      REQUIRE(update.ok());
      storage::ColumnSpec spec;
      spec.name = storage::columns::kEmbedding;
      spec.dtype = storage::DType::kF32;
      spec.width = d;
      auto w = (*update)->AddColumn(spec);
      REQUIRE(w.ok());
      REQUIRE((*w)->AppendValues<float>(rows).ok());
      REQUIRE((*update)->Publish().ok());
    }
    storage::StoreOptions ro;
    ro.read_only = true;
    auto s = storage::Store::Open(dir, ro);
    REQUIRE(s.ok());
    store = std::move(*s);
    auto g = storage::Graph::Open(*store);
    REQUIRE(g.ok());
    graph = std::move(*g);
    auto i = storage::IdMap::Open(*store, NodeKind::kItem);
    auto c = storage::IdMap::Open(*store, NodeKind::kContext);
    REQUIRE(i.ok());
    REQUIRE(c.ok());
    items = std::move(*i);
    contexts = std::move(*c);
  }

  NodeId Item(const std::string& name) const {
    auto id = items->Find(name);
    REQUIRE(id.ok());
    return *id;
  }
  NodeId Context(const std::string& name) const {
    auto id = contexts->Find(name);
    REQUIRE(id.ok());
    return *id;
  }
};

// u1: a b c; u2: d e f.  Scores by dot with a = (1, 0): b .9, d .8, c .5, e .1, f -1.
const char* kEdges = "a\tu1\nb\tu1\nc\tu1\nd\tu2\ne\tu2\nf\tu2\n";
const std::map<std::string, std::vector<float>> kVectors = {{"a", {1, 0}},    {"b", {0.9f, 0}},
                                                            {"c", {0.5f, 0}}, {"d", {0.8f, 0}},
                                                            {"e", {0.1f, 0}}, {"f", {-1, 0}}};

std::unique_ptr<Scorer> DotScorer(const TinyStore& s) {
  auto scorer = MakeColumnScorer(*s.store, storage::columns::kEmbedding, Similarity::kDot,
                                 Aggregation::kMean);
  INFO(scorer.status().ToString());
  REQUIRE(scorer.ok());
  return std::move(*scorer);
}

TEST_CASE("eval: pairs protocol ranks by hand", "[tools]") {
  TinyStore s(kEdges, kVectors, 2);
  auto scorer = DotScorer(s);
  EvalOptions o;
  o.ks = {1, 2, 3};
  const NodeId a = s.Item("a"), c = s.Item("c"), e = s.Item("e");
  SECTION("no context: every item but q") {
    // (a, c): b .9 > d .8 > c .5 -> rank 3.
    PairQuery p{a, c, kInvalidNode};
    auto r = EvaluatePairs(*scorer, *s.graph, std::span<const PairQuery>(&p, 1), o);
    REQUIRE(r.ok());
    CHECK(r->queries == 1);
    CHECK(Value(r->metrics, "hr@2") == 0.0);
    CHECK(Value(r->metrics, "hr@3") == 1.0);
    CHECK(Value(r->metrics, "mrr") == Approx(1.0 / 3));
    CHECK(Value(r->metrics, "mrr_scaled") == 1.0);
    CHECK(Value(r->metrics, "ndcg@3") == Approx(0.5));
  }
  SECTION("a context's items are left out, never the target") {
    // (a, c, u1): u1 has a, b (and c, the target) -> d .8 > c .5 -> rank 2.
    // (a, e, u2): u2 has d, f (and e) -> b .9 > c .5 > e .1 -> rank 3.
    std::vector<PairQuery> ps = {{a, c, s.Context("u1")}, {a, e, s.Context("u2")}};
    auto r = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(r.ok());
    CHECK(r->queries == 2);
    CHECK(Value(r->metrics, "hr@1") == 0.0);
    CHECK(Value(r->metrics, "hr@2") == 0.5);
    CHECK(Value(r->metrics, "mrr") == Approx((0.5 + 1.0 / 3) / 2));
    o.exclude_seen = false;  // then (a, c) is rank 3 and (a, e) rank 4
    auto all = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(all.ok());
    CHECK(Value(all->metrics, "mrr") == Approx((1.0 / 3 + 1.0 / 4) / 2));
  }
  SECTION("unknown pairs are misses unless skipped") {
    std::vector<PairQuery> ps = {{a, c, kInvalidNode}, {kInvalidNode, kInvalidNode, kInvalidNode}};
    auto r = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(r.ok());
    CHECK(r->queries == 2);
    CHECK(r->unknown == 1);
    CHECK(Value(r->metrics, "hr@3") == 0.5);
    o.skip_unknown = true;
    auto skipped = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(skipped.ok());
    CHECK(skipped->queries == 1);
    CHECK(skipped->skipped == 1);
    CHECK(Value(skipped->metrics, "hr@3") == 1.0);
  }
  SECTION("sampled candidates: the pool never holds excluded items") {
    // (a, e, u2) with 2 sampled candidates: eligible are b and c only (a is q; d, f seen),
    // both score above e -> rank 3 whatever the sample.
    PairQuery p{a, e, s.Context("u2")};
    o.candidates = 2;
    auto r = EvaluatePairs(*scorer, *s.graph, std::span<const PairQuery>(&p, 1), o);
    REQUIRE(r.ok());
    CHECK(Value(r->metrics, "mrr") == Approx(1.0 / 3));
    o.candidates = 1;  // one of b, c -> rank 2
    r = EvaluatePairs(*scorer, *s.graph, std::span<const PairQuery>(&p, 1), o);
    REQUIRE(r.ok());
    CHECK(Value(r->metrics, "mrr") == Approx(0.5));
  }
}

TEST_CASE("eval: test protocol ranks by hand", "[tools]") {
  // u3 has a and b in the store; its query is their mean (.95, 0):
  // unseen items by score: d .76, c .475, e .095, f -.95.
  TinyStore s(std::string(kEdges) + "a\tu3\nb\tu3\n", kVectors, 2);
  auto scorer = DotScorer(s);
  EvalOptions o;
  o.ks = {1, 3};
  TestQuery q;
  q.context = s.Context("u3");
  q.items = {s.Item("c"), s.Item("e")};  // ranks 2 and 3 (d first)
  auto r = EvaluateTest(*scorer, *s.graph, std::span<const TestQuery>(&q, 1), o);
  REQUIRE(r.ok());
  CHECK(r->protocol == "test");
  CHECK(r->queries == 1);
  CHECK(Value(r->metrics, "recall@1") == 0.0);
  CHECK(Value(r->metrics, "recall@3") == 1.0);
  // DCG@3 = 1/log2(3) + 1/log2(4); IDCG@3 = 1 + 1/log2(3).
  CHECK(Value(r->metrics, "ndcg@3") == Approx((0.6309298 + 0.5) / 1.6309298));
  // An unknown held-out item halves recall.
  q.unknown_items = 1;
  r = EvaluateTest(*scorer, *s.graph, std::span<const TestQuery>(&q, 1), o);
  REQUIRE(r.ok());
  CHECK(Value(r->metrics, "recall@3") == Approx(2.0 / 3));
}

TEST_CASE("eval: item-kNN is the cosine of context vectors", "[tools]") {
  // u1: a b c; u2: d e; u3: a d.  cos(a, b) = cos(a, c) = 1/sqrt(2), cos(a, d) = 1/2.
  TinyStore s("a\tu1\nb\tu1\nc\tu1\nd\tu2\ne\tu2\na\tu3\nd\tu3\n", {}, 1);
  auto knn = MakeItemKnnScorer(*s.graph, false, Aggregation::kMean);
  std::vector<float> scores(s.graph->num_items());
  REQUIRE(knn->ScoreFromItem(s.Item("a"), scores).ok());
  CHECK(scores[s.Item("a")] == Approx(1.0));
  CHECK(scores[s.Item("b")] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(scores[s.Item("c")] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(scores[s.Item("d")] == Approx(0.5));
  CHECK(scores[s.Item("e")] == 0.0f);
  // History {b, e}: sum of cosines. For d: cos(b,d) = 0, cos(e,d) = 1/sqrt(2).
  const NodeId hist[2] = {s.Item("b"), s.Item("e")};
  REQUIRE(knn->ScoreFromItems(hist, scores).ok());
  CHECK(scores[s.Item("d")] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(scores[s.Item("c")] == Approx(1.0));  // cos(b, c) = 1
  CHECK(scores[s.Item("a")] == Approx(1.0 / std::sqrt(2.0)));
  auto knn_max = MakeItemKnnScorer(*s.graph, false, Aggregation::kMax);
  REQUIRE(knn_max->ScoreFromItems(hist, scores).ok());
  CHECK(scores[s.Item("a")] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(scores[s.Item("e")] == Approx(1.0));
}

TEST_CASE("eval: ties are broken fairly and reproducibly", "[tools]") {
  // 101 items with identical (zero) embeddings: the target lands uniformly among the 100
  // candidates, so hr@10 is about 0.1 whatever the thread count.
  std::string edges;
  for (int i = 0; i <= 100; ++i)
    edges += "i" + std::to_string(i) + "\tc" + std::to_string(i % 9) + "\n";
  TinyStore s(edges, {}, 4);
  auto scorer = DotScorer(s);
  std::vector<PairQuery> ps;
  for (NodeId k = 0; k < 3000; ++k) ps.push_back({k % 101, (k * 37 + 1) % 101, kInvalidNode});
  ps.erase(std::remove_if(ps.begin(), ps.end(), [](const PairQuery& p) { return p.q == p.item; }),
           ps.end());
  EvalOptions o;
  o.ks = {10, 50};
  double hr1 = 0, hr2 = 0;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    auto r = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(r.ok());
    hr1 = Value(r->metrics, "hr@10");
    CHECK(Value(r->metrics, "hr@50") == Approx(0.5).margin(0.04));
  }
  {
    tbb::global_control two(tbb::global_control::max_allowed_parallelism, 2);
    auto r = EvaluatePairs(*scorer, *s.graph, ps, o);
    REQUIRE(r.ok());
    hr2 = Value(r->metrics, "hr@10");
  }
  CHECK(hr1 == hr2);
  CHECK(hr1 == Approx(0.1).margin(0.025));
}

// Scores one query at a time through a scorer (Scorer's default batch of 1).
class OneAtATime final : public Scorer {
 public:
  explicit OneAtATime(const Scorer& s) : s_(s) {}
  std::uint64_t num_items() const override { return s_.num_items(); }
  Status ScoreFromItem(NodeId q, std::span<float> scores) const override {
    return s_.ScoreFromItem(q, scores);
  }
  Status ScoreFromItems(std::span<const NodeId> items, std::span<float> scores) const override {
    return s_.ScoreFromItems(items, scores);
  }

 private:
  const Scorer& s_;
};

TEST_CASE("eval: batched scoring (BLAS) gives the scores and ranks of one query at a time",
          "[tools]") {
  // 300 items with random vectors; pairs between them.
  std::string edges;
  std::map<std::string, std::vector<float>> vectors;
  std::uint64_t x = 12345;
  auto next = [&x] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>((x >> 40) & 0xffff) / 65536.0f - 0.5f;
  };
  for (int i = 0; i < 300; ++i) {
    const std::string name = "i" + std::to_string(i);
    edges += name + "\tc" + std::to_string(i % 17) + "\n";
    std::vector<float> v(24);
    for (float& f : v) f = next();
    vectors[name] = v;
  }
  TinyStore s(edges, vectors, 24);
  auto scorer = DotScorer(s);
  const OneAtATime single(*scorer);
  REQUIRE(single.batch_size() == 1);
  if (scorer->batch_size() == 1) WARN("no BLAS in this process: both paths are the same");
  const std::uint64_t n = scorer->num_items();
  std::vector<NodeId> qs = {0, 5, 17, 299, 5};
  std::vector<float> batch(qs.size() * n), one(n);
  REQUIRE(scorer->ScoreFromItemBatch(qs, batch).ok());
  double worst = 0;
  for (std::size_t j = 0; j < qs.size(); ++j) {
    REQUIRE(scorer->ScoreFromItem(qs[j], one).ok());
    for (std::uint64_t v = 0; v < n; ++v) {
      worst = std::max(worst, static_cast<double>(std::fabs(batch[j * n + v] - one[v])));
    }
  }
  CHECK(worst < 1e-5);
  std::vector<PairQuery> ps;
  for (NodeId k = 0; k < 2000; ++k) ps.push_back({k % 300, (k * 7 + 3) % 300, kInvalidNode});
  ps.erase(std::remove_if(ps.begin(), ps.end(), [](const PairQuery& p) { return p.q == p.item; }),
           ps.end());
  EvalOptions o;
  o.ks = {1, 10, 50};
  auto a = EvaluatePairs(*scorer, *s.graph, ps, o);
  auto b = EvaluatePairs(single, *s.graph, ps, o);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->queries == b->queries);
  for (const auto& [name, value] : b->metrics) CHECK(Value(a->metrics, name) == value);
}

// Two tastes, x and y; h1 and h2 are the history. Candidates: m (a little of both), p and q
// (strongly x), r (strongly y), s (neither). The mean vector ranks m, which is likely under
// neither history item alone, first; the softmax mixture ranks what some history item
// predicts above it.
TEST_CASE("eval: softmax aggregation mixes each history item's distribution", "[tools]") {
  const std::vector<float> rows = {1,     0,      // 0 h1
                                   0,     1,      // 1 h2
                                   0.45f, 0.45f,  // 2 m
                                   0.9f,  -0.2f,  // 3 p
                                   0.85f, -0.2f,  // 4 q
                                   -0.2f, 0.9f,   // 5 r
                                   0,     0};     // 6 s
  const float tau = 0.1f;
  auto soft = MakeMatrixScorer(rows, 2, Similarity::kDot, Aggregation::kSoftmax, tau);
  auto mean = MakeMatrixScorer(rows, 2, Similarity::kDot, Aggregation::kMean);
  REQUIRE(soft.ok());
  REQUIRE(mean.ok());
  const std::vector<NodeId> history = {0, 1};
  std::vector<float> s(7), m(7);
  REQUIRE((*soft)->ScoreFromItems(history, s).ok());
  REQUIRE((*mean)->ScoreFromItems(history, m).ok());
  // By hand: P(v | j) = exp(s_jv / tau) / sum over w != j of exp(s_jw / tau); j itself left out.
  auto dot = [&](int a, int b) {
    return rows[2 * a] * rows[2 * b] + rows[2 * a + 1] * rows[2 * b + 1];
  };
  auto prob = [&](int j, int v) {
    double z = 0;
    for (int w = 0; w < 7; ++w) {
      if (w != j) z += std::exp(dot(j, w) / tau);
    }
    return v == j ? 0.0 : std::exp(dot(j, v) / tau) / z;
  };
  for (int v = 0; v < 7; ++v) {
    INFO("item " << v);
    CHECK(s[v] == Approx(std::log((prob(0, v) + prob(1, v)) / 2)).epsilon(1e-5));
  }
  CHECK(m[2] > m[3]);  // mean: m (.45) above p (.35)
  CHECK(s[3] > s[2]);  // mixture: p, likely under h1, above m
  CHECK(s[5] > s[2]);
  CHECK(s[2] > s[6]);
  // One history item: the same order as scoring from that item.
  std::vector<float> one(7), direct(7);
  const NodeId h1 = 0;
  REQUIRE((*soft)->ScoreFromItems(std::span<const NodeId>(&h1, 1), one).ok());
  REQUIRE((*soft)->ScoreFromItem(h1, direct).ok());
  for (int v = 2; v < 6; ++v) CHECK((one[v] > one[v + 1]) == (direct[v] > direct[v + 1]));
  // A temperature must be positive.
  CHECK(MakeMatrixScorer(rows, 2, Similarity::kDot, Aggregation::kSoftmax, 0)
            .status()
            .IsInvalidArgument());
  CHECK(ParseAggregation("softmax").ok());
  CHECK(!ParseAggregation("sum").ok());
}

TEST_CASE("eval: reading pair and test files", "[tools]") {
  TinyStore s(kEdges, kVectors, 2);
  TempDir tmp;
  WriteFile(tmp.Sub("pairs.tsv"), "# q i user\na\tc\tu1\na e\nzz\tc\tu1\nb\tc\tnobody\n");
  auto pq = ReadPairQueries(tmp.Sub("pairs.tsv"), *s.items, s.contexts.get());
  INFO(pq.status().ToString());
  REQUIRE(pq.ok());
  REQUIRE(pq->queries.size() == 4);
  CHECK(pq->queries[0].q == s.Item("a"));
  CHECK(pq->queries[0].item == s.Item("c"));
  CHECK(pq->queries[0].context == s.Context("u1"));
  CHECK(pq->queries[1].context == kInvalidNode);
  CHECK(pq->queries[2].q == kInvalidNode);
  CHECK(pq->unknown == 1);
  CHECK(pq->unknown_contexts == 1);

  WriteFile(tmp.Sub("test.tsv"), "u1\td\nu2\ta\nu1\te\nu1\td\nu1\tnew\nghost\tb\n");
  auto tq = ReadTestQueries(tmp.Sub("test.tsv"), *s.items, *s.contexts);
  REQUIRE(tq.ok());
  REQUIRE(tq->queries.size() == 3);
  CHECK(tq->queries[0].context == s.Context("u1"));
  CHECK(tq->queries[0].items == std::vector<NodeId>{s.Item("d"), s.Item("e")});
  CHECK(tq->queries[0].unknown_items == 1);
  CHECK(tq->queries[2].context == kInvalidNode);
  CHECK(tq->unknown_contexts == 1);
  CHECK(tq->lines == 6);

  WriteFile(tmp.Sub("bad.tsv"), "a\n");
  auto bad = ReadPairQueries(tmp.Sub("bad.tsv"), *s.items, nullptr);
  REQUIRE(!bad.ok());
  CHECK(bad.status().IsInvalidArgument());
  CHECK(bad.status().message().find("line 1") != std::string::npos);
  CHECK(ReadPairQueries(tmp.Sub("missing.tsv"), *s.items, nullptr).status().IsNotFound());

  auto ks = ParseKs("10,100,500");
  REQUIRE(ks.ok());
  CHECK(*ks == std::vector<std::uint64_t>{10, 100, 500});
  CHECK(!ParseKs("10,,5").ok());
  CHECK(!ParseKs("0").ok());
  CHECK(!ParseKs("").ok());
}

}  // namespace
}  // namespace pgraph::tools
