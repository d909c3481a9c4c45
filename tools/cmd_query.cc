// `pgraph query`: related items by embedding similarity, through the LSH index (default)
// or by brute force (--exact). Opens the store read-only, so it runs while another process
// writes to the store (it sees the last publication before it opened).
#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "ann/ann.h"
#include "storage/store.h"
#include "tools/command.h"
#include "tools/lib/json.h"
#include "tools/lib/text_lines.h"

namespace pgraph::tools {
namespace {

struct QueryArgs {
  std::string store;
  std::string item, items_file, vector_file;
  int k = 10;
  bool json = false, exact = false, exclude_self = false;
  ann::SearchOptions search;
  int threads = 0;
  std::string memory_budget = "512M";
};

// Calls f(line, line_number) for each line of `path` ("-" = stdin) that is not blank and
// does not start with '#', leading blanks removed.
template <typename F>
Status ForEachLine(const std::string& path, F&& f) {
  return ForEachTextLine(path, [&](std::string_view line, std::uint64_t number) -> Status {
    if (IsBlankOrCommentLine(line)) return Status::OK();
    return f(std::string(line.substr(line.find_first_not_of(" \t"))), number);
  });
}

// One vector per line: `dim` floats separated by spaces, tabs or commas.
Status ReadVectors(const std::string& path, std::uint32_t dim, std::vector<float>* out,
                   std::vector<std::string>* names) {
  return ForEachLine(path, [&](const std::string& line, std::uint64_t number) -> Status {
    std::uint32_t count = 0;
    const char* p = line.data();
    const char* end = p + line.size();
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) ++p;
      if (p == end) break;
      float v = 0;
      auto [next, ec] = std::from_chars(p, end, v);
      if (ec != std::errc()) {
        return Status::InvalidArgument(path + ":" + std::to_string(number) +
                                       ": not a number near '" + std::string(p, std::min<std::size_t>(end - p, 20)) + "'");
      }
      out->push_back(v);
      ++count;
      p = next;
    }
    if (count != dim) {
      return Status::InvalidArgument(path + ":" + std::to_string(number) + ": " +
                                     std::to_string(count) + " values, the embeddings have dim " +
                                     std::to_string(dim));
    }
    names->push_back(path + ":" + std::to_string(number));
    return Status::OK();
  });
}

Status RunQuery(const QueryArgs& a) {
  const int sources = !a.item.empty() + !a.items_file.empty() + !a.vector_file.empty();
  if (sources != 1) {
    return Status::InvalidArgument("give exactly one of --item, --items, --vector");
  }
  if (a.k < 1) return Status::InvalidArgument("--k must be >= 1, got " + std::to_string(a.k));
  if (a.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  ConfigureThreads(a.threads);

  storage::StoreOptions so;
  so.read_only = true;
  PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseByteSize(a.memory_budget));
  PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a.store, so));
  PGRAPH_ASSIGN_OR_RETURN(auto retriever, ann::Retriever::Open(*store));
  PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(*store, NodeKind::kItem));
  if (!a.exact && retriever->index() == nullptr) {
    return Status::NotFound(retriever->index_problem() + " (or use --exact)");
  }

  ann::SearchOptions o = a.search;
  o.k = static_cast<std::uint32_t>(a.k);
  std::vector<std::string> names;
  std::vector<std::vector<ann::Neighbor>> results;
  if (!a.vector_file.empty()) {
    std::vector<float> vectors;
    PGRAPH_RETURN_IF_ERROR(ReadVectors(a.vector_file, retriever->dim(), &vectors, &names));
    PGRAPH_ASSIGN_OR_RETURN(results, retriever->Search(vectors, o, a.exact));
  } else {
    std::vector<NodeId> items;
    auto add = [&](const std::string& name) -> Status {
      auto id = ids->Find(name);
      if (!id.ok()) {
        return Status::NotFound("item '" + name + "' is not in store " + a.store);
      }
      items.push_back(*id);
      names.push_back(name);
      return Status::OK();
    };
    if (!a.item.empty()) {
      PGRAPH_RETURN_IF_ERROR(add(a.item));
    } else {
      PGRAPH_RETURN_IF_ERROR(
          ForEachLine(a.items_file, [&](const std::string& line, std::uint64_t number) {
            const std::string name = line.substr(0, line.find_first_of(" \t"));
            return add(name).WithContext(a.items_file + ":" + std::to_string(number));
          }));
    }
    PGRAPH_ASSIGN_OR_RETURN(results, retriever->SearchItems(items, o, a.exact, a.exclude_self));
  }

  std::string out;
  for (std::size_t q = 0; q < results.size(); ++q) {
    if (a.json) {
      out += "{\"query\": \"" + JsonEscape(names[q]) + "\", \"neighbors\": [";
    }
    for (std::size_t r = 0; r < results[q].size(); ++r) {
      PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(results[q][r].id));
      char score[32];
      std::snprintf(score, sizeof score, "%.6g", results[q][r].score);
      if (a.json) {
        out += (r ? ", " : "") + std::string("{\"item\": \"") + JsonEscape(name) +
               "\", \"score\": " + score + "}";
      } else {
        out += names[q] + "\t" + std::to_string(r + 1) + "\t" + name + "\t" + score + "\n";
      }
    }
    if (a.json) out += "]}\n";
    if (out.size() > (1 << 16)) {
      std::fputs(out.c_str(), stdout);
      out.clear();
    }
  }
  std::fputs(out.c_str(), stdout);
  if (std::fflush(stdout) != 0) return Status::IOError("cannot write to stdout");
  return Status::OK();
}

std::function<Status()> SetupQuery(CLI::App* app) {
  auto a = std::make_shared<QueryArgs>();
  app->option_defaults()->always_capture_default();
  app->footer(
      "Output: one line per neighbour, `query<TAB>rank<TAB>item<TAB>score` (rank from 1, "
      "score = inner product), or with --json one object per query: {\"query\": ..., "
      "\"neighbors\": [{\"item\": ..., \"score\": ...}, ...]}. Without --exclude-self an item "
      "query lists the item itself first.");
  app->add_option("--store", a->store, "Store directory (opened read-only)")->required();
  app->add_option("--item", a->item, "External id of the query item");
  app->add_option("--items", a->items_file,
                  "File of query item ids, one per line (first field; '-' = stdin)");
  app->add_option("--vector", a->vector_file,
                  "File of query vectors, one per line, dim floats separated by spaces, tabs "
                  "or commas ('-' = stdin)");
  app->add_option("--k", a->k, "Neighbours per query");
  app->add_flag("--json", a->json, "JSON lines output");
  app->add_flag("--exact", a->exact, "Brute force over all items instead of the LSH index");
  app->add_flag("--exclude-self", a->exclude_self, "Leave the query item out of its results");
  app->add_option("--probes", a->search.probes,
                  "LSH: extra Hamming-distance-1 buckets probed per table");
  app->add_option("--candidates", a->search.candidates,
                  "LSH: candidates kept for exact re-ranking (adaptive Weak-AND threshold)");
  app->add_option("--theta", a->search.theta,
                  "LSH: keep candidates colliding in >= theta tables (0 = adaptive)");
  app->add_option("--threads", a->threads, "Worker threads for many queries; 0 = all cores");
  app->add_option("--memory-budget", a->memory_budget, "Chunk cache budget of the store");
  return [a] { return RunQuery(*a); };
}

}  // namespace

PGRAPH_COMMAND(query, "query",
               "Related items of an item, a list of items or a vector (LSH index or --exact)",
               SetupQuery);

}  // namespace pgraph::tools
