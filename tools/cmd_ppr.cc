// pgraph ppr: items ranked by personalized PageRank from one or more items (Monte-Carlo
// walks with restart); the random-walk (Pixie-like) recommendation baseline.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "walker/walker.h"

namespace pgraph::tools {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

struct PprArgs {
  std::string store, memory_budget = "auto";
  std::vector<std::string> items;
  walker::PprOptions opts;
  std::uint64_t k = 20;
  bool json = false;
};

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<PprArgs>();
  app->add_option("--store", a->store, "Store directory (ingested)")->required();
  app->add_option("--item", a->items,
                  "Query item (external id); repeat for a multi-item (Pixie) query")
      ->required();
  app->add_option("--k", a->k, "Items to print (default 20)");
  app->add_option("--restart", a->opts.restart, "Restart probability, in (0, 1) (default 0.3)");
  app->add_option("--walks", a->opts.walks, "Monte-Carlo walks (default 20000)");
  app->add_option("--seed", a->opts.seed, "Random seed");
  app->add_option("--memory-budget", a->memory_budget, storage::MemoryBudgetHelp("Chunk cache budget"));
  app->add_flag("--json", a->json, "One JSON object: the query and the ranked items");
  return [a]() -> Status {
    if (!(a->opts.restart > 0 && a->opts.restart < 1)) {
      return Status::InvalidArgument("--restart must be in (0, 1)");
    }
    if (a->k < 1) return Status::InvalidArgument("--k must be >= 1");
    storage::StoreOptions so;
    so.read_only = true;
    PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a->store, so));
    PGRAPH_ASSIGN_OR_RETURN(auto graph, walker::WalkGraph::Open(*store));
    PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(*store, NodeKind::kItem));
    std::vector<NodeId> sources;
    for (const std::string& name : a->items) {
      auto id = ids->Find(name);
      if (!id.ok()) return Status::InvalidArgument("unknown item id '" + name + "'");
      sources.push_back(id.value());
    }
    a->opts.top_k = a->k;
    PGRAPH_ASSIGN_OR_RETURN(auto ranked, walker::PersonalizedPageRank(*graph, sources, a->opts));
    if (a->json) {
      std::string out = "{\"query\": [";
      for (std::size_t i = 0; i < a->items.size(); ++i) {
        out += (i ? ", " : "") + JsonString(a->items[i]);
      }
      out += "], \"restart\": " + std::to_string(a->opts.restart) +
             ", \"walks\": " + std::to_string(a->opts.walks) + ", \"results\": [";
      for (std::size_t r = 0; r < ranked.size(); ++r) {
        PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(ranked[r].first));
        char score[32];
        std::snprintf(score, sizeof score, "%.6g", ranked[r].second);
        out += std::string(r ? ", " : "") + "{\"item\": " + JsonString(name) +
               ", \"score\": " + score + "}";
      }
      out += "]}\n";
      std::fputs(out.c_str(), stdout);
      return Status::OK();
    }
    for (std::size_t r = 0; r < ranked.size(); ++r) {
      PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(ranked[r].first));
      std::printf("%zu\t%s\t%.6g\n", r + 1, name.c_str(), ranked[r].second);
    }
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(ppr, "ppr",
               "Items ranked by personalized PageRank from one or more items (random-walk "
               "recommendation baseline)",
               Setup);
}  // namespace pgraph::tools
