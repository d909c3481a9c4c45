#pragma once
// pgraph walker: random walks on the bipartite item-context graph (PinSage section 3.2).
//
//  - Importance neighbourhoods: for every item u, short walks item -> context -> item from u;
//    the T most visited items (u excluded) become N(u), each weighted by its visit count
//    renormalised over the top T. Written to the store as `walk.neighbors` / `walk.weights`.
//  - Personalized PageRank (PPR) by Monte-Carlo walks with restart, from one item or many:
//    items ranked by estimated PPR score, for hard negatives and `pgraph ppr`.
//  - Training pairs: labelled pairs from a file, or co-occurrence pairs from the walks, and
//    held-out evaluation pairs that never reach training pairs or the neighbourhoods of
//    their own items.
//
// Walk model. One *step* goes item -> context -> item: a context chosen uniformly among the
// item's contexts, then an item chosen uniformly among that context's items (two *hops*,
// each costing about two random memory loads: an offset pair and a target). Edge weights of
// weighted stores are ignored by the walks (uniform choice). Randomness is a pure function of
// (seed, source item, walk index): results are bit-identical for any thread count and any
// number of walks in flight.
//
// Speed. Each thread keeps `lanes` independent walks in flight and advances them round-robin
// one hop-half at a time, prefetching the next load of each, so memory latency overlaps
// across walks. Visit counters are open-addressing tables reused across sources (no
// allocation per step). The adjacency is read in place through the store: zero-copy from the
// LMDB map for raw (uncompressed) columns, otherwise pinned within the store's memory budget
// (ResourceExhausted when it does not fit). See docs/WALKER.md for defaults and measurements.
//
// Thread safety: WalkGraph is immutable and safe to share; every function here may be called
// concurrently. Functions that run in parallel use the current TBB arena (its size is set by
// `tbb::global_control` in tools/).

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/ids.h"
#include "storage/status.h"
#include "storage/store.h"

namespace pgraph::walker {

// Column written beside storage::columns::kWalkNeighbors / kWalkWeights: the number of
// valid (non-padding) neighbours of each item, u32, width 1.
inline constexpr const char* kWalkCounts = "walk.counts";
// Store metadata key holding the walk parameters as one JSON object.
inline constexpr const char* kWalkParamsMeta = "walk.params";

// How a walk step chooses among the edges of the node it stands on.
enum class EdgeWeighting : std::uint8_t {
  kUniform,  // every edge alike: the paper's walks; edge weights are ignored
  kLinear,   // in proportion to the edge's weight (a play count, a rating, a dwell time)
  kLog,      // in proportion to log(1 + weight): graded affinities count, but one heavy
             // edge (a user who played an artist 10^5 times) cannot take a node's walks over
  kAuto,     // kLog on a store with edge weights, else kUniform. The default: log weights
             // raised ranking quality on both real data sets, play counts and ratings
             // (docs/BENCHMARKS.md, "quality", session 5); raw weights lowered it.
};
// "uniform", "linear", "log", "auto"; InvalidArgument naming the accepted values otherwise.
Result<EdgeWeighting> ParseEdgeWeighting(std::string_view name);
const char* EdgeWeightingName(EdgeWeighting weighting);

// Memory weighted walks need beyond the adjacency, at most: the cumulative weights of both
// directions (4 bytes per edge each) and, while they are summed, one weight column decoded.
inline std::uint64_t WeightedWalkBytes(std::uint64_t edges) { return 12 * edges; }

// The item-context adjacency as read by walks: both CSR directions of the store, in place.
// Immutable and thread-safe; borrows the Store, which must outlive it.
class WalkGraph {
 public:
  // Opens the four adjacency columns of `store` (offsets and targets, both directions).
  // InvalidArgument when the store has no adjacency (not ingested); Corruption when the
  // column sizes disagree with the store's counts or a chunk fails its checksum;
  // ResourceExhausted when compressed columns do not fit the store's memory budget.
  // Cost: reads (and verifies) every adjacency chunk once; zero-copy for raw LMDB columns.
  // With a `weighting` other than kUniform, every walk over this graph (neighbourhoods,
  // co-occurrence pairs, PPR) steps along an edge with probability proportional to its
  // transformed weight. That needs the store's edge weights (InvalidArgument naming the store
  // when it was ingested without them, or when a weight is negative or not finite) and
  // WeightedWalkBytes of RAM, counted against the store's memory budget (ResourceExhausted
  // when they do not fit). kAuto takes kLog when the store has edge weights and they fit,
  // else kUniform; weighting() tells which was taken.
  static Result<std::unique_ptr<WalkGraph>> Open(
      const storage::Store& store, EdgeWeighting weighting = EdgeWeighting::kUniform);

  std::uint64_t num_items() const { return num_items_; }
  std::uint64_t num_contexts() const { return num_contexts_; }
  std::uint64_t num_edges() const { return num_edges_; }
  // Bytes pinned in RAM for the adjacency (0 when everything is served from the map), the
  // cumulative edge weights included.
  std::uint64_t pinned_bytes() const;
  EdgeWeighting weighting() const { return weighting_; }

  std::uint64_t ItemDegree(NodeId item) const {
    return item_offsets_[item + 1] - item_offsets_[item];
  }
  std::uint64_t ContextDegree(NodeId ctx) const {
    return ctx_offsets_[ctx + 1] - ctx_offsets_[ctx];
  }

 private:
  template <bool>
  friend struct ViewAdjacencyT;
  WalkGraph() = default;
  std::uint64_t num_items_ = 0, num_contexts_ = 0, num_edges_ = 0;
  storage::ColumnView<std::uint64_t> item_offsets_, ctx_offsets_;
  storage::ColumnView<std::uint32_t> item_targets_, ctx_targets_;
  EdgeWeighting weighting_ = EdgeWeighting::kUniform;
  // Weighted walks only: per edge, the running sum of the transformed weights of its node's
  // edges up to and including it (each node starts from 0), in edge order of each direction.
  std::vector<float> item_cum_, ctx_cum_;
};

// ---- Importance neighbourhoods ---------------------------------------------------------

struct WalkOptions {
  std::uint32_t top_t = 50;            // T, neighbours kept per item (paper: 50); >= 1
  // Defaults measured in docs/WALKER.md: at equal cost, more walks of 2 steps give purer and
  // more stable neighbourhoods than fewer, longer walks; 400 is the knee of the curve.
  std::uint32_t walks_per_node = 400;  // walks started from each item (max with early stop)
  std::uint32_t walk_length = 2;       // most steps (item -> context -> item) per walk; >= 1
  // After each step the walk ends (returns to u) with this probability; in [0, 1). With 0
  // every walk takes exactly walk_length steps.
  double restart = 0.0;
  std::uint64_t seed = 1;
  // Pixie-style early stopping, off when either is 0: stop walking from u once
  // `early_stop_nodes` items (u excluded) have been visited at least `early_stop_visits`
  // times. Checked after each whole walk, so still deterministic.
  std::uint32_t early_stop_nodes = 0;
  std::uint32_t early_stop_visits = 0;
  // Walks in flight per thread; 0 picks the default (32). Does not change results.
  std::uint32_t lanes = 0;
  // Items per parallel task. Does not change results.
  std::uint32_t block_items = 256;
  // Held-out pairs (q, i): i never appears in N(q) and q never in N(i). Any order, repeats
  // allowed; copied at the start of the call.
  std::span<const std::pair<NodeId, NodeId>> exclude;
};

// Checks the option ranges. InvalidArgument naming the option.
Status ValidateWalkOptions(const WalkOptions& options);

// Neighbourhoods of a range of items, row-major: row r belongs to item first + r.
struct Neighborhoods {
  NodeId first = 0;
  std::uint32_t width = 0;            // T
  std::vector<NodeId> neighbors;      // rows * T, most visited first (ties: smaller id),
                                      // padded with kInvalidNode
  std::vector<float> weights;         // rows * T, sum 1 over valid entries, 0 padding
  std::vector<std::uint32_t> counts;  // rows: valid entries of each row (< T when fewer
                                      // items were reached; 0 for isolated items)
  std::uint64_t steps = 0;            // item -> context -> item steps simulated
  std::uint64_t rows() const { return counts.size(); }
};

// Walks from items [first, first + count) in parallel (TBB, over blocks of items).
// InvalidArgument for bad options or a range past num_items(). Deterministic in
// options.seed whatever the thread count. Cost: ~walks_per_node * walk_length steps per item,
// O(count * T) memory for the result plus ~16 KiB (4 * walks * length * 8 bytes, rounded up
// to a power of two) of counters per lane and thread.
Result<Neighborhoods> ComputeNeighborhoods(const WalkGraph& graph, NodeId first,
                                           std::uint64_t count, const WalkOptions& options);
// All items. Same contract; the result holds num_items() rows.
Result<Neighborhoods> ComputeNeighborhoods(const WalkGraph& graph, const WalkOptions& options);
// Same results through storage::Graph (no prefetching: slower on graphs beyond the cache).
Result<Neighborhoods> ComputeNeighborhoods(const storage::Graph& graph, NodeId first,
                                           std::uint64_t count, const WalkOptions& options);

// ---- Personalized PageRank -------------------------------------------------------------

struct PprOptions {
  // Probability of returning to the source before each step; in (0, 1). Mean walk length is
  // (1 - restart) / restart steps (0.3: 2.3 steps).
  double restart = 0.3;
  std::uint32_t walks = 20000;       // Monte-Carlo walks (split evenly over the sources)
  std::uint32_t max_length = 64;     // steps cap per walk (truncation bias (1-restart)^64)
  std::uint64_t seed = 1;
  std::uint64_t top_k = 0;           // keep the k best; 0 keeps every item reached
  std::uint32_t lanes = 0;           // walks in flight; 0 = default. Does not change results.
};

// One ranked entry: item and its estimated PPR score.
using ScoredItem = std::pair<NodeId, float>;

// Estimated PPR from `source` over the item graph (item -> context -> item, uniform), by
// Monte-Carlo: score(v) = restart * visits(v) / walks, an unbiased estimate of the PPR vector
// entry pi_source(v) (visits at every step, step 0 included). Returns the items reached,
// source excluded, by score descending (ties: smaller id first), at most top_k.
// InvalidArgument for an out-of-range source or bad options. Single-threaded (walks
// interleaved in lanes); deterministic in options.seed. Cost: ~walks / restart item visits;
// memory O(distinct items reached).
Result<std::vector<ScoredItem>> PersonalizedPageRank(const WalkGraph& graph, NodeId source,
                                                     const PprOptions& options);
Result<std::vector<ScoredItem>> PersonalizedPageRank(const storage::Graph& graph, NodeId source,
                                                     const PprOptions& options);

// Pixie-style multi-source PPR: walk j starts at sources[j % sources.size()], all visits
// pooled, so scores estimate the mean of the sources' PPR vectors. Every source is excluded
// from the result. InvalidArgument for an empty list, an out-of-range id or bad options.
Result<std::vector<ScoredItem>> PersonalizedPageRank(const WalkGraph& graph,
                                                     std::span<const NodeId> sources,
                                                     const PprOptions& options);

// One independent PPR per source, in parallel (TBB over sources); result[k] is what
// PersonalizedPageRank(graph, sources[k], options) returns. Same errors.
Result<std::vector<std::vector<ScoredItem>>> PersonalizedPageRankBatch(
    const WalkGraph& graph, std::span<const NodeId> sources, const PprOptions& options);

// Rank window [lo, hi) (0-based, in the PPR ranking with the source excluded).
struct RankWindow {
  std::uint64_t lo = 0, hi = 0;
};

// The default hard-negative window for a catalogue of `num_items`: the paper's ranks
// 2000-5000 of ~2B pins, scaled: lo = clamp(num_items / 200, 10, 2000),
// hi = clamp(num_items / 50, 40, 5000) (0.5%..2% of the catalogue; 1M items and up get the
// paper's window). For tiny catalogues hi may exceed what walks reach; see DrawHardNegatives.
RankWindow DefaultHardNegativeWindow(std::uint64_t num_items);

struct HardNegativeOptions {
  PprOptions ppr;          // the PPR run from q (top_k is ignored)
  RankWindow window;       // {0, 0}: DefaultHardNegativeWindow(num_items)
};

// `count` hard negatives for query q: drawn uniformly without replacement from the PPR ranks
// in the window (related to q, but less than its best matches). When fewer than hi items were
// reached the window slides down to end at the last reached rank (keeping its width); when
// the window holds fewer than `count` items the rest are uniform random items. Never q;
// without duplicates unless the catalogue is smaller than count + 1. Deterministic in
// (options.ppr.seed, seed). InvalidArgument for bad ids or options.
Result<std::vector<NodeId>> DrawHardNegatives(const WalkGraph& graph, NodeId q,
                                              std::uint32_t count,
                                              const HardNegativeOptions& options,
                                              std::uint64_t seed);

// DrawHardNegatives in two halves, so a caller can keep a query's window and draw from it
// again: the window depends only on (graph, q, options) (the PPR walks are seeded by
// options.ppr.seed), the draw on `seed`. Together they return exactly what
// DrawHardNegatives returns. Same errors (HardNegativeWindow); the draw cannot fail.
Result<std::vector<NodeId>> HardNegativeWindow(const WalkGraph& graph, NodeId q,
                                               const HardNegativeOptions& options);
std::vector<NodeId> DrawFromHardNegativeWindow(std::span<const NodeId> window, NodeId q,
                                               std::uint64_t num_items, std::uint32_t count,
                                               const HardNegativeOptions& options,
                                               std::uint64_t seed);

// ---- Locality order and layout ---------------------------------------------------------
//
// LocalityOrder: a permutation of the items that places each item near its neighbours, and
// the neighbourhoods laid out in it (the locality layout) for inference.
//
// Why: pooling reads, for every item, the rows of its T neighbours. In item-id order those
// rows are spread over the whole matrix of a layer, so at scale every read misses the cache
// and pooling runs at DRAM latency. Neighbourhoods of recommendation graphs are clustered
// (an item's random-walk neighbours share its communities), so when items are processed, and
// their rows laid out, in an order that keeps clusters together, most reads hit rows that a
// nearby item has just brought into cache.
//
// How (linear time, no parameters): every item points at its heaviest neighbour; the pointers
// form a forest once each cycle is cut at its smallest id; a depth-first walk of the forest
// (roots and children by increasing id) puts each tree, i.e. items whose strongest links run
// to the same hubs, in one stretch. Rounds of weighted label propagation over the full
// neighbour lists (until they settle, at most 4; walk neighbourhoods, whose popular items are
// hubs, settle after one) then move each item to the tree that holds most of its neighbour
// weight, which joins the several trees that one cluster often splits into. The result is
// deterministic: it depends on the neighbour lists only, never on the thread count.
// Cost: a few passes over the lists (O(items x T)), under 30 bytes of scratch per item.

struct LocalityOrder {
  std::vector<NodeId> order;  // order[i]: the item at position i
  std::vector<NodeId> pos;    // pos[u]: the position of item u (the inverse of order)
};

// `nbrs` and `wts` are items x T, row-major (kInvalidNode: no neighbour; ids < items).
// Runs its parallel loop on the calling thread's TBB arena.
LocalityOrder ComputeLocalityOrder(const NodeId* nbrs, const float* wts, std::uint64_t items,
                                   std::uint32_t T);

// A bound on the bytes ComputeLocalityOrder allocates besides its result (29 per item).
std::uint64_t LocalityOrderScratchBytes(std::uint64_t items);

// Of the valid neighbour entries of items 0, stride, 2 stride, ...: the share whose position
// lies within `window` positions of their item's. 1 for a perfect clustering, about
// 2 * window / items for a random order. For reports and tests; `nbrs` hold item ids.
double LocalityShare(const LocalityOrder& o, const NodeId* nbrs, std::uint64_t items,
                     std::uint32_t T, std::uint64_t window, std::uint64_t stride = 1);

// The locality layout: the neighbourhoods by position, as inference reads them, written
// beside walk.neighbors so that every inference over these neighbourhoods reuses one order
// instead of computing it again (reading, ordering and renaming 1M items' lists took 1.1-1.4 s
// of a 4-5 s inference; docs/BENCHMARKS.md, "infer"). Raw (uncompressed) chunks whatever the
// store's codec: LMDB serves them from its memory map without a copy.
//   walk.layout.order      u32: the item at each position
//   walk.layout.neighbors  u32 x T: row i holds the neighbours of item order[i], named by
//                          their positions (kInvalidNode padding, as walk.neighbors)
//   walk.layout.weights    f32 x T: their weights, as walk.weights
inline constexpr const char* kLayoutOrder = "walk.layout.order";
inline constexpr const char* kLayoutNeighbors = "walk.layout.neighbors";
inline constexpr const char* kLayoutWeights = "walk.layout.weights";
// Meta: "neighbors_version=V share=S" (V: the version of the walk.neighbors column laid out;
// S: LocalityShare at window 4096).
inline constexpr const char* kLayoutMeta = "walk.layout";

// When `pgraph walk` writes the layout. auto: when the store has at least kLayoutMinItems
// items (below that a layer's rows stay in the caches whatever the order) and the order puts
// at least kLayoutMinShare of the neighbours within 4096 positions of their item
// (neighbourhoods of uniformly random graphs get ~8192 / items and are left in item order);
// on: always (tests); off: never.
enum class LayoutMode : std::uint8_t { kAuto, kOn, kOff };
Result<LayoutMode> ParseLayoutMode(std::string_view name);  // "auto" | "on" | "off"
inline constexpr std::uint64_t kLayoutMinItems = 32768;
inline constexpr double kLayoutMinShare = 0.5;

// Working memory AddLocalityLayout needs beyond the lists it is given: order, positions, the
// order's scratch and a chunk of laid-out rows.
std::uint64_t LocalityLayoutBytes(std::uint64_t items, std::uint32_t T);

struct LayoutReport {
  bool written = false;
  double share = 0;    // LocalityShare of the order (0 when none was computed)
  double seconds = 0;
  std::string note;    // why no layout was written, when none was
};

// Orders the items of `nbrs` / `wts` (items x T, item order, as walk.neighbors /
// walk.weights; ids < items or kInvalidNode) and adds the three layout columns and the meta
// to `update` when `mode` says so; `neighbors_version` is the version of the walk.neighbors
// column they lay out. When it does not write them it drops any earlier layout in `update`
// and says why in the note; the lists are not looked at (and may be empty) when off, or
// when auto and items < kLayoutMinItems.
// InvalidArgument for a bad id or mismatched sizes; IOError / ResourceExhausted from the
// store. Runs on the calling thread's TBB arena.
Result<LayoutReport> AddLocalityLayout(storage::Update* update, std::span<const NodeId> nbrs,
                                       std::span<const float> wts, std::uint64_t items,
                                       std::uint32_t T, std::uint64_t neighbors_version,
                                       LayoutMode mode);

// Drops any layout (its columns and meta) in `update`: for writers of new walk.* columns
// that lay out none.
void DropLocalityLayout(storage::Update* update);

// AddLocalityLayout for a store walked before (its published walk.* columns, read whole:
// items x T x 8 bytes of memory besides LocalityLayoutBytes), in an Update of its own.
Result<LayoutReport> WriteLocalityLayout(storage::Store* store, LayoutMode mode);

// Whether `store` holds a layout of its current walk.neighbors: the three columns with the
// walk's rows and width, the lists in raw chunks, and the meta naming that column's version.
bool HasCurrentLayout(const storage::Store& store);

// ---- Training and held-out pairs -------------------------------------------------------

using Pair = std::pair<NodeId, NodeId>;

// Reads `q i` pairs of external item ids, one per line (tab, space or comma separated; blank
// lines and lines starting with '#' skipped; extra fields ignored, so generate's truth.tsv
// works), mapped through `ids`. InvalidArgument naming file and line for a malformed line or
// an unknown id (unless skip_unknown, which counts them in *skipped). IOError when the file
// cannot be read.
Result<std::vector<Pair>> ReadPairsFile(const std::string& path, const storage::IdMap& ids,
                                        bool skip_unknown, std::uint64_t* skipped);

struct PairOptions {
  std::string pairs_path;        // labelled pairs (q i); empty: co-occurrence pairs
  std::string heldout_path;      // held-out pairs (e.g. generate's truth.tsv); optional
  // Share of pairs to hold out for evaluation, in [0, 1): of the labelled pairs, or (without a
  // pairs file) of the items, each held-out item q pairing with an item that shares a context
  // with it. Decided by hash of (seed, pair or item); added to heldout_path's pairs.
  double heldout_fraction = 0.0;
  // Co-occurrence: pairs_per_item pairs (q, i) per item q, i drawn with replacement in
  // proportion to its visit count among the neighbours visited at least min_visits times.
  // 0: DefaultPairsPerItem. Training sees each pair once per epoch, so the count sets how
  // much an epoch teaches: on Last.fm (4.5k items, 42k edges) 2 per item reached recall@20
  // 0.06 in 5 epochs, 9 per item 0.16-0.19 (docs/BENCHMARKS.md, "quality").
  std::uint32_t pairs_per_item = 0;
  std::uint32_t min_visits = 2;
  bool skip_unknown = false;         // drop pairs naming unknown items instead of failing
};

// About one pair per edge: edges / items rounded, clamped to [2, 10].
std::uint32_t DefaultPairsPerItem(std::uint64_t items, std::uint64_t edges);

struct WalkStageOptions {
  WalkOptions walk;                  // `exclude` is filled by RunWalkStage
  PairOptions pairs;
  EdgeWeighting edge_weights = EdgeWeighting::kAuto;  // how walk steps choose edges
  // The locality layout for inference (AddLocalityLayout). Keeping every list for it costs
  // items x T x 8 bytes plus LocalityLayoutBytes, counted against the store's memory budget:
  // auto skips it (with a note) when they do not fit, on fails with ResourceExhausted.
  LayoutMode layout = LayoutMode::kAuto;
  std::uint64_t items_per_write = 1 << 16;  // rows computed per round before appending
  // Called between rounds with (items done, total items); from the calling thread.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

struct WalkReport {
  std::uint64_t items = 0, isolated_items = 0, short_rows = 0;  // short: < T neighbours
  std::uint64_t steps = 0;
  std::uint64_t train_pairs = 0, heldout_pairs = 0, skipped_pairs = 0;
  std::uint64_t dropped_train_pairs = 0;  // labelled pairs dropped as held out
  std::string pairs_source;               // "file" or "cooccurrence"
  EdgeWeighting edge_weights = EdgeWeighting::kUniform;  // as taken (kAuto resolved)
  std::string note;  // non-empty: something the user should know (e.g. weights left unused)
  LayoutReport layout;
  double seconds = 0, walk_seconds = 0;
};

// The whole `pgraph walk` stage on a writable store: reads and splits pairs, computes every
// neighbourhood (held-out pairs excluded), then publishes in one Update: walk.neighbors
// (u32 x T), walk.weights (f32 x T), walk.counts (u32), pairs.train and pairs.heldout
// (u32 x 2; held-out pairs written even when empty), the locality layout (options.layout),
// meta walk.params (JSON) and counts "walk.top_t", "pairs.train", "pairs.heldout". On any error nothing is published (the
// store is untouched). Errors: those of ValidateWalkOptions, WalkGraph::Open and
// ReadPairsFile; InvalidArgument for a heldout_fraction outside [0, 1); IOError /
// ResourceExhausted from the store. Requires: store opened writable. Memory: about
// items_per_write * T * 12 bytes beyond the adjacency, plus the pairs.
Result<WalkReport> RunWalkStage(storage::Store* store, const WalkStageOptions& options);

// The walk parameters as the JSON object stored under kWalkParamsMeta.
std::string WalkParamsJson(const WalkOptions& options, const PairOptions& pairs,
                           EdgeWeighting weighting = EdgeWeighting::kUniform);

}  // namespace pgraph::walker
