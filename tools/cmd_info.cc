// pgraph info: what a store holds (counts, degrees, columns, sizes).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "storage/store.h"
#include "tools/command.h"
#include "tools/lib/json.h"

namespace pgraph::tools {
namespace {

std::string DegreeJson(const storage::DegreeSummary& d) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"min\": %llu, \"max\": %llu, \"mean\": %.3f, \"p50\": %.0f, \"p90\": %.0f, "
                "\"p99\": %.0f, \"zero\": %llu}",
                (unsigned long long)d.min, (unsigned long long)d.max, d.mean, d.p50, d.p90, d.p99,
                (unsigned long long)d.zero);
  return buf;
}

struct InfoArgs {
  std::string store, memory_budget = "256M";
  bool json = false, verify = false;
};

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<InfoArgs>();
  app->add_option("--store", a->store, "Store directory")->required();
  app->add_flag("--json", a->json, "Machine-readable output");
  app->add_flag("--verify", a->verify, "Also read every chunk and check its checksum");
  app->add_option("--memory-budget", a->memory_budget, "Chunk cache budget");
  return [a]() -> Status {
    storage::StoreOptions so;
    so.read_only = true;
    PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseByteSize(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a->store, so));
    if (a->verify) PGRAPH_RETURN_IF_ERROR(store->Verify());
    std::unique_ptr<storage::Graph> graph;
    if (store->HasColumn(storage::columns::kItemOffsets)) {
      auto g = storage::Graph::Open(*store);
      if (g.ok()) graph = std::move(g).value();
    }
    auto cols = store->ListColumns();
    std::uint64_t raw = 0, stored = 0;
    for (const auto& c : cols) {
      raw += c.raw_bytes;
      stored += c.stored_bytes;
    }
    if (a->json) {
      std::printf("{\"store\": \"%s\", \"backend\": \"%s\", \"format_version\": %u, ",
                  JsonEscape(store->dir()).c_str(), storage::BackendName(store->backend()),
                  store->format_version());
      std::printf("\"items\": %llu, \"contexts\": %llu, \"edges\": %llu, \"feature_dim\": %llu, ",
                  (unsigned long long)store->num_items(), (unsigned long long)store->num_contexts(),
                  (unsigned long long)store->num_edges(), (unsigned long long)store->feature_dim());
      std::printf("\"counts\": {");
      bool first = true;
      for (const auto& [k, v] : store->counts()) {
        std::printf("%s\"%s\": %llu", first ? "" : ", ", JsonEscape(k).c_str(), (unsigned long long)v);
        first = false;
      }
      std::printf("}, ");
      if (graph) {
        std::printf("\"item_degree\": %s, \"context_degree\": %s, ",
                    DegreeJson(graph->ItemDegrees()).c_str(),
                    DegreeJson(graph->ContextDegrees()).c_str());
      }
      std::printf("\"raw_bytes\": %llu, \"stored_bytes\": %llu, \"columns\": [",
                  (unsigned long long)raw, (unsigned long long)stored);
      for (std::size_t i = 0; i < cols.size(); ++i) {
        const auto& c = cols[i];
        std::printf("%s{\"name\": \"%s\", \"dtype\": \"%s\", \"rows\": %llu, \"width\": %u, "
                    "\"codec\": \"%s\", \"chunks\": %llu, \"raw_bytes\": %llu, \"stored_bytes\": %llu}",
                    i ? ", " : "", JsonEscape(c.name).c_str(), storage::DTypeName(c.dtype),
                    (unsigned long long)c.rows, c.width, storage::CodecName(c.codec),
                    (unsigned long long)c.num_chunks(), (unsigned long long)c.raw_bytes,
                    (unsigned long long)c.stored_bytes);
      }
      std::printf("]%s}\n", a->verify ? ", \"verified\": true" : "");
      return Status::OK();
    }
    std::printf("store      %s\n", store->dir().c_str());
    std::printf("backend    %s (format %u)\n", storage::BackendName(store->backend()),
                store->format_version());
    std::printf("items      %llu\ncontexts   %llu\nedges      %llu\nfeatures   %llu dims\n",
                (unsigned long long)store->num_items(), (unsigned long long)store->num_contexts(),
                (unsigned long long)store->num_edges(), (unsigned long long)store->feature_dim());
    if (graph) {
      auto pr = [](const char* what, const storage::DegreeSummary& d) {
        std::printf("%-10s min %llu, p50 %.0f, mean %.2f, p90 %.0f, p99 %.0f, max %llu, %llu with none\n",
                    what, (unsigned long long)d.min, d.p50, d.mean, d.p90, d.p99,
                    (unsigned long long)d.max, (unsigned long long)d.zero);
      };
      pr("item deg", graph->ItemDegrees());
      pr("ctx deg", graph->ContextDegrees());
    }
    std::printf("\n%-28s %-5s %12s %6s %-5s %7s %12s %12s %6s\n", "column", "dtype", "rows", "width",
                "codec", "chunks", "raw", "stored", "ratio");
    for (const auto& c : cols) {
      std::printf("%-28s %-5s %12llu %6u %-5s %7llu %12s %12s %5.2fx\n", c.name.c_str(),
                  storage::DTypeName(c.dtype), (unsigned long long)c.rows, c.width,
                  storage::CodecName(c.codec), (unsigned long long)c.num_chunks(),
                  storage::FormatBytes(c.raw_bytes).c_str(),
                  storage::FormatBytes(c.stored_bytes).c_str(),
                  c.stored_bytes ? double(c.raw_bytes) / double(c.stored_bytes) : 1.0);
    }
    std::printf("%-28s %-5s %12s %6s %-5s %7s %12s %12s %5.2fx\n", "total", "", "", "", "", "",
                storage::FormatBytes(raw).c_str(), storage::FormatBytes(stored).c_str(),
                stored ? double(raw) / double(stored) : 1.0);
    if (a->verify) std::printf("\nall chunks verified\n");
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(info, "info", "Show what a store holds: counts, degrees, columns, sizes", Setup);
}  // namespace pgraph::tools
