#pragma once
// Converters from public interaction data sets to pgraph's input files (`pgraph convert`).
//
// Every converter is one generic routine over two table shapes, so another data set in the
// same shapes needs flags, not code:
//  - an interaction table: one `user, item[, weight][, time]` row per line, fields found by
//    column index and split by a separator (tab, comma, "|", "::", runs of spaces, ...);
//  - optionally an item metadata table: one row per item with an id column, numeric flag
//    columns (e.g. genres), a date or year column and a title column.
//
// Output files in out_dir (each written as `<name>.tmp` and renamed when all succeeded; a
// file of an earlier run that this run does not produce is removed):
//  - edges.tsv     `item<TAB>user[<TAB>weight]`: the training interactions, in input order.
//                  Items and users (contexts) keep their external ids (two id spaces).
//  - test.tsv      `user<TAB>item`: the held-out interactions, users in order of first
//                  appearance. For `pgraph eval --test`.
//  - pairs.tsv     `previous item<TAB>held-out item<TAB>user`, only for a time-based
//                  leave-last-out split. For `pgraph eval --pairs`.
//  - train_pairs.tsv  `item<TAB>later item<TAB>user`, only with a time column: for every
//                  user, each training interaction paired with the next `train_pair_window`
//                  ones in time order (same item skipped). Held-out interactions never
//                  appear. Labelled training pairs for `pgraph walk --pairs`.
//  - features.tsv  `item<TAB>f1 f2 ...` for every item of edges.tsv, only when there is item
//                  metadata: the flag columns as given, then the release year scaled to
//                  [0, 1] over the catalogue plus a year-missing flag (when a year column is
//                  given), then `title_hash_dim` signed hashed title-token counts scaled to
//                  unit length (when > 0). Items without a metadata row get zeros (year
//                  missing = 1). Without metadata no features are written: train with
//                  learnable id embeddings (`--id-embedding-dim`) or degree features.
//
// Held-out split:
//  - with a test table: train table -> edges.tsv, test table -> test.tsv, no pairs;
//  - else with a time column, leave-last-out: for every user with at least `min_history`
//    interactions, the latest one (by time; ties: the later line) is held out; pairs.tsv
//    pairs it with the user's previous interaction in the same order;
//  - else no split: everything goes to edges.tsv.
//
// Presets: `movielens` (MovieLens 100K: u.data, u.item with 19 genre flags and the release
// date; leave-last-out), `lastfm-lightgcn` (LightGCN's Last.fm split: data1.txt train,
// test1.txt test, play counts as weights, no item features).
//
// Not thread-safe state: none; the functions may be called concurrently on different
// output directories.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace pgraph::tools {

// Field separator: "tab", "comma", "space" (runs of spaces and tabs), or a literal string
// such as "|" or "::".
struct TableSpec {
  std::string path;  // empty: no table
  std::string sep = "tab";
  bool header = false;  // skip the first line
  int user_col = 0;     // 0-based column indexes; -1: absent
  int item_col = 1;
  int weight_col = -1;
  int time_col = -1;  // integer timestamps (e.g. unix seconds)
};

struct ItemMetaSpec {
  std::string path;  // empty: no item features
  std::string sep = "|";
  bool header = false;
  int id_col = 0;
  std::vector<int> flag_cols;        // numeric columns copied as features, in this order
  int year_col = -1;                 // a date or year: its last run of 4 digits is the year
  int title_col = -1;                // title tokens; also the year when year_col gives none
  std::uint32_t title_hash_dim = 0;  // 0: no title features
};

struct ConvertOptions {
  std::string in_dir;   // relative table paths are resolved against it
  std::string out_dir;  // created when missing
  TableSpec train;
  TableSpec test;  // path empty: split by time (leave-last-out) or not at all
  ItemMetaSpec items;
  bool write_weights = true;            // third column of edges.tsv when a weight column exists
  std::uint32_t min_history = 2;        // leave-last-out: users with fewer keep everything
  std::uint32_t train_pair_window = 1;  // train_pairs.tsv: later items per item; 0: no file
};

// The options of a named preset ("movielens", "lastfm-lightgcn") reading from in_dir.
// InvalidArgument naming the known presets for any other name.
Result<ConvertOptions> PresetOptions(std::string_view format, const std::string& in_dir,
                                     const std::string& out_dir);

struct ConvertReport {
  std::vector<std::string> files;      // written, relative to out_dir
  std::uint64_t interactions = 0;      // rows read (train + test tables)
  std::uint64_t users = 0, items = 0;  // distinct in edges.tsv
  std::uint64_t train_edges = 0, test_rows = 0, pairs = 0, train_pairs = 0;
  std::uint64_t test_items_not_in_train = 0;  // test.tsv rows whose item has no edge
  std::uint64_t test_users_not_in_train = 0;  // distinct test users without an edge
  std::uint64_t feature_dim = 0, items_without_metadata = 0;
  std::string split;  // "test-file", "leave-last-out" or "none"
  double seconds = 0;
};

// Converts as described above. InvalidArgument naming file and line for a row with too
// few fields, a non-numeric weight, time or flag; NotFound for a missing input file;
// IOError (naming the path and OS error) when out_dir or a file cannot be written.
// On error no output file of this run is renamed into place.
// Cost: reads each table once; memory ~40 bytes per interaction plus the id strings.
Result<ConvertReport> Convert(const ConvertOptions& options);

// The report as one JSON object on one line (no trailing newline).
std::string ConvertReportJson(const ConvertReport& report);

// Parses a column list "5-23" or "5,6,9-11" (0-based). InvalidArgument otherwise.
Result<std::vector<int>> ParseColumnList(std::string_view s);

}  // namespace pgraph::tools
