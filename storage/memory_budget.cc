// The default memory budget: a quarter of what this process may use.
#include "storage/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "storage/store.h"

namespace pgraph::storage {

namespace {

// The first token of a one-line file as a byte count; nullopt for "max", a missing file or
// anything unparsable (an unknown limit is no limit).
std::optional<std::uint64_t> ReadLimitFile(const char* path) {
  std::ifstream in(path);
  std::string token;
  if (!(in >> token) || token == "max") return std::nullopt;
  try {
    std::size_t used = 0;
    const unsigned long long v = std::stoull(token, &used);
    if (used != token.size()) return std::nullopt;
    // cgroup v1 reports "no limit" as a page-rounded LONG_MAX.
    if (v >= (1ull << 62)) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::uint64_t PhysicalMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

}  // namespace

std::uint64_t MemoryBudgetFor(std::uint64_t physical_bytes,
                              std::optional<std::uint64_t> cgroup_limit_bytes) {
  std::uint64_t usable = physical_bytes;
  if (cgroup_limit_bytes && (usable == 0 || *cgroup_limit_bytes < usable)) {
    usable = *cgroup_limit_bytes;
  }
  return std::max(kMinDefaultMemoryBudget, usable / 4);
}

// Every memory limit file that may bound this process: its own cgroup's (v2 "0::/path", or
// v1's "N:memory:/path" line of /proc/self/cgroup) and the mount roots (a container sees its
// own cgroup there).
static std::vector<std::string> LimitFiles() {
  std::vector<std::string> files;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) {
      const std::string path = line.substr(3);
      files.push_back("/sys/fs/cgroup" + path + "/memory.max");
      files.push_back("/sys/fs/cgroup/unified" + path + "/memory.max");
    } else if (const std::size_t at = line.find(":memory:"); at != std::string::npos) {
      files.push_back("/sys/fs/cgroup/memory" + line.substr(at + 8) +
                      "/memory.limit_in_bytes");
    }
  }
  files.push_back("/sys/fs/cgroup/memory.max");
  files.push_back("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  return files;
}

std::uint64_t DefaultMemoryBudget() {
  std::optional<std::uint64_t> limit;
  for (const std::string& file : LimitFiles()) {
    const std::optional<std::uint64_t> v = ReadLimitFile(file.c_str());
    if (v && (!limit || *v < *limit)) limit = v;
  }
  return MemoryBudgetFor(PhysicalMemory(), limit);
}

Result<std::uint64_t> ParseMemoryBudget(std::string_view s) {
  if (s == "auto") return DefaultMemoryBudget();
  Result<std::uint64_t> r = ParseByteSize(s);
  if (!r.ok()) {
    return Status::InvalidArgument(r.status().message() + " for --memory-budget (or auto)");
  }
  return r;
}

}  // namespace pgraph::storage
