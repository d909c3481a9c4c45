// pgraph eval: offline ranking quality of the learned embeddings and of the baselines, on
// held-out related pairs (--pairs) or held-out interactions (--test). The protocols and
// metrics are defined in tools/lib/eval.h; docs/BENCHMARKS.md ("## quality") has numbers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "tools/lib/eval.h"
#include "tools/lib/progress.h"
#include "train/trainer.h"
#include "walker/walker.h"

namespace pgraph::tools {
namespace {

// Personalized PageRank from the query item (or pooled from a history, Pixie-style), by
// the walker's Monte-Carlo estimate. Items no walk reached score 0.
class PprScorer final : public Scorer {
 public:
  PprScorer(std::unique_ptr<walker::WalkGraph> graph, walker::PprOptions options)
      : graph_(std::move(graph)), options_(options) {}

  std::uint64_t num_items() const override { return graph_->num_items(); }

  Status ScoreFromItem(NodeId q, std::span<float> scores) const override {
    PGRAPH_ASSIGN_OR_RETURN(auto ranked, walker::PersonalizedPageRank(*graph_, q, options_));
    Fill(ranked, scores);
    return Status::OK();
  }

  Status ScoreFromItems(std::span<const NodeId> items, std::span<float> scores) const override {
    if (items.empty()) {
      std::fill(scores.begin(), scores.end(), 0.0f);
      return Status::OK();
    }
    PGRAPH_ASSIGN_OR_RETURN(auto ranked, walker::PersonalizedPageRank(*graph_, items, options_));
    Fill(ranked, scores);
    return Status::OK();
  }

 private:
  static void Fill(const std::vector<walker::ScoredItem>& ranked, std::span<float> scores) {
    std::fill(scores.begin(), scores.end(), 0.0f);
    for (const auto& [item, score] : ranked) scores[item] = score;
  }
  std::unique_ptr<walker::WalkGraph> graph_;
  walker::PprOptions options_;
};

struct EvalArgs {
  std::string store, pairs, test;
  std::string ks, methods = "pinsage", column, similarity, aggregate = "auto";
  float aggregate_temperature = 0;
  std::uint64_t candidates = 0, sampled_negatives = 0;
  bool knn_weights = false, keep_seen = false;
  walker::PprOptions ppr;
  EvalOptions eval;
  std::string memory_budget = "auto";
  int threads = 0;
  bool json = false, quiet = false;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    std::string tok =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!tok.empty()) out.push_back(tok);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// *aggregate_used: the aggregation the scorer applies to a history (empty for methods
// without one: ppr, popularity).
Result<std::unique_ptr<Scorer>> MakeScorer(const EvalArgs& a, const std::string& method,
                                           const storage::Store& store,
                                           const storage::Graph& graph,
                                           std::string* aggregate_used) {
  // By default each method scores as it is meant to be used: embeddings by inner product
  // (what the model was trained on and what `pgraph query` ranks by: an embedding's length
  // carries a learned prior), raw features by cosine.
  const bool embedding = method == "pinsage" || method == "embedding";
  const bool trained_column = embedding && (a.column.empty() || a.column == "embedding");
  // A history query (--test) by default: embeddings trained by the softmax loss mix the
  // distributions each history item predicts, at the training temperature (Aggregation::
  // kSoftmax says why); everything else scores against the mean (item-kNN: the sum).
  std::optional<train::TrainOptions> trained;
  if (trained_column) {
    PGRAPH_ASSIGN_OR_RETURN(trained, train::LoadTrainedOptions(store));
  }
  std::string aggregate = a.aggregate;
  if (aggregate == "auto") {
    aggregate =
        trained && trained->loss == train::Loss::kSoftmax && trained->temperature > 0 ? "softmax"
                                                                                     : "mean";
  }
  PGRAPH_ASSIGN_OR_RETURN(Aggregation agg, ParseAggregation(aggregate));
  const bool aggregates = embedding || method == "features" || method == "itemknn";
  *aggregate_used = aggregates ? aggregate : "";
  const float temperature = a.aggregate_temperature > 0           ? a.aggregate_temperature
                            : trained && trained->temperature > 0 ? trained->temperature
                                                                  : 0.05f;
  if (agg == Aggregation::kSoftmax && !embedding && method != "features") {
    return Status::InvalidArgument("--aggregate softmax needs vectors (pinsage or features), not " +
                                   method);
  }
  PGRAPH_ASSIGN_OR_RETURN(
      Similarity sim,
      ParseSimilarity(!a.similarity.empty() ? a.similarity : embedding ? "dot" : "cosine"));
  if (embedding) {
    return MakeColumnScorer(store, a.column.empty() ? storage::columns::kEmbedding : a.column, sim,
                            agg, temperature);
  }
  if (method == "features") {
    return MakeColumnScorer(store, storage::columns::kFeatures, sim, agg, temperature);
  }
  if (method == "itemknn") return MakeItemKnnScorer(graph, a.knn_weights, agg);
  if (method == "popularity") return MakePopularityScorer(graph);
  if (method == "ppr") {
    PGRAPH_ASSIGN_OR_RETURN(auto wg, walker::WalkGraph::Open(store));
    return std::unique_ptr<Scorer>(std::make_unique<PprScorer>(std::move(wg), a.ppr));
  }
  return Status::InvalidArgument("unknown method '" + method +
                                 "' (expected pinsage, features, ppr, itemknn or popularity)");
}

void PrintText(const EvalReport& r, const std::string& method) {
  std::printf("%-10s %-5s queries %llu", method.c_str(), r.protocol.c_str(),
              (unsigned long long)r.queries);
  for (const auto& [name, value] : r.metrics) std::printf("  %s %.4f", name.c_str(), value);
  std::printf("  (candidates %s, unknown %llu, skipped %llu%s%s, %.2fs)\n",
              r.candidates == 0 ? "all" : std::to_string(r.candidates).c_str(),
              (unsigned long long)r.unknown, (unsigned long long)r.skipped,
              r.aggregate.empty() ? "" : ", aggregate ", r.aggregate.c_str(), r.seconds);
}

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<EvalArgs>();
  app->add_option("--store", a->store, "Store directory")->required();
  auto* pairs =
      app->add_option("--pairs", a->pairs, "Held-out pairs `q<TAB>i[<TAB>context]` (external ids)");
  auto* test = app->add_option("--test", a->test,
                               "Held-out interactions `context<TAB>item` (LightGCN protocol)");
  pairs->excludes(test);
  app->add_option("--k", a->ks,
                  "Cut-offs, comma separated (default 10,100,500 for --pairs, "
                  "20 for --test)");
  app->add_option("--method", a->methods,
                  "pinsage (the embedding column), features, ppr, itemknn, popularity; a comma "
                  "list evaluates several (default pinsage)");
  app->add_option("--candidates", a->candidates,
                  "Rank among N sampled unseen items plus the target instead of all items");
  app->add_option("--sampled-negatives", a->sampled_negatives,
                  "Same as --candidates (e.g. 99: the leave-one-out HR@10/NDCG@10 protocol)");
  app->add_option("--column", a->column, "Embedding column for pinsage (default embedding)");
  app->add_option("--similarity", a->similarity,
                  "cosine or dot (default: dot for pinsage, as the model scores; cosine for "
                  "features)");
  app->add_option("--aggregate", a->aggregate,
                  "--test: how a context's items make its query: mean, max, softmax (mix the "
                  "model's softmax distributions of the items), or auto (default: softmax for "
                  "embeddings trained with the softmax loss, mean otherwise)");
  app->add_option("--aggregate-temperature", a->aggregate_temperature,
                  "Temperature of --aggregate softmax (default: the trained --temperature, "
                  "0.05 without one)");
  app->add_flag("--knn-weights", a->knn_weights, "itemknn: use edge weights (default binary)");
  app->add_option("--ppr-walks", a->ppr.walks, "ppr: Monte-Carlo walks per query (default 20000)");
  app->add_option("--ppr-restart", a->ppr.restart, "ppr: restart probability (default 0.3)");
  app->add_option("--ppr-seed", a->ppr.seed, "ppr: walk seed");
  app->add_flag("--keep-seen", a->keep_seen,
                "Do not leave out the items the context already has in the store");
  app->add_flag("--skip-unknown", a->eval.skip_unknown,
                "Leave out pairs/items the store lacks (default: count them as misses)");
  app->add_option("--mrr-scale", a->eval.mrr_scale, "Scaled MRR bucket (default 100)");
  app->add_option("--seed", a->eval.seed, "Seed for tie-breaking, sampling and --max-queries");
  app->add_option("--max-queries", a->eval.max_queries,
                  "Evaluate this many queries chosen by --seed (default all)");
  app->add_option("--memory-budget", a->memory_budget, storage::MemoryBudgetHelp("Chunk cache budget"));
  app->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  app->add_flag("--json", a->json, "One JSON object per method, one per line");
  app->add_flag("--quiet", a->quiet, "No progress line");
  return [a]() -> Status {
    if (a->pairs.empty() && a->test.empty()) {
      return Status::InvalidArgument("give --pairs FILE or --test FILE");
    }
    const bool test_protocol = !a->test.empty();
    EvalOptions& o = a->eval;
    PGRAPH_ASSIGN_OR_RETURN(o.ks,
                            ParseKs(a->ks.empty() ? (test_protocol ? "20" : "10,100,500") : a->ks));
    if (a->candidates != 0 && a->sampled_negatives != 0 && a->candidates != a->sampled_negatives) {
      return Status::InvalidArgument("--candidates and --sampled-negatives disagree");
    }
    o.candidates = std::max(a->candidates, a->sampled_negatives);
    o.exclude_seen = !a->keep_seen;
    if (!(a->ppr.restart > 0 && a->ppr.restart < 1)) {
      return Status::InvalidArgument("--ppr-restart must be in (0, 1)");
    }
    const std::vector<std::string> methods = SplitList(a->methods);
    if (methods.empty()) return Status::InvalidArgument("--method is empty");
    if (a->aggregate != "auto") PGRAPH_RETURN_IF_ERROR(ParseAggregation(a->aggregate).status());
    if (a->aggregate_temperature < 0 || !std::isfinite(a->aggregate_temperature)) {
      return Status::InvalidArgument("--aggregate-temperature must be >= 0");
    }
    if (!a->similarity.empty()) PGRAPH_RETURN_IF_ERROR(ParseSimilarity(a->similarity).status());
    ConfigureThreads(a->threads);

    storage::StoreOptions so;
    so.read_only = true;
    PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a->store, so));
    PGRAPH_ASSIGN_OR_RETURN(auto graph, storage::Graph::Open(*store));
    PGRAPH_ASSIGN_OR_RETURN(auto items, storage::IdMap::Open(*store, NodeKind::kItem));
    PGRAPH_ASSIGN_OR_RETURN(auto contexts, storage::IdMap::Open(*store, NodeKind::kContext));

    PairQueries pq;
    TestQueries tq;
    std::uint64_t total = 0;
    if (test_protocol) {
      PGRAPH_ASSIGN_OR_RETURN(tq, ReadTestQueries(a->test, *items, *contexts));
      total = tq.queries.size();
    } else {
      PGRAPH_ASSIGN_OR_RETURN(pq, ReadPairQueries(a->pairs, *items, contexts.get()));
      total = pq.queries.size();
    }
    if (o.max_queries != 0) total = std::min(total, o.max_queries);
    for (const std::string& method : methods) {
      std::string aggregate;
      PGRAPH_ASSIGN_OR_RETURN(auto scorer, MakeScorer(*a, method, *store, *graph, &aggregate));
      Progress progress("eval " + method, total, "queries", !a->quiet);
      o.progress = [&progress](std::uint64_t n) { progress.Add(n); };
      Result<EvalReport> r = test_protocol ? EvaluateTest(*scorer, *graph, tq.queries, o)
                                           : EvaluatePairs(*scorer, *graph, pq.queries, o);
      if (!r.ok()) return r.status().WithContext("eval " + method);
      if (test_protocol) r->aggregate = aggregate;
      progress.Finish();
      if (a->json) {
        std::printf("%s\n", EvalReportJson(*r, method).c_str());
      } else {
        PrintText(*r, method);
      }
      std::fflush(stdout);
    }
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(eval, "eval",
               "Ranking quality on held-out pairs or interactions (pinsage and baselines)", Setup);
}  // namespace pgraph::tools
