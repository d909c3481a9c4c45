#pragma once
// Private to ann/: a bounded top-k of (id, score), best = higher score, then lower id.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ann/ann.h"

namespace pgraph::ann::internal {

inline bool Better(const Neighbor& a, const Neighbor& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

class TopK {
 public:
  explicit TopK(std::uint32_t k = 0) : k_(k) { heap_.reserve(k); }
  void Reset(std::uint32_t k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(k);
  }
  std::uint32_t k() const { return k_; }
  // Cheap pre-test: could (id, score) enter? (Ties on score are settled by Push.)
  bool MayEnter(float score) const {
    return heap_.size() < k_ || score >= heap_.front().score;
  }
  void Push(NodeId id, float score) {
    const Neighbor n{id, score};
    if (heap_.size() < k_) {
      heap_.push_back(n);
      std::push_heap(heap_.begin(), heap_.end(), Better);  // worst on top
    } else if (k_ > 0 && Better(n, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), Better);
      heap_.back() = n;
      std::push_heap(heap_.begin(), heap_.end(), Better);
    }
  }
  void Merge(const TopK& other) {
    for (const Neighbor& n : other.heap_) Push(n.id, n.score);
  }
  // The kept entries, best first; leaves the TopK empty.
  std::vector<Neighbor> Take() {
    std::vector<Neighbor> out = std::move(heap_);
    heap_ = {};
    std::sort(out.begin(), out.end(), Better);
    return out;
  }

 private:
  std::uint32_t k_;
  std::vector<Neighbor> heap_;
};

}  // namespace pgraph::ann::internal
