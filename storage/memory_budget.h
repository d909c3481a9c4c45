// The default working-memory budget of the commands that do bulk work.
//
// A fixed default (512M) is wrong at both ends: on the large-memory machine this engine is
// built for it sends a 1M-item inference out of core and makes walks refuse graphs that fit
// many times over; on a small container it may exceed the memory the process may use. The
// default is therefore a share of what this process may use: a quarter of the smaller of the
// machine's physical memory and the cgroup's memory limit (a container's), never below 512M.
// It is derived from totals, not from the memory free at the moment, so the same machine
// makes the same in-core / out-of-core decisions on every run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace pgraph::storage {

inline constexpr std::uint64_t kMinDefaultMemoryBudget = 512ull << 20;

// max(512M, min(physical, cgroup_limit) / 4); no cgroup limit: physical / 4.
std::uint64_t MemoryBudgetFor(std::uint64_t physical_bytes,
                              std::optional<std::uint64_t> cgroup_limit_bytes);

// The memory limit files that may bound a process whose /proc/self/cgroup reads
// `proc_self_cgroup`: its cgroup's and every ancestor's (a parent's limit binds its children
// but shows only in its own file), v2 and v1, then the mount roots.
std::vector<std::string> CgroupLimitFiles(std::string_view proc_self_cgroup);

// MemoryBudgetFor() of this machine and this process's cgroup (v2 memory.max, else v1
// memory.limit_in_bytes; "max" and v1's huge sentinel mean no limit).
std::uint64_t DefaultMemoryBudget();

// "auto" -> DefaultMemoryBudget(); anything else as ParseByteSize ("4G", "512M", ...).
Result<std::uint64_t> ParseMemoryBudget(std::string_view s);

// The help text of a --memory-budget whose default is "auto": `what` it bounds, then the
// forms it takes and what auto means.
inline std::string MemoryBudgetHelp(std::string_view what) {
  return std::string(what) +
         ", e.g. 512M, 4G; auto (the default) = a quarter of the machine's or container's "
         "memory, at least 512M";
}

}  // namespace pgraph::storage
