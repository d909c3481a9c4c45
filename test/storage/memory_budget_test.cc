// The default memory budget: a quarter of what the process may use, never below 512M.
#include <catch2/catch.hpp>

#include "storage/memory_budget.h"
#include "storage/store.h"

namespace pgraph::storage {

TEST_CASE("memory budget: a quarter of the smaller of physical memory and the cgroup limit") {
  constexpr std::uint64_t G = 1ull << 30;
  CHECK(MemoryBudgetFor(128 * G, std::nullopt) == 32 * G);
  CHECK(MemoryBudgetFor(128 * G, 8 * G) == 2 * G);     // a container's limit wins
  CHECK(MemoryBudgetFor(16 * G, 64 * G) == 4 * G);     // a limit above the machine is moot
  CHECK(MemoryBudgetFor(1 * G, std::nullopt) == kMinDefaultMemoryBudget);  // the floor
  CHECK(MemoryBudgetFor(0, std::nullopt) == kMinDefaultMemoryBudget);      // unknown machine
  CHECK(MemoryBudgetFor(0, 8 * G) == 2 * G);
}

TEST_CASE("memory budget: auto is this machine's default, sizes parse as before") {
  const std::uint64_t d = DefaultMemoryBudget();
  CHECK(d >= kMinDefaultMemoryBudget);
  CHECK(ParseMemoryBudget("auto").value() == d);
  CHECK(ParseMemoryBudget("4G").value() == 4ull << 30);
  CHECK(ParseMemoryBudget("512M").value() == ParseByteSize("512M").value());
  Result<std::uint64_t> bad = ParseMemoryBudget("lots");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("'lots'") != std::string::npos);
  CHECK(bad.status().message().find("auto") != std::string::npos);
}

TEST_CASE("memory budget: the limit files of a cgroup and of its ancestors") {
  const std::vector<std::string> v2 = CgroupLimitFiles("0::/user.slice/job.scope\n");
  const std::vector<std::string> want2 = {
      "/sys/fs/cgroup/user.slice/memory.max",
      "/sys/fs/cgroup/unified/user.slice/memory.max",
      "/sys/fs/cgroup/user.slice/job.scope/memory.max",
      "/sys/fs/cgroup/unified/user.slice/job.scope/memory.max",
      "/sys/fs/cgroup/memory.max",
      "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
  CHECK(v2 == want2);
  const std::vector<std::string> v1 = CgroupLimitFiles("5:devices:/\n4:memory:/api/abc\n0::/\n");
  const std::vector<std::string> want1 = {
      "/sys/fs/cgroup/memory/api/memory.limit_in_bytes",
      "/sys/fs/cgroup/memory/api/abc/memory.limit_in_bytes",
      "/sys/fs/cgroup/memory.max",
      "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
  CHECK(v1 == want1);
  CHECK(CgroupLimitFiles("").size() == 2);  // no /proc: the mount roots only
}

}  // namespace pgraph::storage
