// The default memory budget: a quarter of what this process may use.
#include "storage/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
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

// Every memory limit file that may bound this process: those of its own cgroup and of each
// ancestor (a parent's limit binds its children but shows only in the parent's file), for
// v2 ("0::/path" in /proc/self/cgroup, mounted at /sys/fs/cgroup or, hybrid, at
// /sys/fs/cgroup/unified) and v1 ("N:memory:/path"); a container sees its own cgroup as the
// root of the mount.
}  // namespace

std::vector<std::string> CgroupLimitFiles(std::string_view proc_self_cgroup) {
  std::vector<std::string> files;
  auto add_ancestry = [&](const std::string& path, const std::vector<std::string>& mounts,
                          const char* file) {
    std::string prefix;
    std::size_t from = 1;
    while (from < path.size()) {
      std::size_t slash = path.find('/', from);
      if (slash == std::string::npos) slash = path.size();
      prefix += path.substr(from - 1, slash - from + 1);
      for (const std::string& m : mounts) files.push_back(m + prefix + "/" + file);
      from = slash + 1;
    }
  };
  std::istringstream in{std::string(proc_self_cgroup)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) {
      add_ancestry(line.substr(3), {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}, "memory.max");
    } else if (const std::size_t at = line.find(":memory:"); at != std::string::npos) {
      add_ancestry(line.substr(at + 8), {"/sys/fs/cgroup/memory"}, "memory.limit_in_bytes");
    }
  }
  files.push_back("/sys/fs/cgroup/memory.max");
  files.push_back("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  return files;
}

std::uint64_t MemoryBudgetFor(std::uint64_t physical_bytes,
                              std::optional<std::uint64_t> cgroup_limit_bytes) {
  std::uint64_t usable = physical_bytes;
  if (cgroup_limit_bytes && (usable == 0 || *cgroup_limit_bytes < usable)) {
    usable = *cgroup_limit_bytes;
  }
  return std::max(kMinDefaultMemoryBudget, usable / 4);
}

std::uint64_t DefaultMemoryBudget() {
  std::optional<std::uint64_t> limit;
  std::ifstream in("/proc/self/cgroup");
  const std::string cgroup{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  for (const std::string& file : CgroupLimitFiles(cgroup)) {
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
