// `pgraph index`: builds the LSH tables over a store's item embeddings (ann/ann.h) and
// publishes them as lsh.* columns. `pgraph infer` does the same at its end.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "ann/ann.h"
#include "storage/store.h"
#include "tools/command.h"

namespace pgraph::tools {
namespace {

struct IndexArgs {
  std::string store;
  ann::LshParams params;
  bool no_center = false;
  bool json = false;
  int threads = 0;
};

Status RunIndex(const IndexArgs& a) {
  if (a.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  ConfigureThreads(a.threads);
  ann::LshParams p = a.params;
  p.center = !a.no_center;
  PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a.store, storage::StoreOptions{}));
  PGRAPH_ASSIGN_OR_RETURN(ann::IndexReport r, ann::BuildStoreIndex(store.get(), p));
  if (a.json) {
    std::printf(
        "{\"tables\": %u, \"bits\": %u, \"seed\": %llu, \"center\": %s, \"items\": %llu, "
        "\"dim\": %u, \"buckets\": %llu, \"max_bucket\": %llu, \"mean_bucket\": %.3f, "
        "\"index_bytes\": %llu, \"seconds\": %.3f}\n",
        r.params.tables, r.params.bits, static_cast<unsigned long long>(r.params.seed),
        r.params.center ? "true" : "false", static_cast<unsigned long long>(r.items), r.dim,
        static_cast<unsigned long long>(r.stats.buckets),
        static_cast<unsigned long long>(r.stats.max_bucket), r.stats.mean_bucket,
        static_cast<unsigned long long>(r.index_bytes), r.seconds);
    return Status::OK();
  }
  std::printf("indexed %llu items (dim %u) in %s: %u tables x %u bits, seed %llu%s\n",
              static_cast<unsigned long long>(r.items), r.dim, a.store.c_str(), r.params.tables,
              r.params.bits, static_cast<unsigned long long>(r.params.seed),
              r.params.center ? ", centred" : "");
  std::printf("  %llu buckets (mean %.1f items, largest %llu), %s, %.2fs\n",
              static_cast<unsigned long long>(r.stats.buckets), r.stats.mean_bucket,
              static_cast<unsigned long long>(r.stats.max_bucket),
              storage::FormatBytes(r.index_bytes).c_str(), r.seconds);
  return Status::OK();
}

std::function<Status()> SetupIndex(CLI::App* app) {
  auto a = std::make_shared<IndexArgs>();
  app->option_defaults()->always_capture_default();
  app->add_option("--store", a->store, "Store directory (opened for writing)")->required();
  app->add_option("--tables", a->params.tables, "LSH tables L (1..255); memory 4 bytes/item/table");
  app->add_option("--bits", a->params.bits, "Signature bits per table b (1..32); 0 = round(log2(items)) - 4");
  app->add_option("--seed", a->params.seed, "Seed of the random hyperplanes");
  app->add_flag("--no-center", a->no_center,
                "Hyperplanes through the origin instead of the mean embedding");
  app->add_option("--threads", a->threads, "Worker threads; 0 = all cores");
  app->add_flag("--json", a->json, "Print the report as one JSON object");
  return [a] { return RunIndex(*a); };
}

}  // namespace

PGRAPH_COMMAND(index, "index",
               "Build the LSH tables (random-hyperplane signatures) over the item embeddings",
               SetupIndex);

}  // namespace pgraph::tools
