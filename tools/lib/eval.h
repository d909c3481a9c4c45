#pragma once
// Offline ranking evaluation for `pgraph eval`: two protocols over any method that can
// score every item of a store for a query.
//
//  - Pairs (PinSage's offline protocol, and leave-last-out next-item recommendation): each
//    held-out pair (q, i[, context]) ranks i by the method's score for q among every item
//    except q and, when a context is given, except the items that context already has in
//    the store ("unseen items" full ranking). With `candidates` = N the pool is instead
//    N items sampled uniformly from those eligible, plus i (the "99 sampled negatives"
//    protocol). Metrics: hr@K, ndcg@K, mrr, mrr_scaled (tools/lib/metrics.h).
//  - Test (the LightGCN protocol): each context with held-out items ranks all the items it
//    has not seen in the store by the method's score for its history (the items it has in
//    the store); recall@K and ndcg@K over its held-out items.
//
// Ties. Methods such as PPR or popularity give many items equal scores. A tie is broken by
// a pseudo-random key that depends on (seed, query, item), so a target tied with n others
// lands uniformly among them, never systematically first or last, and the numbers are
// reproducible. NaN scores rank below everything.
//
// Unknown ids. A pair or held-out item the store does not know (e.g. an item whose only
// interaction was held out) cannot be ranked: by default it counts as a miss (rank
// kUnranked) so the denominators match the data set's protocol; `skip_unknown` drops it.
//
// Threading: queries are evaluated in parallel with TBB (the current arena); scorers must
// be safe to call from many threads. Results do not depend on the thread count.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"
#include "tools/lib/metrics.h"

namespace pgraph::storage {
class Graph;
class IdMap;
class Store;
}  // namespace pgraph::storage

namespace pgraph::tools {

// How a set of items (a context's history) becomes one query.
enum class Aggregation {
  kMean,  // embeddings: score against the mean vector (mean of similarities for cosine);
          // item-kNN: sum of similarities to the history items
  kMax,   // the best similarity to any history item
  // Embeddings trained by a softmax (the default loss): each history item j gives the
  // model's distribution over the catalogue, P(v | j) = softmax over v != j of s_jv / tau,
  // and the context scores v by log(mean over j of P(v | j)), the mixture of what each of
  // its items predicts. The mean vector instead sums the log-probabilities (s_jv / tau is
  // log P(v | j) up to a constant), so an item must be likely under every history item; a
  // context with several tastes wants items likely under some of them. Costs one pass
  // over the catalogue per history item (as kMax). Column scorers only.
  kSoftmax,
};
// "mean", "max" or "softmax"; InvalidArgument otherwise.
Result<Aggregation> ParseAggregation(std::string_view s);

enum class Similarity { kCosine, kDot };
// "cosine" or "dot"; InvalidArgument otherwise.
Result<Similarity> ParseSimilarity(std::string_view s);

// A method under evaluation: scores every item for a query (higher = more related).
// Implementations are immutable after construction and thread-safe.
class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual std::uint64_t num_items() const = 0;
  // Sets scores[v] for every item v given the query item q. Requires: q < num_items(),
  // scores.size() == num_items(). Errors are the method's own (e.g. from a store read).
  virtual Status ScoreFromItem(NodeId q, std::span<float> scores) const = 0;
  // As ScoreFromItem for a set of query items (a context's history; may be empty, then
  // the scores carry no information). Requires: every id < num_items().
  virtual Status ScoreFromItems(std::span<const NodeId> items, std::span<float> scores) const = 0;
  // Queries per ScoreFromItemBatch call that pays off (1: none; the default).
  virtual std::size_t batch_size() const { return 1; }
  // ScoreFromItem for each of `qs`: row j of `scores` (num_items() floats) for qs[j].
  // Requires: scores.size() == qs.size() * num_items(). Default: one ScoreFromItem per row.
  virtual Status ScoreFromItemBatch(std::span<const NodeId> qs, std::span<float> scores) const;
};

// Cosine (or inner product) of the rows of an f32/f16 column of items x d, e.g. `embedding`
// (the PinSage method) or `features` (content only). The whole column is read into memory
// once (items * d floats; rows are L2-normalised for cosine; all-zero rows score 0).
// `temperature` is tau of Aggregation::kSoftmax (unused otherwise). NotFound when the
// column is absent; InvalidArgument when its row count differs from the store's item count,
// its dtype is not f32/f16, or temperature <= 0 with kSoftmax; Corruption / IOError from
// the store. The Store may be closed afterwards.
Result<std::unique_ptr<Scorer>> MakeColumnScorer(const storage::Store& store,
                                                 std::string_view column, Similarity similarity,
                                                 Aggregation aggregation,
                                                 float temperature = 0.05f);

// The same over an in-memory matrix (items x dim, row-major, copied). For tests.
Result<std::unique_ptr<Scorer>> MakeMatrixScorer(std::span<const float> rows, std::uint32_t dim,
                                                 Similarity similarity, Aggregation aggregation,
                                                 float temperature = 0.05f);

// Item-kNN: cosine between items' context vectors (binary, or edge weights when
// `use_weights` and the store is weighted). For one item, one pass over its contexts'
// items. `graph` must outlive the scorer. Requires: aggregation is kMean or kMax.
std::unique_ptr<Scorer> MakeItemKnnScorer(const storage::Graph& graph, bool use_weights,
                                          Aggregation aggregation);

// Popularity: every item's score is its context count, whatever the query.
std::unique_ptr<Scorer> MakePopularityScorer(const storage::Graph& graph);

// ---- Queries ---------------------------------------------------------------------------

// A held-out pair in dense ids. q or item is kInvalidNode when the store lacks it (the pair
// is "unknown"); context is kInvalidNode when absent or unknown (no items are excluded).
struct PairQuery {
  NodeId q = kInvalidNode;
  NodeId item = kInvalidNode;
  NodeId context = kInvalidNode;
};

struct PairQueries {
  std::vector<PairQuery> queries;      // one per data line, in file order
  std::uint64_t unknown = 0;           // pairs with q or item not in the store
  std::uint64_t unknown_contexts = 0;  // pairs whose context is not in the store
};

// Reads `q<TAB>i[<TAB>context]` lines (tab, space or comma separated; blank lines and lines
// starting with '#' skipped; further fields ignored) through the store's id maps
// (`contexts` may be null: the third field is then ignored). NotFound when the file cannot
// be opened; InvalidArgument naming file and line for a line with fewer than two fields.
Result<PairQueries> ReadPairQueries(const std::string& path, const storage::IdMap& items,
                                    const storage::IdMap* contexts);

// A context with held-out items (dense ids). `items` holds the known held-out items;
// `unknown_items` counts the held-out items the store lacks. context is kInvalidNode when
// the store does not know the context.
struct TestQuery {
  NodeId context = kInvalidNode;
  std::vector<NodeId> items;
  std::uint64_t unknown_items = 0;
};

struct TestQueries {
  std::vector<TestQuery> queries;  // one per distinct context, in order of first appearance
  std::uint64_t lines = 0;
  std::uint64_t unknown_items = 0;     // held-out interactions naming an unknown item
  std::uint64_t unknown_contexts = 0;  // contexts (not lines) the store lacks
};

// Reads `context<TAB>item` lines (same separators and comments as ReadPairQueries; further
// fields such as a weight ignored) and groups them by context; a repeated (context, item)
// counts once. Same errors as ReadPairQueries.
Result<TestQueries> ReadTestQueries(const std::string& path, const storage::IdMap& items,
                                    const storage::IdMap& contexts);

// ---- Protocols -------------------------------------------------------------------------

struct EvalOptions {
  std::vector<std::uint64_t> ks = {10, 100, 500};  // cut-offs; each >= 1
  std::uint64_t candidates = 0;   // 0: rank among every eligible item; N: among N sampled
                                  // eligible items plus the target(s)
  bool exclude_seen = true;       // leave out the items the context has in the store
  bool skip_unknown = false;      // drop unknown pairs / items instead of counting misses
  std::uint64_t mrr_scale = 100;  // scaled MRR bucket (the paper's 100)
  std::uint64_t seed = 1;         // tie-breaking, sampled pools and max_queries
  std::uint64_t max_queries = 0;  // 0: all; else this many queries chosen by seed
  // Called with the number of queries just finished, from worker threads (must be
  // thread-safe). Optional.
  std::function<void(std::uint64_t)> progress;
};

struct EvalReport {
  std::string protocol;          // "pairs" or "test"
  std::uint64_t queries = 0;     // queries averaged (unknown ones included unless skipped)
  std::uint64_t unknown = 0;     // pairs (pairs) or held-out items (test) the store lacks
  std::uint64_t skipped = 0;     // queries left out (skip_unknown, max_queries)
  std::uint64_t candidates = 0;  // as EvalOptions (0 = all items)
  MetricList metrics;            // pairs: hr@K.., ndcg@K.., mrr, mrr_scaled;
                                 // test: recall@K.., ndcg@K..
  double seconds = 0;
  // How a history was scored ("mean", "max", "softmax"; test protocol, methods with an
  // aggregation); empty otherwise. Set by the caller, which chose the scorer.
  std::string aggregate;
};

// The pairs protocol. `graph` gives the item count and the contexts' items; it must match
// the scorer's store. InvalidArgument for an empty or zero `ks` or a scorer whose item
// count differs from the graph's; otherwise the first error of the scorer. Cost: one
// ScoreFromItem and one pass over the items per query.
Result<EvalReport> EvaluatePairs(const Scorer& scorer, const storage::Graph& graph,
                                 std::span<const PairQuery> queries, const EvalOptions& options);

// The test protocol: each query's history is its context's items in `graph`. A context
// the store lacks (no history) still counts, with whatever the scorer gives for an empty
// history, unless skip_unknown. Same errors and cost (one pass per held-out item) as
// EvaluatePairs.
Result<EvalReport> EvaluateTest(const Scorer& scorer, const storage::Graph& graph,
                                std::span<const TestQuery> queries, const EvalOptions& options);

// {"method": ..., "protocol": ..., "queries": n, <metric>: value, ..., "unknown": n,
//  "skipped": n, "candidates": n or "all", "seconds": s} on one line, no newline.
std::string EvalReportJson(const EvalReport& report, std::string_view method);

// Parses "10,100,500". InvalidArgument for an empty list or a value < 1.
Result<std::vector<std::uint64_t>> ParseKs(std::string_view s);

}  // namespace pgraph::tools
