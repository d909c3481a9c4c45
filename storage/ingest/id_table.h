#pragma once
// IdTable: assigns dense ids 0, 1, 2, ... to external ids in order of first appearance.
// Decimal integers without leading zeros (the common case in exported logs) are keyed by
// value; any other string is hashed and kept in an arena. Small integers (below about 8x
// the number of ids so far) are looked up in a direct array of 4-byte entries; larger ones
// and strings each have an open-addressing table of 16-byte slots, so a lookup touches one
// cache line. Which structure holds an id never changes the dense id it gets.
// Private to storage/ingest. Not thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/huge_pages.h"
#include "storage/ids.h"

namespace pgraph::storage {

class IdTable {
 public:
  IdTable();
  // The dense id of `name`, assigning the next one if it is new.
  NodeId Intern(std::string_view name);
  // Pre-parsed keys: an integer id's value (see ParseInt), or StringKey(off, len) for the
  // name text.substr(off, len). Interns keys[i] into out[i] for all i, in order, exactly as
  // Intern of the names would.
  static constexpr std::uint64_t kStringKey = 1ull << 63;
  static std::uint64_t StringKey(std::uint32_t off, std::uint32_t len) {
    return kStringKey | (std::uint64_t{len} << 32) | off;
  }
  void InternKeys(std::span<const std::uint64_t> keys, std::string_view text, NodeId* out);
  // True (value in *v) when `s` is a decimal integer id: 1-18 digits, no leading zero.
  static bool ParseInt(std::string_view s, std::uint64_t* v);
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
  static std::uint64_t HashOf(std::string_view name, bool* is_string);
  // `value` is the integer's value when !is_string.
  NodeId InternHashed(std::uint64_t h, bool is_string, std::string_view name, std::uint64_t value);
  NodeId InternInt(std::uint64_t v);
  bool StringEquals(NodeId id, std::string_view name) const;
  void Grow(Table* t);
  // Makes direct_ cover `v` when the size policy allows; moves entries out of ints_.
  bool GrowDirect(std::uint64_t v);

  Table ints_, strings_;
  // Dense id + 1 of integer value v, for every v < direct_.size(); 0 = not interned. Those
  // values are never in ints_.
  std::vector<std::uint32_t> direct_;
  // Per dense id: the integer value, or (1 << 63) | arena offset for strings.
  std::vector<std::uint64_t> refs_;
  std::string arena_;  // length-prefixed (u32) strings
};

}  // namespace pgraph::storage
