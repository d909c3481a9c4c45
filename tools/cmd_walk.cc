// pgraph walk: importance neighbourhoods (walk.neighbors / walk.weights) and training pairs.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "tools/lib/json.h"
#include "tools/lib/progress.h"
#include "walker/walker.h"

namespace pgraph::tools {
namespace {

struct WalkArgs {
  std::string store, memory_budget = "auto", edge_weights = "auto", layout = "auto";
  walker::WalkStageOptions opts;
  int threads = 0;
  bool json = false, quiet = false;
};

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<WalkArgs>();
  walker::WalkOptions& w = a->opts.walk;
  walker::PairOptions& p = a->opts.pairs;
  app->add_option("--store", a->store, "Store directory (ingested)")->required();
  app->add_option("--walks-per-node", w.walks_per_node,
                  "Walks started from each item (default 400; see docs/WALKER.md)");
  app->add_option("--walk-length", w.walk_length,
                  "Most item->context->item steps per walk (default 2)");
  app->add_option("--restart", w.restart,
                  "Probability of ending a walk after each step, in [0, 1) (default 0)");
  app->add_option("--top-t", w.top_t, "Neighbours kept per item, T (default 50)");
  app->add_option("--seed", w.seed, "Random seed (results do not depend on --threads)");
  app->add_option("--early-stop-nodes", w.early_stop_nodes,
                  "Pixie early stop: stop once this many items reached --early-stop-visits");
  app->add_option("--early-stop-visits", w.early_stop_visits, "Visit threshold for early stop");
  app->add_option("--lanes", w.lanes, "Walks in flight per thread (default 32)");
  app->add_option("--edge-weights", a->edge_weights,
                  "How a step chooses among a node's edges: log (in proportion to log(1 + "
                  "weight) of ingest's edge weights, e.g. play counts: graded, no single edge "
                  "dominates), linear (to the weight itself), uniform (the paper's walks) or "
                  "auto (default: log when the store has edge weights, else uniform)");
  app->add_option("--pairs", p.pairs_path,
                  "Labelled training pairs `q i` (external ids); default: co-occurrence pairs");
  app->add_option("--heldout", p.heldout_path,
                  "Held-out evaluation pairs `q i` (e.g. generate's truth.tsv)");
  app->add_option("--heldout-fraction", p.heldout_fraction,
                  "Also hold out this share of the pairs (or items, without --pairs), [0, 1)");
  app->add_option("--pairs-per-item", p.pairs_per_item,
                  "Co-occurrence pairs per item, drawn in proportion to visits (default 0: "
                  "edges / items, clamped to [2, 10])");
  app->add_option("--min-visits", p.min_visits,
                  "Co-occurrence pairs need at least this many visits (default 2)");
  app->add_flag("--skip-unknown", p.skip_unknown, "Drop pairs naming unknown items (counted)");
  app->add_option("--layout", a->layout,
                  "Also store the neighbourhoods in a locality order, which `pgraph infer` "
                  "reads in place instead of ordering the items itself: auto (default: stores "
                  "of 32768 items or more whose neighbourhoods cluster), on, off. Costs "
                  "items x T x 8 bytes of disk and, while walking, of memory");
  app->add_option("--memory-budget", a->memory_budget, storage::MemoryBudgetHelp("Chunk cache budget"));
  app->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  app->add_flag("--json", a->json, "Print the report as JSON");
  app->add_flag("--quiet", a->quiet, "No progress line");
  return [a]() -> Status {
    // Check arguments before touching the store.
    PGRAPH_RETURN_IF_ERROR(walker::ValidateWalkOptions(a->opts.walk));
    PGRAPH_ASSIGN_OR_RETURN(a->opts.edge_weights, walker::ParseEdgeWeighting(a->edge_weights));
    PGRAPH_ASSIGN_OR_RETURN(a->opts.layout, walker::ParseLayoutMode(a->layout));
    const double hf = a->opts.pairs.heldout_fraction;
    if (!(hf >= 0.0 && hf < 1.0)) {
      return Status::InvalidArgument("--heldout-fraction must be in [0, 1)");
    }
    const int threads = ConfigureThreads(a->threads);
    storage::StoreOptions so;
    PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a->store, so));
    Progress progress("walk", store->num_items(), "items", !a->quiet);
    a->opts.progress = [&](std::uint64_t done, std::uint64_t) { progress.Set(done); };
    PGRAPH_ASSIGN_OR_RETURN(walker::WalkReport r, walker::RunWalkStage(store.get(), a->opts));
    progress.Finish();
    if (!r.note.empty()) std::fprintf(stderr, "walk: note: %s\n", r.note.c_str());
    const auto& w = a->opts.walk;
    if (a->json) {
      std::printf(
          "{\"store\": \"%s\", \"items\": %llu, \"isolated_items\": %llu, \"short_rows\": %llu, "
          "\"steps\": %llu, \"train_pairs\": %llu, \"heldout_pairs\": %llu, "
          "\"skipped_pairs\": %llu, \"dropped_train_pairs\": %llu, \"pairs_source\": \"%s\", "
          "\"threads\": %d, \"walk_seconds\": %.3f, \"seconds\": %.3f, "
          "\"layout\": {\"written\": %s, \"share\": %.4f, \"seconds\": %.3f, \"note\": \"%s\"}, "
          "\"params\": %s}\n",
          store->dir().c_str(), (unsigned long long)r.items, (unsigned long long)r.isolated_items,
          (unsigned long long)r.short_rows, (unsigned long long)r.steps,
          (unsigned long long)r.train_pairs, (unsigned long long)r.heldout_pairs,
          (unsigned long long)r.skipped_pairs, (unsigned long long)r.dropped_train_pairs,
          r.pairs_source.c_str(), threads, r.walk_seconds, r.seconds,
          r.layout.written ? "true" : "false", r.layout.share, r.layout.seconds,
          JsonEscape(r.layout.note).c_str(),
          walker::WalkParamsJson(w, a->opts.pairs, r.edge_weights).c_str());
    } else {
      std::printf("walked %llu items (T=%u, %u walks x %u steps, restart %g, edge weights %s): %llu "
                  "steps in %.2fs (%.1fM steps/s, %d threads); %llu isolated, %llu with fewer "
                  "than T\n",
                  (unsigned long long)r.items, w.top_t, w.walks_per_node, w.walk_length,
                  w.restart, walker::EdgeWeightingName(r.edge_weights),
                  (unsigned long long)r.steps, r.walk_seconds,
                  r.walk_seconds > 0 ? r.steps / r.walk_seconds / 1e6 : 0.0, threads,
                  (unsigned long long)r.isolated_items, (unsigned long long)r.short_rows);
      std::printf("pairs: %llu training (%s), %llu held out", (unsigned long long)r.train_pairs,
                  r.pairs_source.c_str(), (unsigned long long)r.heldout_pairs);
      if (r.dropped_train_pairs) {
        std::printf(", %llu labelled pairs dropped as held out",
                    (unsigned long long)r.dropped_train_pairs);
      }
      if (r.skipped_pairs) {
        std::printf(", %llu with unknown items skipped", (unsigned long long)r.skipped_pairs);
      }
      std::printf("\n");
      if (r.layout.written) {
        std::printf("layout: %.0f%% of neighbours within 4096 positions (%.2fs)\n",
                    100.0 * r.layout.share, r.layout.seconds);
      } else {
        std::printf("layout: none (%s)\n", r.layout.note.c_str());
      }
    }
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(walk, "walk",
               "Importance neighbourhoods by random walks (walk.neighbors/weights) and "
               "training pairs",
               Setup);
}  // namespace pgraph::tools
