#include "storage/ingest/id_table.h"

#include <charconv>
#include <cstring>

#include "storage/store.h"

namespace pgraph::storage {

namespace {
constexpr std::uint64_t kStringFlag = 1ull << 63;
inline std::uint64_t Mix(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}
}  // namespace

IdTable::IdTable() {
  slots_.assign(1 << 16, 0);
  slot_keys_.assign(1 << 16, 0);
  mask_ = (1 << 16) - 1;
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

bool IdTable::SlotMatches(std::uint32_t slot_id, std::uint64_t key, bool is_string,
                          std::string_view name) const {
  std::uint64_t ref = refs_[slot_id];
  if (!is_string) return ref == key;
  if (!(ref & kStringFlag)) return false;
  std::uint64_t off = ref & ~kStringFlag;
  std::uint32_t len;
  std::memcpy(&len, arena_.data() + off, 4);
  return len == name.size() && std::memcmp(arena_.data() + off + 4, name.data(), len) == 0;
}

NodeId IdTable::Lookup(std::uint64_t key, bool is_string, std::string_view name) const {
  std::uint64_t h = is_string ? key : Mix(key);
  for (std::uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    std::uint32_t s = slots_[i];
    if (s == 0) return kInvalidNode;
    if (slot_keys_[i] == h && SlotMatches(s - 1, key, is_string, name)) return s - 1;
  }
}

void IdTable::Grow() {
  std::vector<std::uint32_t> old_slots = std::move(slots_);
  std::vector<std::uint64_t> old_keys = std::move(slot_keys_);
  std::uint64_t n = old_slots.size() * 2;
  slots_.assign(n, 0);
  slot_keys_.assign(n, 0);
  mask_ = n - 1;
  for (std::uint64_t j = 0; j < old_slots.size(); ++j) {
    if (old_slots[j] == 0) continue;
    std::uint64_t i = old_keys[j] & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = old_slots[j];
    slot_keys_[i] = old_keys[j];
  }
}

NodeId IdTable::Intern(std::string_view name) {
  std::uint64_t v;
  bool is_string = !ParseInt(name, &v);
  std::uint64_t key = is_string ? HashId(name) : v;
  std::uint64_t h = is_string ? key : Mix(key);
  for (std::uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    std::uint32_t s = slots_[i];
    if (s == 0) {
      NodeId id = static_cast<NodeId>(refs_.size());
      if (is_string) {
        std::uint32_t len = static_cast<std::uint32_t>(name.size());
        refs_.push_back(kStringFlag | arena_.size());
        arena_.append(reinterpret_cast<const char*>(&len), 4);
        arena_.append(name);
      } else {
        refs_.push_back(v);
      }
      slots_[i] = id + 1;
      slot_keys_[i] = h;
      if (refs_.size() * 2 > slots_.size()) Grow();
      return id;
    }
    if (slot_keys_[i] == h && SlotMatches(s - 1, key, is_string, name)) return s - 1;
  }
}

NodeId IdTable::Find(std::string_view name) const {
  std::uint64_t v;
  bool is_string = !ParseInt(name, &v);
  return Lookup(is_string ? HashId(name) : v, is_string, name);
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

std::uint64_t IdTable::memory_bytes() const {
  return slots_.capacity() * 4 + slot_keys_.capacity() * 8 + refs_.capacity() * 8 +
         arena_.capacity();
}

}  // namespace pgraph::storage
