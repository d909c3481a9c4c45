// `pgraph generate`: writes a synthetic bipartite graph with planted communities (edges,
// features, held-out truth pairs, communities); see tools/lib/generator.h for the model.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "tools/command.h"
#include "tools/lib/generator.h"
#include "tools/lib/progress.h"

namespace pgraph::tools {
namespace {

// Parses a count: digits, optionally with a k/M/G suffix (10^3, 10^6, 10^9) or in
// scientific notation ("1e6"); the value must be a whole number.
Result<std::uint64_t> ParseCount(const std::string& flag, const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument(fmt::format(
        "{} '{}' is not a count (digits, optional k/M/G suffix or 1e6 form)", flag, text));
  };
  if (text.empty() || text[0] == '-' || text[0] == '+') return bad();
  std::string body = text;
  double mult = 1;
  switch (body.back()) {
    case 'k':
    case 'K':
      mult = 1e3;
      body.pop_back();
      break;
    case 'm':
    case 'M':
      mult = 1e6;
      body.pop_back();
      break;
    case 'g':
    case 'G':
    case 'b':
    case 'B':
      mult = 1e9;
      body.pop_back();
      break;
    default: break;
  }
  if (body.empty()) return bad();
  bool plain = body.find_first_not_of("0123456789") == std::string::npos;
  if (plain && mult == 1 && body.size() <= 19) return std::stoull(body);
  char* end = nullptr;
  double v = std::strtod(body.c_str(), &end);
  if (end != body.c_str() + body.size() || !std::isfinite(v) || v < 0) return bad();
  v *= mult;
  if (v != std::floor(v) || v >= 1.8e19) return bad();
  return static_cast<std::uint64_t>(v);
}

struct GenerateFlags {
  GenerateOptions opts;
  std::string items, contexts, edges, communities = "0", max_context = "2000";
  int threads = 0;
  bool json = false;
  bool quiet = false;
};

Status RunGenerate(GenerateFlags& f) {
  GenerateOptions& o = f.opts;
  PGRAPH_ASSIGN_OR_RETURN(o.items, ParseCount("--items", f.items));
  PGRAPH_ASSIGN_OR_RETURN(o.contexts, ParseCount("--contexts", f.contexts));
  PGRAPH_ASSIGN_OR_RETURN(o.edges, ParseCount("--edges", f.edges));
  PGRAPH_ASSIGN_OR_RETURN(o.communities, ParseCount("--communities", f.communities));
  PGRAPH_ASSIGN_OR_RETURN(o.max_context, ParseCount("--max-context", f.max_context));
  if (f.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  ConfigureThreads(f.threads);
  o.progress = !f.quiet && (o.edges >= 5'000'000 || o.items >= 1'000'000);
  PGRAPH_ASSIGN_OR_RETURN(GenerateReport r, Generate(o));
  if (f.json) {
    std::printf("%s\n", ReportToJson(r).c_str());
    return Status::OK();
  }
  std::string files;
  for (const auto& name : r.files) files += " " + name;
  std::printf("generated %s:%s\n", r.out_dir.c_str(), files.c_str());
  std::printf("  %s items in %s communities (dim %d), %s contexts (largest %s), %s edges",
              HumanCount(r.items).c_str(), HumanCount(r.communities).c_str(), r.dim,
              HumanCount(r.contexts).c_str(), HumanCount(r.largest_context).c_str(),
              HumanCount(r.edges_written).c_str());
  std::printf(", %s truth pairs\n", HumanCount(r.truth_pairs).c_str());
  double rate = r.edge_seconds > 0 ? r.edges_written / r.edge_seconds : 0;
  std::printf("  %.2fs (edges %.2fs, %s edges/s; items %.2fs), seed %llu\n", r.seconds,
              r.edge_seconds, HumanCount(rate).c_str(), r.item_seconds,
              static_cast<unsigned long long>(r.seed));
  return Status::OK();
}

std::function<Status()> SetupGenerate(CLI::App* app) {
  auto f = std::make_shared<GenerateFlags>();
  GenerateOptions& o = f->opts;
  app->option_defaults()->always_capture_default();
  app->add_option("--out", o.out_dir, "Output directory (created if missing; files replaced)")
      ->required();
  app->add_option("--items", f->items, "Number of items N (e.g. 100000, 100k, 1e5)")->required();
  app->add_option("--contexts", f->contexts, "Number of contexts M (1 <= M <= edges)")->required();
  app->add_option("--edges", f->edges, "Number of edges written to edges.tsv")->required();
  app->add_option("--communities", f->communities,
                  "Planted item communities C; 0 = max(2, round(sqrt(N)))");
  app->add_option("--dim", o.dim, "Feature dimension");
  app->add_option("--seed", o.seed, "Random seed (output is a pure function of it)");
  app->add_option("--mixing", o.mixing,
                  "Share of a context's items drawn from any community instead of its home one");
  app->add_option("--secondary", o.secondary,
                  "Share of a context's items drawn from its secondary community, one related "
                  "to its home (0 = none; mixing + secondary <= 1)");
  app->add_option("--related", o.related,
                  "Secondary community among the home's nearest N on each side of the ring of "
                  "communities (0 = any)");
  app->add_option("--feature-noise", o.feature_noise,
                  "Length of the Gaussian feature noise; the community centroid has length 1");
  app->add_option("--item-skew", o.item_skew,
                  "Zipf exponent of item popularity inside a community (0 = uniform)");
  app->add_option("--context-skew", o.context_skew,
                  "Power-law tail exponent of context sizes (smaller = heavier tail)");
  app->add_option("--max-context", f->max_context, "Largest context size (also capped at N)");
  app->add_option("--holdout", o.holdout,
                  "Probability that a context holds out one edge as a truth pair");
  app->add_flag("--npy", o.npy, "Write features.npy + feature_ids.txt instead of features.tsv");
  app->add_option("--threads", f->threads, "Worker threads; 0 = all cores");
  app->add_flag("--json", f->json, "Print the report as one JSON object");
  app->add_flag("--quiet", f->quiet, "No progress lines");
  return [f] { return RunGenerate(*f); };
}

}  // namespace

PGRAPH_COMMAND(generate, "generate",
               "Write a synthetic item-context graph with planted communities, features and "
               "held-out truth pairs",
               SetupGenerate);

}  // namespace pgraph::tools
