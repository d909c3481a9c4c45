#pragma once
// pgraph::infer::ScratchArena — one block of working memory that the stages of a run carve
// their buffers out of, instead of each stage allocating (and freeing) its own.
//
// Why: buffers of tens of MiB are mmap'd by malloc and unmapped when freed, so a stage that
// allocates its own faults every page in fresh (and zeroes it, for a std::vector), and so
// does the next stage, for the same bytes. A fault costs ~1.5 us per 4 KiB page on the VMs
// measured, and up to ~20 us where the hypervisor reclaims freed guest memory (free page
// reporting): at 1M items that was seconds per run (docs/BENCHMARKS.md, "## infer"). One
// block, grown to the largest stage's need, is faulted once.
//
// Contract: Carve() hands out spans that stay valid until the next Carve(); their contents
// are unspecified (never zeroed), so every element must be written before it is read. The
// block only grows, so the memory held is the largest single Carve() of the run: budgets
// that take the maximum over stages hold.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace pgraph::infer {

class ScratchArena {
 public:
  // Consecutive buffers of floats[i] floats each (64-byte aligned); a size of 0 gives a
  // null pointer.
  template <std::size_t N>
  std::array<float*, N> Carve(const std::array<std::uint64_t, N>& floats) {
    std::uint64_t total = 0;
    for (std::uint64_t f : floats) total += Up(f);
    if (total > capacity_) {
      block_.reset();  // the old block goes before the new one arrives: no double peak
      block_ = std::make_unique_for_overwrite<float[]>(total + kAlign);
      capacity_ = total;
    }
    float* at = Aligned(block_.get());
    std::array<float*, N> out{};
    for (std::size_t i = 0; i < N; ++i) {
      out[i] = floats[i] == 0 ? nullptr : at;
      at += Up(floats[i]);
    }
    return out;
  }

  std::uint64_t bytes() const { return capacity_ * sizeof(float); }

  // Gives the block back (between phases whose budgets are accounted separately).
  void Release() {
    block_.reset();
    capacity_ = 0;
  }

 private:
  static constexpr std::uint64_t kAlign = 16;  // floats: 64 bytes
  static std::uint64_t Up(std::uint64_t f) { return (f + kAlign - 1) & ~(kAlign - 1); }
  static float* Aligned(float* p) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return p + ((kAlign * sizeof(float) - a % (kAlign * sizeof(float))) % (kAlign * sizeof(float))) /
                   sizeof(float);
  }

  std::unique_ptr<float[]> block_;
  std::uint64_t capacity_ = 0;  // floats usable after alignment
};

}  // namespace pgraph::infer
