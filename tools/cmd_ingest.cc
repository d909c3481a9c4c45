// pgraph ingest: edge list (+ item features) -> a new store.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"

namespace pgraph::tools {
namespace {

struct IngestArgs {
  storage::IngestOptions opts;
  std::string backend = "lmdb", compression = "zstd", memory_budget = "auto";
  std::string delimiter, missing = "error", header = "auto", feature_dtype = "float32";
  bool json = false;
};

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<IngestArgs>();
  app->add_option("--store", a->opts.store_dir, "Store directory to create")->required();
  app->add_option("--edges", a->opts.edges_path,
                  "Edge list: `item context [weight]` per line, TSV/CSV, '-' for stdin, .gz/.zst ok")
      ->required();
  app->add_option("--features", a->opts.features_path,
                  "Item features: TSV `item<TAB>f1 f2 ...`, or a float32 .npy with --feature-ids");
  app->add_option("--feature-ids", a->opts.feature_ids_path, "For .npy features: one item id per row");
  app->add_option("--backend", a->backend, "lmdb (default, memory-mapped) or rocksdb")
      ->check(CLI::IsMember({"lmdb", "rocksdb"}));
  app->add_option("--compression", a->compression, "zstd (default) or none (zero-copy reads)")
      ->check(CLI::IsMember({"zstd", "none"}));
  app->add_option("--zstd-level", a->opts.store.zstd_level, "zstd level 1..19 (default 3)")
      ->check(CLI::Range(1, 19));
  app->add_option("--memory-budget", a->memory_budget, storage::MemoryBudgetHelp("Chunk cache budget"));
  app->add_option("--delimiter", a->delimiter, "Field delimiter: tab, comma, space (default: detect)")
      ->check(CLI::IsMember({"tab", "comma", "space", "\t", ",", " "}));
  app->add_option("--header", a->header, "auto (default), yes or no: first data line is a header")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  app->add_option("--missing-features", a->missing,
                  "Items without a feature row: error (default), zero or mean")
      ->check(CLI::IsMember({"error", "zero", "mean"}));
  app->add_option("--feature-dtype", a->feature_dtype, "float32 (default) or float16 on disk")
      ->check(CLI::IsMember({"float32", "float16"}));
  app->add_flag("--isolated-items", a->opts.isolated_items,
                "Feature rows for items without edges add them as cold-start items (else an error)");
  app->add_flag("--overwrite", a->opts.overwrite, "Replace an existing store (atomically)");
  app->add_flag("--skip-bad-lines", a->opts.skip_bad_lines,
                "Skip malformed edge lines with a counted warning instead of failing");
  app->add_option("--threads", a->opts.threads, "Worker threads (default: all cores)");
  app->add_flag("--json", a->json, "Print the report as JSON");
  app->add_flag("!--quiet", a->opts.progress, "No progress lines");
  return [a]() -> Status {
    auto& o = a->opts;
    ConfigureThreads(o.threads);
    PGRAPH_ASSIGN_OR_RETURN(o.store.backend, storage::ParseBackend(a->backend));
    PGRAPH_ASSIGN_OR_RETURN(o.store.codec, storage::ParseCodec(a->compression));
    PGRAPH_ASSIGN_OR_RETURN(o.store.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    if (a->delimiter == "tab" || a->delimiter == "\t") o.delimiter = '\t';
    if (a->delimiter == "comma" || a->delimiter == ",") o.delimiter = ',';
    if (a->delimiter == "space" || a->delimiter == " ") o.delimiter = ' ';
    o.header = a->header == "auto" ? -1 : a->header == "yes" ? 1 : 0;
    o.missing_features = a->missing == "zero"   ? storage::MissingFeatures::kZero
                         : a->missing == "mean" ? storage::MissingFeatures::kMean
                                                : storage::MissingFeatures::kError;
    o.features_f16 = a->feature_dtype == "float16";
    PGRAPH_ASSIGN_OR_RETURN(storage::IngestReport r, storage::Ingest(o));
    if (a->json) {
      std::printf(
          "{\"store\": \"%s\", \"items\": %llu, \"contexts\": %llu, \"edges\": %llu, "
          "\"duplicate_edges\": %llu, \"lines\": %llu, \"bad_lines\": %llu, \"feature_dim\": %llu, "
          "\"filled_features\": %llu, \"seconds\": %.3f}\n",
          o.store_dir.c_str(), (unsigned long long)r.items, (unsigned long long)r.contexts,
          (unsigned long long)r.edges, (unsigned long long)r.duplicate_edges,
          (unsigned long long)r.lines, (unsigned long long)r.bad_lines,
          (unsigned long long)r.feature_dim, (unsigned long long)r.filled_features, r.seconds);
    } else {
      std::printf("ingested %llu edges (%llu items, %llu contexts, %llu duplicates merged",
                  (unsigned long long)r.edges, (unsigned long long)r.items,
                  (unsigned long long)r.contexts, (unsigned long long)r.duplicate_edges);
      if (r.bad_lines) std::printf(", %llu bad lines skipped", (unsigned long long)r.bad_lines);
      if (r.feature_dim) std::printf(", %llu-dim features", (unsigned long long)r.feature_dim);
      std::printf(") into %s in %.2fs\n", o.store_dir.c_str(), r.seconds);
    }
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(ingest, "ingest", "Build a store from an edge list and item features", Setup);
}  // namespace pgraph::tools
