// pgraph convert: public interaction data sets -> edges.tsv, features.tsv, pairs.tsv,
// test.tsv (tools/lib/convert.h describes the files and the held-out split).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "tools/command.h"
#include "tools/lib/convert.h"

namespace pgraph::tools {
namespace {

struct ConvertArgs {
  std::string format, in_dir, out_dir;
  // --format interactions
  TableSpec train, test;
  ItemMetaSpec items;
  std::string item_flag_cols;
  std::uint32_t title_hash_dim = 0;
  std::uint32_t min_history = 2;
  std::uint32_t train_pair_window = 1;
  bool no_weights = false, json = false;
};

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<ConvertArgs>();
  app->add_option("--format", a->format,
                  "movielens (MovieLens 100K), lastfm-lightgcn (LightGCN's Last.fm split), or "
                  "interactions (any table, described by the flags below)")
      ->required();
  app->add_option("--in", a->in_dir, "Input directory (table paths are relative to it)")
      ->required();
  app->add_option("--out", a->out_dir, "Output directory (created when missing)")->required();
  app->add_option("--title-hash-dim", a->title_hash_dim,
                  "Hashed title-token features per item (default 0: none)");
  app->add_option("--min-history", a->min_history,
                  "Leave-last-out: users with fewer interactions keep all (default 2)");
  app->add_option("--train-pair-window", a->train_pair_window,
                  "train_pairs.tsv: later interactions paired with each one (default 1; 0: "
                  "no file)");
  app->add_flag("--no-weights", a->no_weights, "Write edges.tsv without the weight column");
  app->add_flag("--json", a->json, "Print the report as JSON");
  // Generic tables (--format interactions).
  app->add_option("--train", a->train.path, "interactions: the interaction table");
  app->add_option("--test", a->test.path,
                  "interactions: a held-out table (default: leave-last-out by --time-col)");
  app->add_option("--sep", a->train.sep, "interactions: separator, tab|comma|space|literal");
  app->add_flag("--header", a->train.header, "interactions: tables start with a header line");
  app->add_option("--user-col", a->train.user_col, "interactions: user column (0-based)");
  app->add_option("--item-col", a->train.item_col, "interactions: item column");
  app->add_option("--weight-col", a->train.weight_col, "interactions: weight column (-1: none)");
  app->add_option("--time-col", a->train.time_col, "interactions: integer time column");
  app->add_option("--items", a->items.path, "interactions: item metadata table");
  app->add_option("--item-sep", a->items.sep, "interactions: metadata separator (default |)");
  app->add_flag("--item-header", a->items.header, "interactions: metadata has a header line");
  app->add_option("--item-id-col", a->items.id_col, "interactions: metadata id column");
  app->add_option("--item-flag-cols", a->item_flag_cols,
                  "interactions: numeric feature columns, e.g. 5-23");
  app->add_option("--item-year-col", a->items.year_col, "interactions: date or year column");
  app->add_option("--item-title-col", a->items.title_col, "interactions: title column");
  return [a]() -> Status {
    ConvertOptions o;
    if (a->format == "interactions") {
      o.in_dir = a->in_dir;
      o.out_dir = a->out_dir;
      o.train = a->train;
      if (!a->test.path.empty()) {
        o.test = a->train;  // same shape
        o.test.path = a->test.path;
      }
      o.items = a->items;
      if (!a->item_flag_cols.empty()) {
        PGRAPH_ASSIGN_OR_RETURN(o.items.flag_cols, ParseColumnList(a->item_flag_cols));
      }
    } else {
      PGRAPH_ASSIGN_OR_RETURN(o, PresetOptions(a->format, a->in_dir, a->out_dir));
    }
    o.items.title_hash_dim = a->title_hash_dim;
    o.min_history = a->min_history;
    o.train_pair_window = a->train_pair_window;
    o.write_weights = !a->no_weights;
    PGRAPH_ASSIGN_OR_RETURN(ConvertReport r, Convert(o));
    if (a->json) {
      std::printf("%s\n", ConvertReportJson(r).c_str());
      return Status::OK();
    }
    std::printf(
        "converted %llu interactions (%s split): %llu training edges (%llu items, %llu "
        "users), %llu held out, %llu pairs, %llu training pairs",
        (unsigned long long)r.interactions, r.split.c_str(), (unsigned long long)r.train_edges,
        (unsigned long long)r.items, (unsigned long long)r.users, (unsigned long long)r.test_rows,
        (unsigned long long)r.pairs, (unsigned long long)r.train_pairs);
    if (r.feature_dim > 0) {
      std::printf(", %llu-d item features", (unsigned long long)r.feature_dim);
    } else {
      std::printf(", no item features (train with --id-embedding-dim or degree features)");
    }
    std::printf("\n");
    if (r.test_items_not_in_train > 0) {
      std::printf(
          "%llu held-out interactions name an item with no training edge (not in the "
          "store: eval counts them as misses unless --skip-unknown)\n",
          (unsigned long long)r.test_items_not_in_train);
    }
    std::printf("wrote");
    for (const std::string& f : r.files) std::printf(" %s/%s", a->out_dir.c_str(), f.c_str());
    std::printf("\n");
    return Status::OK();
  };
}

}  // namespace
PGRAPH_COMMAND(convert, "convert",
               "Convert a public data set (MovieLens, Last.fm) to edges/features/pairs/test files",
               Setup);
}  // namespace pgraph::tools
