// pgraph infer: layer-by-layer embeddings for every item of a store (infer/infer.h).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "infer/infer.h"
#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "tools/torch_commands.h"
#include "tools/lib/json.h"
#include "tools/lib/progress.h"

namespace pgraph::tools {
namespace {

struct InferArgs {
  std::string store, model_store, memory_budget = "auto", device = "cpu", dtype = "float32";
  std::string locality = "auto";
  int threads = 0;
  bool resume = false, keep = false, no_index = false, quiet = false, json = false;
  std::uint64_t block_rows = 0, segment_rows = 0;
};

void PrintJson(const std::string& store, const infer::InferReport& r) {
  std::string layers;
  for (const auto& l : r.per_layer) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s{\"layer\": %u, \"project_seconds\": %.3f, \"pool_seconds\": %.3f, "
                  "\"partitions\": %llu, \"block_rows\": %llu}",
                  layers.empty() ? "" : ", ", l.layer, l.project_seconds, l.pool_seconds,
                  static_cast<unsigned long long>(l.partitions),
                  static_cast<unsigned long long>(l.block_rows));
    layers += buf;
  }
  std::printf(
      "{\"store\": \"%s\", \"items\": %llu, \"dim\": %u, \"layers\": [%s], "
      "\"device\": \"%s\", \"seconds\": %.3f, \"head_seconds\": %.3f, \"gflops\": %.3f, "
      "\"locality_order\": %s, \"layout_source\": \"%s\", \"layout_note\": \"%s\", "
      "\"order_seconds\": %.3f, "
      "\"locality_share\": %.4f, \"resumed\": %s, \"resumed_from\": \"%s\", "
      "\"new_items\": %llu, \"index_built\": %s, \"peak_working_bytes\": %llu}\n",
      JsonEscape(store).c_str(), static_cast<unsigned long long>(r.items), r.dim, layers.c_str(),
      JsonEscape(r.device).c_str(), r.seconds, r.head_seconds, r.flops / 1e9,
      r.locality_order ? "true" : "false", JsonEscape(r.layout_source).c_str(),
      JsonEscape(r.layout_note).c_str(), r.order_seconds,
      r.locality_share, r.resumed ? "true" : "false", JsonEscape(r.resumed_from).c_str(),
      static_cast<unsigned long long>(r.new_items), r.index_built ? "true" : "false",
      static_cast<unsigned long long>(r.peak_working_bytes));
}

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<InferArgs>();
  app->add_option("--store", a->store, "Store directory (with walk.* columns)")->required();
  app->add_option("--model-store", a->model_store,
                  "Take the checkpoint from this store (the one trained on) instead; items "
                  "are matched by external id, new items are embedded inductively");
  app->add_option("--memory-budget", a->memory_budget,
                  storage::MemoryBudgetHelp(
                      "Working memory incl. the chunk cache (out of core beyond)"));
  app->add_option("--threads", a->threads, "Threads (0: all cores)");
  app->add_option("--device", a->device, "cpu | cuda | cuda:N | auto");
  app->add_option("--dtype", a->dtype, "embedding column type: float32 | float16");
  app->add_flag("--resume", a->resume, "Continue a killed run from its last published segment");
  app->add_flag("--keep-intermediates", a->keep, "Keep the infer.p*/infer.h* columns");
  app->add_flag("--no-index", a->no_index, "Do not rebuild the LSH index afterwards");
  app->add_option("--locality-order", a->locality,
                  "auto | on | off: run the layers in an order that keeps neighbours together "
                  "(faster pooling; same embeddings). auto: when a layer's rows exceed the "
                  "caches and the budget holds the ordered plan");
  app->add_option("--block-rows", a->block_rows, "Rows per GEMM block (0: auto)");
  app->add_option("--segment-rows", a->segment_rows, "Rows per resumable segment (0: 1M)");
  app->add_flag("--quiet", a->quiet, "No progress output");
  app->add_flag("--json", a->json, "Print the report as one JSON object on stdout");
  return [a]() -> Status {
    infer::InferOptions o;
    o.store_dir = a->store;
    o.model_store = a->model_store;
    PGRAPH_ASSIGN_OR_RETURN(o.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(o.dtype, infer::ParseOutputType(a->dtype));
    o.threads = ConfigureThreads(a->threads);
    o.device = a->device;
    o.resume = a->resume;
    o.keep_intermediates = a->keep;
    o.build_index = !a->no_index;
    o.block_rows = a->block_rows;
    PGRAPH_ASSIGN_OR_RETURN(o.locality, infer::ParseLocalityMode(a->locality));
    o.segment_rows = a->segment_rows;
    std::unique_ptr<Progress> progress;
    std::string stage;
    if (!a->quiet) {
      o.on_progress = [&](const infer::StageProgress& p) {
        if (p.stage != stage || !progress) {
          if (progress) progress->Finish();
          stage = p.stage;
          progress = std::make_unique<Progress>(p.stage, p.rows_total, "rows");
        }
        progress->Set(p.rows_done);
        if (p.finished) {
          progress->Finish();
          progress.reset();
        }
      };
    }
    auto r = infer::Infer(o);
    if (progress) progress->Finish();
    if (!r.ok()) return r.status();
    if (a->json) PrintJson(a->store, *r);
    if (!a->quiet) {
      const infer::InferReport& rep = *r;
      std::fprintf(stderr, "infer: %llu items, d=%u, K=%u on %s in %.2f s (%.2f GFLOP/s)%s\n",
                   static_cast<unsigned long long>(rep.items), rep.dim, rep.layers,
                   rep.device.c_str(), rep.seconds,
                   rep.seconds > 0 ? rep.flops / rep.seconds / 1e9 : 0.0,
                   rep.resumed ? (" resumed from " + rep.resumed_from).c_str() : "");
      if (rep.locality_order) {
        std::fprintf(stderr,
                     "  locality order (%s): %.2f s; %.0f%% of neighbours within 4096 "
                     "positions\n",
                     rep.layout_source == "stored" ? "the walk's layout" : "computed",
                     rep.order_seconds, 100.0 * rep.locality_share);
      } else {
        std::fprintf(stderr, "  item order (%s)\n", rep.layout_note.c_str());
      }
      for (const auto& l : rep.per_layer) {
        std::fprintf(stderr,
                     "  layer %u: project %.2f s, pool %.2f s, %llu neighbour range(s), "
                     "blocks of %llu rows\n",
                     l.layer, l.project_seconds, l.pool_seconds,
                     static_cast<unsigned long long>(l.partitions),
                     static_cast<unsigned long long>(l.block_rows));
      }
      if (rep.new_items > 0) {
        std::fprintf(stderr, "  %llu items not seen in training (embedded inductively)\n",
                     static_cast<unsigned long long>(rep.new_items));
      }
      std::fprintf(stderr, "  index: %s\n",
                   rep.index_built ? "rebuilt" : ("not built (" + rep.index_note + ")").c_str());
    }
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(infer_cmd, "infer", kInferDescription, Setup);
}  // namespace pgraph::tools
