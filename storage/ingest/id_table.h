#pragma once
// IdTable: assigns dense ids 0, 1, 2, ... to external ids in order of first appearance.
// Decimal integers without leading zeros (the common case in exported logs) are keyed by
// value; any other string is hashed and kept in an arena. Each kind has its own
// open-addressing table of 16-byte slots, so an integer lookup touches one cache line.
// Private to storage/ingest. Not thread-safe.

#include <cstdint>
#include <span>
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
  // Interns names[i] into out[i] for all i, prefetching slots ahead to hide memory latency.
  void InternBatch(std::span<const std::string_view> names, NodeId* out);
  // The dense id of `name`, or kInvalidNode when it was never interned.
  NodeId Find(std::string_view name) const;
  std::uint64_t size() const { return refs_.size(); }
  // Appends the external id of dense id `id` to `out`.
  void AppendName(NodeId id, std::string* out) const;

 private:
  struct Slot {
    std::uint64_t hash;  // Mix(value) for integers (a bijection), XXH64 for strings
    std::uint32_t id1;   // dense id + 1; 0 = empty
    std::uint32_t pad;
  };
  struct Table {
    std::vector<Slot> slots;
    std::uint64_t mask = 0, used = 0;
  };
  static bool ParseInt(std::string_view s, std::uint64_t* v);
  static std::uint64_t HashOf(std::string_view name, bool* is_string);
  NodeId InternHashed(std::uint64_t h, bool is_string, std::string_view name);
  bool StringEquals(NodeId id, std::string_view name) const;
  void Grow(Table* t);

  Table ints_, strings_;
  // Per dense id: the integer value, or (1 << 63) | arena offset for strings.
  std::vector<std::uint64_t> refs_;
  std::string arena_;  // length-prefixed (u32) strings
};

}  // namespace pgraph::storage
