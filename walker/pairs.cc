// Labelled / held-out pair files: `q i` per line, external item ids.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "walker/walker.h"

namespace pgraph::walker {

namespace {
bool IsSep(char c) { return c == '\t' || c == ' ' || c == ','; }

// Splits off the next field of `line` at `pos`; empty when none is left.
std::string_view NextField(std::string_view line, std::size_t* pos) {
  std::size_t i = *pos;
  while (i < line.size() && IsSep(line[i])) ++i;
  std::size_t j = i;
  while (j < line.size() && !IsSep(line[j])) ++j;
  *pos = j;
  return line.substr(i, j - i);
}
}  // namespace

Result<std::vector<Pair>> ReadPairsFile(const std::string& path, const storage::IdMap& ids,
                                        bool skip_unknown, std::uint64_t* skipped) {
  std::ifstream in(path);
  if (!in) {
    return Status::IOError("cannot read pairs file '" + path + "': " + std::strerror(errno));
  }
  std::vector<Pair> out;
  std::string line;
  std::uint64_t line_no = 0, skip = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view v(line);
    if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
    std::size_t pos = 0;
    std::string_view a = NextField(v, &pos);
    if (a.empty() || a.front() == '#') continue;
    std::string_view b = NextField(v, &pos);
    const std::string where = "'" + path + "' line " + std::to_string(line_no);
    if (b.empty()) return Status::InvalidArgument(where + ": expected two item ids `q i`");
    auto q = ids.Find(a);
    auto i = ids.Find(b);
    if (!q.ok() || !i.ok()) {
      if (skip_unknown) {
        ++skip;
        continue;
      }
      std::string name(!q.ok() ? a : b);
      return Status::InvalidArgument(where + ": unknown item id '" + name +
                                     "' (not in the store; --skip-unknown drops such pairs)");
    }
    if (q.value() == i.value()) continue;  // a pair of an item with itself teaches nothing
    out.emplace_back(q.value(), i.value());
  }
  if (in.bad()) return Status::IOError("error reading pairs file '" + path + "'");
  if (skipped) *skipped += skip;
  return out;
}

}  // namespace pgraph::walker
