#pragma once
// IdTable: assigns dense ids 0, 1, 2, ... to external ids in order of first appearance.
// Decimal integers without leading zeros (the common case in exported logs) are keyed by
// value in an open-addressing table; any other string is hashed and kept in an arena.
// Private to storage/ingest. Not thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ids.h"

namespace pgraph::storage {

class IdTable {
 public:
  IdTable();
  // The dense id of `name`, assigning the next one if it is new.
  NodeId Intern(std::string_view name);
  // The dense id of `name`, or kInvalidNode when it was never interned.
  NodeId Find(std::string_view name) const;
  std::uint64_t size() const { return refs_.size(); }
  // Appends the external id of dense id `id` to `out`.
  void AppendName(NodeId id, std::string* out) const;
  std::uint64_t memory_bytes() const;

 private:
  static bool ParseInt(std::string_view s, std::uint64_t* v);
  void Grow();
  NodeId Lookup(std::uint64_t key, bool is_string, std::string_view name) const;
  bool SlotMatches(std::uint32_t slot_id, std::uint64_t key, bool is_string,
                   std::string_view name) const;

  // Slot: dense id + 1 (0 = empty). Keys are recomputed from refs_ on collision checks.
  std::vector<std::uint32_t> slots_;
  std::vector<std::uint64_t> slot_keys_;
  std::uint64_t mask_ = 0;
  // Per dense id: the integer value, or (1 << 63) | arena offset for strings.
  std::vector<std::uint64_t> refs_;
  std::string arena_;  // length-prefixed (u32) strings
};

}  // namespace pgraph::storage
