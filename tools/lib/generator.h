#pragma once
// Synthetic bipartite item-context graphs with planted community structure, streamed to
// disk (`pgraph generate`). Used by the demo, the tests and scale runs; docs/GENERATOR.md
// describes the model at more length.
//
// Model (all randomness is a pure function of `seed` and an item/context/community index,
// so the output is byte-identical for any thread count):
//  - Communities. Items are split into C communities of equal size (+-1: the first N mod C
//    have one more). A keyed affine bijection pos = (a*item + b) mod N scatters ids:
//    community c owns a contiguous range of positions, and an item's popularity rank inside
//    its community is its offset in that range (rank 0 = most popular). Nothing per item is
//    stored.
//  - Contexts. Context j has a home community (uniform) and a size drawn from a shifted
//    power law (Lomax): P(size > x) ~ (1 + x/lambda)^-context_skew, capped at
//    min(max_context, items). Sizes are stratified quantiles of that law assigned through a
//    second bijection over contexts, and lambda plus a last integer adjustment are solved so
//    the sizes add up to exactly `edges`.
//  - Edges. Each of a context's items comes from its home community with probability
//    1 - mixing - secondary, from the context's secondary community with probability
//    `secondary`, else (probability `mixing`) from a uniformly chosen community; inside a
//    community the rank follows a bounded Zipf law with exponent item_skew (continuous
//    inverse CDF, tabulated).
//  - Secondary interests (off by default: secondary = 0 draws no extra random numbers, so
//    the output is byte-identical to a generator without them). Real interaction logs are
//    not one taste plus uniform noise: a user has a dominant taste, a few secondary
//    interests that are correlated with it (jazz listeners also play blues, rarely metal),
//    and some exploration that follows no pattern. So the communities lie on a ring of
//    related tastes, and each context picks one secondary community uniformly among the
//    `related` nearest ones on each side of its home (home +- 1..related, mod C; related =
//    0 or >= C/2 means any other community). An item's walk neighbourhood then has grades:
//    its own community (many shared contexts), the related ones (fewer, through
//    secondary draws), and noise (rarely twice): the visit counts that importance pooling
//    weights by differ in a way that carries signal, as they do on real data.
//    Items are distinct within a context: a repeated draw is redrawn, up to 32 times by
//    Zipf and 32 times uniformly in the same community, then 32 times uniformly over all
//    items, then it takes the next unused id. So every context gets exactly its size, but a
//    context larger than about half its community spills into other communities.
//  - Truth. With probability `holdout` a context draws one extra item and holds one of its
//    items out of edges.tsv (chosen uniformly); truth.tsv gets (q, held-out item) where q is
//    another, written item of that context: the leave-one-out shape of real logs. The
//    held-out (item, context) edge is never written; a context already holding every item
//    holds nothing out. A held-out item may end up with no edges at all (so may tail items
//    nobody drew): consumers must accept feature-only items.
//  - Features. Community c has a centroid mu_c, a Gaussian vector normalised to length 1;
//    item features are mu_c + feature_noise * z / sqrt(dim) with z ~ N(0, I), so the noise
//    has length ~feature_noise against a signal of length 1.
//
// Files written in `out_dir` (created if missing; each file is written to `<name>.tmp` and
// renamed on success, replacing an existing file; nothing is renamed if any step fails):
//  - edges.tsv        `item<TAB>context\n`, decimal ids, no header, grouped by context in
//                     increasing context id. Items are 0..items-1, contexts 0..contexts-1
//                     (two separate id spaces).
//  - truth.tsv        `q<TAB>i\n`, held-out related item pairs, in context order.
//  - communities.tsv  `item<TAB>community\n` for every item, in item order.
//  - features.tsv     `item<TAB>f1 f2 ... fD\n` for every item, in item order, floats with 6
//                     significant digits. Or, with `npy`:
//  - features.npy     float32, C order, shape (items, dim), NumPy format v1.0 (header padded
//                     to 64 bytes), plus feature_ids.txt: one item id per line, row order.
//                     With `npy` a stale features.tsv in out_dir is removed, and without it a
//                     stale features.npy/feature_ids.txt, so the directory stays consistent.
//
// Memory does not grow with the number of edges or items: O(communities * dim) floats for
// the centroids (computed on the fly instead past 16M floats), O(max_context) for the size
// table and per-context scratch, and a bounded number of ~MB output chunks in flight.
// Work runs on the current TBB arena (set its size with tools::ConfigureThreads).

#include <cstdint>
#include <string>
#include <vector>

#include "storage/status.h"

namespace pgraph::tools {

struct GenerateOptions {
  std::string out_dir;            // required
  std::uint64_t items = 0;        // N >= 1, < 2^32 - 1 (pgraph's NodeId space)
  std::uint64_t contexts = 0;     // M >= 1, < 2^32 - 1
  std::uint64_t edges = 0;        // written edges, M <= edges <= M * min(max_context, N)
  std::uint64_t communities = 0;  // C in [1, N]; 0 = max(2, round(sqrt(N))) (1 when N = 1)
  int dim = 32;                   // feature dimension, 1..65536
  std::uint64_t seed = 1;
  double mixing = 0.15;              // share of a context's items drawn from any community, [0, 1]
  double secondary = 0;              // share drawn from the context's secondary community,
                                     // [0, 1], mixing + secondary <= 1; 0 = none
  std::uint64_t related = 2;         // secondary community within home +- related on the ring
                                     // of communities; 0 = any other community
  double feature_noise = 1.5;        // noise length relative to the unit centroid, >= 0
  double item_skew = 0.8;            // Zipf exponent of item popularity in a community, [0, 10]
  double context_skew = 1.5;         // power-law tail exponent of context sizes, (0, 10]
  std::uint64_t max_context = 2000;  // largest context (edges), 1..2^24; also capped at N
  double holdout = 0.1;              // probability that a context yields a truth pair, [0, 1]
  bool npy = false;                  // features.npy + feature_ids.txt instead of features.tsv
  bool progress = false;             // progress lines on stderr (tools::Progress)
};

struct GenerateReport {
  std::string out_dir;
  std::vector<std::string> files;  // names written, relative to out_dir
  std::uint64_t items = 0;
  std::uint64_t contexts = 0;
  std::uint64_t communities = 0;
  int dim = 0;
  std::uint64_t seed = 0;
  std::uint64_t edges_requested = 0;
  std::uint64_t edges_written = 0;  // lines in edges.tsv; always == edges_requested
  std::uint64_t truth_pairs = 0;
  std::uint64_t largest_context = 0;  // planned size of the largest context
  double size_scale = 0;              // the solved Lomax scale lambda
  double edge_seconds = 0;            // edges.tsv + truth.tsv
  double item_seconds = 0;            // features + communities
  double seconds = 0;                 // whole run
};

// Generates the files above in opts.out_dir.
// Returns the report on success. Errors:
//  - InvalidArgument: a size or parameter out of the ranges documented on GenerateOptions
//    (0 items, more contexts than edges, more edges than contexts can hold, dim < 1, ...).
//  - IOError: out_dir cannot be created, or a file cannot be written or renamed (the message
//    names the path and the OS error); ResourceExhausted when the disk is full.
// On error the `.tmp` files of this run are removed and files from earlier runs are left as
// they were (all renames happen at the end, after every file is complete).
// Not thread-safe against another Generate() into the same out_dir.
// Cost: one sequential write per file; CPU O(edges + items * dim), parallel over chunks;
// about 13 bytes per edge and 10 * dim bytes per item of text.
Result<GenerateReport> Generate(const GenerateOptions& opts);

// The community count used when GenerateOptions::communities is 0.
std::uint64_t DefaultCommunities(std::uint64_t items);

// The report as one JSON object on one line (no trailing newline).
std::string ReportToJson(const GenerateReport& report);

}  // namespace pgraph::tools
