#include "tools/lib/convert.h"
#include "tools/lib/text_lines.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace pgraph::tools {
namespace {

namespace fs = std::filesystem;

std::string ResolvePath(const std::string& in_dir, const std::string& path) {
  if (path.empty() || in_dir.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(in_dir) / path).string();
}

// Splits `line` by `sep` (see TableSpec).
void Split(std::string_view line, std::string_view sep, std::vector<std::string_view>* out) {
  out->clear();
  if (sep == "space") {
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i == line.size()) break;
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      out->push_back(line.substr(i, j - i));
      i = j;
    }
    return;
  }
  std::string_view s = sep == "tab" ? std::string_view("\t") : sep == "comma" ? "," : sep;
  std::size_t start = 0;
  for (;;) {
    const std::size_t p = line.find(s, start);
    if (p == std::string_view::npos) {
      out->push_back(line.substr(start));
      return;
    }
    out->push_back(line.substr(start, p - start));
    start = p + s.size();
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// f(line, number) for each data line of `path`: blank lines skipped, and the first line
// too when `header`.
template <typename F>
Status ForEachLine(const std::string& path, bool header, F&& f) {
  return ForEachTextLine(path, [&](std::string_view line, std::uint64_t number) -> Status {
    if ((number == 1 && header) || Trim(line).empty()) return Status::OK();
    return f(line, number);
  });
}

std::string Where(const std::string& path, std::uint64_t line) {
  return "'" + path + "' line " + std::to_string(line);
}

bool ParseDouble(std::string_view s, double* v) {
  s = Trim(s);
  if (s.empty()) return false;
  std::string tmp(s);
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(tmp.c_str(), &end);
  return end == tmp.c_str() + tmp.size() && errno == 0 && std::isfinite(*v);
}

bool ParseInt(std::string_view s, std::int64_t* v) {
  s = Trim(s);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Dense ids for strings, in order of first appearance.
class Interner {
 public:
  std::uint32_t Add(std::string_view s) {
    auto [it, inserted] = index_.try_emplace(std::string(s), names_.size());
    if (inserted) names_.push_back(it->first);
    return it->second;
  }
  const std::string& Name(std::uint32_t id) const { return names_[id]; }
  std::size_t size() const { return names_.size(); }

 private:
  std::unordered_map<std::string, std::uint32_t> index_;
  std::vector<std::string> names_;
};

struct Row {
  std::uint32_t user = 0, item = 0;
  float weight = 1;
  std::int64_t time = 0;
  std::uint64_t order = 0;  // input order
};

Status ReadInteractions(const TableSpec& spec, const std::string& path, Interner* users,
                        Interner* items, std::vector<Row>* rows) {
  std::vector<std::string_view> f;
  const int need = std::max({spec.user_col, spec.item_col, spec.weight_col, spec.time_col}) + 1;
  return ForEachLine(path, spec.header, [&](std::string_view line, std::uint64_t n) -> Status {
    Split(line, spec.sep, &f);
    if (static_cast<int>(f.size()) < need) {
      return Status::InvalidArgument(Where(path, n) + ": expected at least " +
                                     std::to_string(need) + " fields separated by '" + spec.sep +
                                     "', got " + std::to_string(f.size()));
    }
    Row r;
    const std::string_view user = Trim(f[spec.user_col]), item = Trim(f[spec.item_col]);
    if (user.empty() || item.empty()) {
      return Status::InvalidArgument(Where(path, n) + ": empty user or item id");
    }
    r.user = users->Add(user);
    r.item = items->Add(item);
    if (spec.weight_col >= 0) {
      double w = 0;
      if (!ParseDouble(f[spec.weight_col], &w) || w < 0) {
        return Status::InvalidArgument(Where(path, n) + ": weight is not a non-negative number: '" +
                                       std::string(f[spec.weight_col]) + "'");
      }
      r.weight = static_cast<float>(w);
    }
    if (spec.time_col >= 0 && !ParseInt(f[spec.time_col], &r.time)) {
      return Status::InvalidArgument(Where(path, n) + ": time is not an integer: '" +
                                     std::string(f[spec.time_col]) + "'");
    }
    r.order = rows->size();
    rows->push_back(r);
    return Status::OK();
  });
}

// The last run of exactly four digits in s, or -1.
int FindYear(std::string_view s) {
  int year = -1;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j - i == 4) year = std::stoi(std::string(s.substr(i, 4)));
    i = j;
  }
  return year;
}

std::uint64_t HashToken(std::string_view s) {  // FNV-1a, then a mix
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

// Lower-cased alphanumeric tokens of a title, the 4-digit year token left out.
std::vector<std::string> TitleTokens(std::string_view title) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&]() {
    const bool year = cur.size() == 4 && std::all_of(cur.begin(), cur.end(), [](char c) {
                        return std::isdigit(static_cast<unsigned char>(c));
                      });
    if (!cur.empty() && !year) out.push_back(cur);
    cur.clear();
  };
  for (char ch : title) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c >= 0x80) {
      cur.push_back(static_cast<char>(std::tolower(c)));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

struct ItemMeta {
  std::vector<float> flags;
  int year = -1;
  std::string title;
};

Status ReadItemMeta(const ItemMetaSpec& spec, const std::string& path,
                    std::unordered_map<std::string, ItemMeta>* out) {
  std::vector<std::string_view> f;
  int need = std::max({spec.id_col, spec.year_col, spec.title_col}) + 1;
  for (int c : spec.flag_cols) need = std::max(need, c + 1);
  return ForEachLine(path, spec.header, [&](std::string_view line, std::uint64_t n) -> Status {
    Split(line, spec.sep, &f);
    if (static_cast<int>(f.size()) < need) {
      return Status::InvalidArgument(Where(path, n) + ": expected at least " +
                                     std::to_string(need) + " fields separated by '" + spec.sep +
                                     "', got " + std::to_string(f.size()));
    }
    ItemMeta m;
    for (int c : spec.flag_cols) {
      double v = 0;
      if (!ParseDouble(f[c], &v)) {
        return Status::InvalidArgument(Where(path, n) + ": field " + std::to_string(c) +
                                       " is not a number: '" + std::string(f[c]) + "'");
      }
      m.flags.push_back(static_cast<float>(v));
    }
    if (spec.year_col >= 0) m.year = FindYear(f[spec.year_col]);
    if (spec.title_col >= 0) {
      m.title = std::string(Trim(f[spec.title_col]));
      if (m.year < 0 && spec.year_col >= 0) m.year = FindYear(m.title);
    }
    (*out)[std::string(Trim(f[spec.id_col]))] = std::move(m);
    return Status::OK();
  });
}

// Writes files as <name>.tmp; Commit renames them all.
class OutputSet {
 public:
  explicit OutputSet(std::string dir) : dir_(std::move(dir)) {}
  ~OutputSet() {
    for (auto& f : open_) {
      if (f.file != nullptr) std::fclose(f.file);
      std::error_code ec;
      fs::remove(Tmp(f.name), ec);
    }
  }
  Result<std::FILE*> Open(const std::string& name) {
    std::FILE* file = std::fopen(Tmp(name).c_str(), "wb");
    if (file == nullptr) {
      return Status::IOError("cannot write '" + Tmp(name) + "': " + std::strerror(errno));
    }
    open_.push_back({name, file});
    return file;
  }
  Status Commit(const std::vector<std::string>& all_names, std::vector<std::string>* written) {
    for (auto& f : open_) {
      const bool bad = std::ferror(f.file) != 0;
      const int rc = std::fclose(f.file);
      f.file = nullptr;
      if (bad || rc != 0) {
        const int err = errno;
        return (err == ENOSPC ? Status::ResourceExhausted("disk full writing '" + Tmp(f.name) + "'")
                              : Status::IOError("error writing '" + Tmp(f.name) +
                                                "': " + std::strerror(err)));
      }
    }
    for (auto& f : open_) {
      std::error_code ec;
      fs::rename(Tmp(f.name), fs::path(dir_) / f.name, ec);
      if (ec) return Status::IOError("cannot rename '" + Tmp(f.name) + "': " + ec.message());
      written->push_back(f.name);
    }
    for (const std::string& name : all_names) {
      if (std::find(written->begin(), written->end(), name) != written->end()) continue;
      std::error_code ec;
      fs::remove(fs::path(dir_) / name, ec);  // a stale file of an earlier run
    }
    open_.clear();
    return Status::OK();
  }

 private:
  struct File {
    std::string name;
    std::FILE* file;
  };
  std::string Tmp(const std::string& name) const {
    return (fs::path(dir_) / (name + ".tmp")).string();
  }
  std::string dir_;
  std::vector<File> open_;
};

void WriteFloat(std::FILE* f, float v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e7f) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  std::fputs(buf, f);
}

}  // namespace

Result<std::vector<int>> ParseColumnList(std::string_view s) {
  std::vector<int> out;
  auto bad = [&]() {
    return Status::InvalidArgument("bad column list '" + std::string(s) +
                                   "' (expected e.g. 5-23 or 1,3,7-9)");
  };
  std::string_view rest = s;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view tok = rest.substr(0, comma);
    const std::size_t dash = tok.find('-');
    std::int64_t a = 0, b = 0;
    if (dash == std::string_view::npos) {
      if (!ParseInt(tok, &a)) return bad();
      b = a;
    } else if (!ParseInt(tok.substr(0, dash), &a) || !ParseInt(tok.substr(dash + 1), &b)) {
      return bad();
    }
    if (a < 0 || b < a || b > 100000) return bad();
    for (std::int64_t c = a; c <= b; ++c) out.push_back(static_cast<int>(c));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (out.empty()) return bad();
  return out;
}

Result<ConvertOptions> PresetOptions(std::string_view format, const std::string& in_dir,
                                     const std::string& out_dir) {
  ConvertOptions o;
  o.in_dir = in_dir;
  o.out_dir = out_dir;
  if (format == "movielens") {
    o.train = {"u.data", "tab", false, 0, 1, 2, 3};
    o.items.path = "u.item";
    o.items.sep = "|";
    o.items.id_col = 0;
    o.items.title_col = 1;
    o.items.year_col = 2;
    for (int c = 5; c <= 23; ++c) o.items.flag_cols.push_back(c);  // 19 genres (u.genre)
    return o;
  }
  if (format == "lastfm-lightgcn") {
    o.train = {"data1.txt", "tab", false, 0, 1, 2, -1};
    o.test = {"test1.txt", "tab", false, 0, 1, 2, -1};
    return o;
  }
  return Status::InvalidArgument("unknown format '" + std::string(format) +
                                 "' (expected movielens, lastfm-lightgcn or interactions)");
}

Result<ConvertReport> Convert(const ConvertOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.train.path.empty()) return Status::InvalidArgument("no interaction table given");
  if (o.train.user_col < 0 || o.train.item_col < 0) {
    return Status::InvalidArgument("the interaction table needs a user and an item column");
  }
  ConvertReport report;
  Interner users, items;
  std::vector<Row> train, test;
  const std::string train_path = ResolvePath(o.in_dir, o.train.path);
  PGRAPH_RETURN_IF_ERROR(ReadInteractions(o.train, train_path, &users, &items, &train));
  report.interactions = train.size();
  if (!o.test.path.empty()) {
    if (o.test.user_col < 0 || o.test.item_col < 0) {
      return Status::InvalidArgument("the test table needs a user and an item column");
    }
    const std::string test_path = ResolvePath(o.in_dir, o.test.path);
    PGRAPH_RETURN_IF_ERROR(ReadInteractions(o.test, test_path, &users, &items, &test));
    report.interactions += test.size();
  }
  std::unordered_map<std::string, ItemMeta> meta;
  if (!o.items.path.empty()) {
    PGRAPH_RETURN_IF_ERROR(ReadItemMeta(o.items, ResolvePath(o.in_dir, o.items.path), &meta));
  }

  // Split.
  struct Pair {
    std::uint32_t prev, held, user;
  };
  std::vector<Pair> pairs;
  std::vector<char> is_train(train.size(), 1);
  if (!o.test.path.empty()) {
    report.split = "test-file";
  } else if (o.train.time_col >= 0) {
    report.split = "leave-last-out";
    std::vector<std::vector<std::uint32_t>> by_user(users.size());
    for (std::uint32_t r = 0; r < train.size(); ++r) by_user[train[r].user].push_back(r);
    for (auto& rows : by_user) {
      if (rows.size() < std::max<std::uint32_t>(o.min_history, 1) || rows.size() < 2) continue;
      std::stable_sort(rows.begin(), rows.end(), [&](std::uint32_t a, std::uint32_t b) {
        return train[a].time < train[b].time;
      });
      const Row& last = train[rows.back()];
      const Row& prev = train[rows[rows.size() - 2]];
      is_train[rows.back()] = 0;
      test.push_back(last);
      pairs.push_back({prev.item, last.item, last.user});
    }
    std::sort(test.begin(), test.end(),
              [](const Row& a, const Row& b) { return a.order < b.order; });
  } else {
    report.split = "none";
  }

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Status::IOError("cannot create '" + o.out_dir + "': " + ec.message());
  OutputSet out(o.out_dir);

  // edges.tsv
  std::vector<char> item_in_train(items.size(), 0), user_in_train(users.size(), 0);
  std::vector<std::uint32_t> train_items;  // first-appearance order
  {
    PGRAPH_ASSIGN_OR_RETURN(std::FILE * f, out.Open("edges.tsv"));
    const bool weights = o.write_weights && o.train.weight_col >= 0;
    for (std::size_t r = 0; r < train.size(); ++r) {
      if (!is_train[r]) continue;
      const Row& row = train[r];
      std::fputs(items.Name(row.item).c_str(), f);
      std::fputc('\t', f);
      std::fputs(users.Name(row.user).c_str(), f);
      if (weights) {
        std::fputc('\t', f);
        WriteFloat(f, row.weight);
      }
      std::fputc('\n', f);
      ++report.train_edges;
      if (!item_in_train[row.item]) train_items.push_back(row.item);
      item_in_train[row.item] = 1;
      user_in_train[row.user] = 1;
    }
  }
  report.items = train_items.size();
  report.users = std::count(user_in_train.begin(), user_in_train.end(), 1);
  if (report.train_edges == 0) return Status::InvalidArgument("no training interactions left");

  // test.tsv, users in order of first appearance in the test rows.
  if (!test.empty()) {
    std::vector<std::uint32_t> user_order;
    std::vector<std::vector<std::uint32_t>> user_rows(users.size());
    for (std::uint32_t r = 0; r < test.size(); ++r) {
      if (user_rows[test[r].user].empty()) user_order.push_back(test[r].user);
      user_rows[test[r].user].push_back(r);
    }
    PGRAPH_ASSIGN_OR_RETURN(std::FILE * f, out.Open("test.tsv"));
    for (std::uint32_t u : user_order) {
      if (!user_in_train[u]) ++report.test_users_not_in_train;
      for (std::uint32_t r : user_rows[u]) {
        std::fprintf(f, "%s\t%s\n", users.Name(u).c_str(), items.Name(test[r].item).c_str());
        ++report.test_rows;
        if (!item_in_train[test[r].item]) ++report.test_items_not_in_train;
      }
    }
  }

  // pairs.tsv, in user order of the held-out rows.
  if (!pairs.empty()) {
    std::vector<std::int64_t> pos(users.size(), -1);
    for (std::size_t r = 0; r < test.size(); ++r) pos[test[r].user] = static_cast<std::int64_t>(r);
    std::sort(pairs.begin(), pairs.end(),
              [&](const Pair& a, const Pair& b) { return pos[a.user] < pos[b.user]; });
    PGRAPH_ASSIGN_OR_RETURN(std::FILE * f, out.Open("pairs.tsv"));
    for (const Pair& p : pairs) {
      std::fprintf(f, "%s\t%s\t%s\n", items.Name(p.prev).c_str(), items.Name(p.held).c_str(),
                   users.Name(p.user).c_str());
    }
    report.pairs = pairs.size();
  }

  // train_pairs.tsv: consecutive training interactions of each user, by time.
  if (o.train.time_col >= 0 && o.train_pair_window > 0) {
    std::vector<std::vector<std::uint32_t>> by_user(users.size());
    for (std::uint32_t r = 0; r < train.size(); ++r) {
      if (is_train[r]) by_user[train[r].user].push_back(r);
    }
    PGRAPH_ASSIGN_OR_RETURN(std::FILE * f, out.Open("train_pairs.tsv"));
    for (auto& rows : by_user) {
      std::stable_sort(rows.begin(), rows.end(), [&](std::uint32_t a, std::uint32_t b) {
        return train[a].time < train[b].time;
      });
      for (std::size_t j = 0; j < rows.size(); ++j) {
        for (std::size_t k = j + 1; k < rows.size() && k <= j + o.train_pair_window; ++k) {
          const Row& a = train[rows[j]];
          const Row& b = train[rows[k]];
          if (a.item == b.item) continue;
          std::fprintf(f, "%s\t%s\t%s\n", items.Name(a.item).c_str(), items.Name(b.item).c_str(),
                       users.Name(a.user).c_str());
          ++report.train_pairs;
        }
      }
    }
  }

  // features.tsv
  if (!o.items.path.empty()) {
    const std::size_t flags = o.items.flag_cols.size();
    const bool year = o.items.year_col >= 0;
    const std::uint32_t hash_dim = o.items.title_col >= 0 ? o.items.title_hash_dim : 0;
    report.feature_dim = flags + (year ? 2 : 0) + hash_dim;
    if (report.feature_dim == 0) {
      return Status::InvalidArgument("item metadata given but no feature columns selected");
    }
    int min_year = 1 << 30, max_year = -(1 << 30);
    for (std::uint32_t it : train_items) {
      auto m = meta.find(items.Name(it));
      if (m != meta.end() && m->second.year >= 0) {
        min_year = std::min(min_year, m->second.year);
        max_year = std::max(max_year, m->second.year);
      }
    }
    PGRAPH_ASSIGN_OR_RETURN(std::FILE * f, out.Open("features.tsv"));
    std::vector<float> row(report.feature_dim);
    for (std::uint32_t it : train_items) {
      std::fill(row.begin(), row.end(), 0.0f);
      auto m = meta.find(items.Name(it));
      if (m == meta.end()) {
        ++report.items_without_metadata;
        if (year) row[flags + 1] = 1;
      } else {
        const ItemMeta& im = m->second;
        std::copy(im.flags.begin(), im.flags.end(), row.begin());
        if (year) {
          if (im.year < 0) {
            row[flags + 1] = 1;
          } else if (max_year > min_year) {
            row[flags] =
                static_cast<float>(im.year - min_year) / static_cast<float>(max_year - min_year);
          }
        }
        if (hash_dim > 0) {
          float* h = row.data() + flags + (year ? 2 : 0);
          for (const std::string& t : TitleTokens(im.title)) {
            const std::uint64_t x = HashToken(t);
            h[x % hash_dim] += (x >> 63) ? -1.0f : 1.0f;
          }
          double norm = 0;
          for (std::uint32_t j = 0; j < hash_dim; ++j) norm += static_cast<double>(h[j]) * h[j];
          if (norm > 0) {
            const float inv = static_cast<float>(1.0 / std::sqrt(norm));
            for (std::uint32_t j = 0; j < hash_dim; ++j) h[j] *= inv;
          }
        }
      }
      std::fputs(items.Name(it).c_str(), f);
      std::fputc('\t', f);
      for (std::size_t j = 0; j < row.size(); ++j) {
        if (j) std::fputc(' ', f);
        WriteFloat(f, row[j]);
      }
      std::fputc('\n', f);
    }
  }

  PGRAPH_RETURN_IF_ERROR(out.Commit(
      {"edges.tsv", "test.tsv", "pairs.tsv", "train_pairs.tsv", "features.tsv"}, &report.files));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

std::string ConvertReportJson(const ConvertReport& r) {
  std::string files;
  for (const std::string& f : r.files) files += (files.empty() ? "\"" : ", \"") + f + "\"";
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"split\": \"%s\", \"interactions\": %llu, \"users\": %llu, \"items\": %llu, "
                "\"train_edges\": %llu, \"test_rows\": %llu, \"pairs\": %llu, "
                "\"train_pairs\": %llu, "
                "\"test_items_not_in_train\": %llu, \"test_users_not_in_train\": %llu, "
                "\"feature_dim\": %llu, \"items_without_metadata\": %llu, \"seconds\": %.3f, "
                "\"files\": [",
                r.split.c_str(), (unsigned long long)r.interactions, (unsigned long long)r.users,
                (unsigned long long)r.items, (unsigned long long)r.train_edges,
                (unsigned long long)r.test_rows, (unsigned long long)r.pairs,
                (unsigned long long)r.train_pairs, (unsigned long long)r.test_items_not_in_train,
                (unsigned long long)r.test_users_not_in_train, (unsigned long long)r.feature_dim,
                (unsigned long long)r.items_without_metadata, r.seconds);
  return std::string(buf) + files + "]}";
}

}  // namespace pgraph::tools
