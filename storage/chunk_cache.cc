// ChunkCache: a mutex-guarded LRU keyed by 64-bit chunk keys, bounded in bytes. Sharded so
// that concurrent readers on different chunks rarely contend.
#include <algorithm>
#include <array>
#include <memory>
#include <vector>
#include <list>
#include <mutex>
#include <unordered_map>

#include "storage/store.h"

namespace pgraph::storage {

namespace {
// One shard per 64 MiB of budget, at most 16: small budgets keep a single LRU so that a
// chunk is never refused only because its shard's slice of the budget is too small.
constexpr std::uint64_t kBytesPerShard = 64ull << 20;
}

struct ChunkCache::Impl {
  struct Entry {
    std::uint64_t key;
    Value value;
  };
  struct Shard {
    std::mutex mu;  // guards everything below
    std::list<Entry> lru;  // front = most recent
    std::unordered_map<std::uint64_t, std::list<Entry>::iterator> index;
    std::uint64_t used = 0;
    std::uint64_t hits = 0, misses = 0;
  };
  std::vector<std::unique_ptr<Shard>> shards;
  std::uint64_t shard_budget = 0;
  Shard& For(std::uint64_t key) {
    return *shards[((key * 0x9e3779b97f4a7c15ull) >> 32) % shards.size()];
  }
};

ChunkCache::ChunkCache(std::uint64_t budget_bytes)
    : impl_(std::make_unique<Impl>()), budget_(budget_bytes) {
  std::uint64_t n = std::clamp<std::uint64_t>(budget_bytes / kBytesPerShard, 1, 16);
  for (std::uint64_t i = 0; i < n; ++i) impl_->shards.push_back(std::make_unique<Impl::Shard>());
  impl_->shard_budget = budget_bytes / n;
}

ChunkCache::~ChunkCache() = default;

ChunkCache::Value ChunkCache::Lookup(std::uint64_t key) {
  auto& s = impl_->For(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end()) {
    ++s.misses;
    return nullptr;
  }
  ++s.hits;
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return it->second->value;
}

void ChunkCache::Insert(std::uint64_t key, Value value) {
  if (!value) return;
  auto& s = impl_->For(key);
  std::uint64_t size = value->size();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.index.find(key);
  if (it != s.index.end()) {
    s.used -= it->second->value->size();
    s.lru.erase(it->second);
    s.index.erase(it);
  }
  if (size > impl_->shard_budget) return;  // would never fit: the caller keeps its copy
  while (s.used + size > impl_->shard_budget && !s.lru.empty()) {
    s.used -= s.lru.back().value->size();
    s.index.erase(s.lru.back().key);
    s.lru.pop_back();
  }
  s.lru.push_front(Impl::Entry{key, std::move(value)});
  s.index[key] = s.lru.begin();
  s.used += size;
}

std::uint64_t ChunkCache::used_bytes() const {
  std::uint64_t total = 0;
  for (auto& sp : impl_->shards) {
    auto& s = *sp;
    std::lock_guard<std::mutex> lock(s.mu);
    total += s.used;
  }
  return total;
}

std::uint64_t ChunkCache::hits() const {
  std::uint64_t total = 0;
  for (auto& sp : impl_->shards) {
    auto& s = *sp;
    std::lock_guard<std::mutex> lock(s.mu);
    total += s.hits;
  }
  return total;
}

std::uint64_t ChunkCache::misses() const {
  std::uint64_t total = 0;
  for (auto& sp : impl_->shards) {
    auto& s = *sp;
    std::lock_guard<std::mutex> lock(s.mu);
    total += s.misses;
  }
  return total;
}

}  // namespace pgraph::storage
