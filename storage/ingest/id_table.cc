#include "storage/ingest/id_table.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "storage/store.h"

namespace pgraph::storage {

namespace {
constexpr std::uint64_t kStringFlag = 1ull << 63;
// A bijective 64-bit mixer (murmur3 finaliser): equal hashes mean equal integers.
inline std::uint64_t Mix(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}
constexpr std::uint64_t kInitialSlots = 1 << 16;
constexpr std::uint64_t kMinDirect = 1 << 20;
}  // namespace

IdTable::IdTable() {
  for (Table* t : {&ints_, &strings_}) {
    t->slots.assign(kInitialSlots, Slot{0, 0, 0});
    t->mask = kInitialSlots - 1;
  }
}

bool IdTable::ParseInt(std::string_view s, std::uint64_t* v) {
  if (s.empty() || s.size() > 18 || (s[0] == '0' && s.size() > 1)) return false;
  std::uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *v = x;
  return true;
}

std::uint64_t IdTable::HashOf(std::string_view name, bool* is_string) {
  std::uint64_t v;
  *is_string = !ParseInt(name, &v);
  return *is_string ? HashId(name) : Mix(v);
}

bool IdTable::StringEquals(NodeId id, std::string_view name) const {
  std::uint64_t off = refs_[id] & ~kStringFlag;
  std::uint32_t len;
  std::memcpy(&len, arena_.data() + off, 4);
  return len == name.size() && std::memcmp(arena_.data() + off + 4, name.data(), len) == 0;
}

void IdTable::Grow(Table* t) {
  std::vector<Slot> old = std::move(t->slots);
  std::uint64_t n = old.size() * 2;
  t->slots.assign(n, Slot{0, 0, 0});
  t->mask = n - 1;
  for (const Slot& s : old) {
    if (s.id1 == 0) continue;
    std::uint64_t i = s.hash & t->mask;
    while (t->slots[i].id1 != 0) i = (i + 1) & t->mask;
    t->slots[i] = s;
  }
}

NodeId IdTable::InternHashed(std::uint64_t h, bool is_string, std::string_view name,
                             std::uint64_t value) {
  Table& t = is_string ? strings_ : ints_;
  for (std::uint64_t i = h & t.mask;; i = (i + 1) & t.mask) {
    Slot& s = t.slots[i];
    if (s.id1 == 0) {
      NodeId id = static_cast<NodeId>(refs_.size());
      if (is_string) {
        std::uint32_t len = static_cast<std::uint32_t>(name.size());
        refs_.push_back(kStringFlag | arena_.size());
        arena_.append(reinterpret_cast<const char*>(&len), 4);
        arena_.append(name);
      } else {
        refs_.push_back(value);
      }
      s = Slot{h, id + 1, 0};
      if (++t.used * 2 > t.slots.size()) Grow(&t);
      return id;
    }
    if (s.hash == h && (!is_string || StringEquals(s.id1 - 1, name))) return s.id1 - 1;
  }
}

bool IdTable::GrowDirect(std::uint64_t v) {
  // The direct array costs at most 32 bytes per id (4 per entry), no more than the hash
  // table would; below 2^20 entries (4 MiB) it is always allowed.
  std::uint64_t limit = std::max<std::uint64_t>(kMinDirect, 8 * refs_.size());
  if (v >= limit) return false;
  std::uint64_t cap = std::max<std::uint64_t>(direct_.size(), 4096);
  while (cap <= v) cap *= 2;
  ResizeHuge(&direct_, cap);
  if (ints_.used > 0) {
    // Values now covered move to the direct array; the rest are re-inserted.
    std::vector<Slot> old = std::move(ints_.slots);
    ints_.slots.assign(old.size(), Slot{0, 0, 0});
    ints_.used = 0;
    for (const Slot& s : old) {
      if (s.id1 == 0) continue;
      std::uint64_t value = refs_[s.id1 - 1];
      if (value < cap) {
        direct_[value] = s.id1;
        continue;
      }
      std::uint64_t i = s.hash & ints_.mask;
      while (ints_.slots[i].id1 != 0) i = (i + 1) & ints_.mask;
      ints_.slots[i] = s;
      ++ints_.used;
    }
  }
  return true;
}

NodeId IdTable::InternInt(std::uint64_t v) {
  if (v < direct_.size() || GrowDirect(v)) {
    std::uint32_t& d = direct_[v];
    if (d == 0) {
      d = static_cast<std::uint32_t>(refs_.size()) + 1;
      refs_.push_back(v);
    }
    return d - 1;
  }
  return InternHashed(Mix(v), false, {}, v);
}

NodeId IdTable::Intern(std::string_view name) {
  std::uint64_t v;
  if (ParseInt(name, &v)) return InternInt(v);
  return InternHashed(HashId(name), true, name, 0);
}

void IdTable::InternKeys(std::span<const std::uint64_t> keys, std::string_view text,
                         NodeId* out) {
  constexpr std::size_t kAhead = 16;
  constexpr std::size_t kWindow = 256;
  std::uint64_t hashes[kWindow];
  auto name = [&](std::uint64_t key) {
    return text.substr(key & 0xffffffffu, (key & ~kStringKey) >> 32);
  };
  auto prefetch = [&](std::uint64_t key, std::uint64_t h) {
    if (key & kStringKey) {
      __builtin_prefetch(&strings_.slots[h & strings_.mask]);
    } else if (key < direct_.size()) {
      __builtin_prefetch(&direct_[key]);
    } else {
      __builtin_prefetch(&ints_.slots[Mix(key) & ints_.mask]);
    }
  };
  for (std::size_t base = 0; base < keys.size(); base += kWindow) {
    std::size_t n = std::min(kWindow, keys.size() - base);
    const std::uint64_t* k = keys.data() + base;
    for (std::size_t i = 0; i < n; ++i) {
      hashes[i] = (k[i] & kStringKey) ? HashId(name(k[i])) : 0;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetch(k[i + kAhead], hashes[i + kAhead]);
      std::uint64_t key = k[i];
      if (key < direct_.size() && direct_[key] != 0) {  // a known small integer: inline
        out[base + i] = direct_[key] - 1;
        continue;
      }
      out[base + i] = (key & kStringKey) ? InternHashed(hashes[i], true, name(key), 0)
                                         : InternInt(key);
    }
  }
}

NodeId IdTable::Find(std::string_view name) const {
  bool is_string;
  std::uint64_t h = HashOf(name, &is_string);
  if (!is_string) {
    std::uint64_t v = 0;
    ParseInt(name, &v);
    if (v < direct_.size()) return direct_[v] == 0 ? kInvalidNode : direct_[v] - 1;
  }
  const Table& t = is_string ? strings_ : ints_;
  for (std::uint64_t i = h & t.mask;; i = (i + 1) & t.mask) {
    const Slot& s = t.slots[i];
    if (s.id1 == 0) return kInvalidNode;
    if (s.hash == h && (!is_string || StringEquals(s.id1 - 1, name))) return s.id1 - 1;
  }
}

void IdTable::AppendName(NodeId id, std::string* out) const {
  std::uint64_t ref = refs_[id];
  if (ref & kStringFlag) {
    std::uint64_t off = ref & ~kStringFlag;
    std::uint32_t len;
    std::memcpy(&len, arena_.data() + off, 4);
    out->append(arena_.data() + off + 4, len);
  } else {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, ref);
    out->append(buf, r.ptr);
  }
}

}  // namespace pgraph::storage
