#pragma once
// Transparent huge pages for large arrays that are accessed at random (CSR scatters,
// interning tables, inference's projection rows): fewer page faults, and far fewer TLB
// misses. Hints only; ignored where THP is off.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgraph::storage {

// Asks for transparent huge pages on the 2 MiB-aligned part of [p, p + bytes) before it is
// first touched: fewer page faults, and far fewer TLB misses for the random accesses of
// interning and CSR scatters. A hint only; ignored where THP is off.
inline void AdviseHugePages(const void* p, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = 2u << 20;
  auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// v.resize(n), with huge pages advised for the new storage before it is zeroed.
template <typename T>
void ResizeHuge(std::vector<T>* v, std::size_t n) {
  if (n > v->capacity()) {
    std::vector<T> fresh;
    fresh.reserve(n);
    AdviseHugePages(fresh.data(), n * sizeof(T));
    fresh.assign(v->begin(), v->end());
    *v = std::move(fresh);
  }
  v->resize(n);
}

}  // namespace pgraph::storage
