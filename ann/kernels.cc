#include "ann/kernels.h"

#include <bit>
#include <cmath>
#include <cstring>

// The hot loops accumulate into kLanes independent partial sums (fixed order, no
// reassociation needed), which gcc turns into packed multiply-adds for every target.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(PGRAPH_ANN_NO_CLONES)
#define PGRAPH_ANN_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define PGRAPH_ANN_CLONES
#endif
#define PGRAPH_ANN_INLINE inline __attribute__((always_inline))

namespace pgraph::ann::internal {
namespace {

constexpr std::size_t kLanes = 16;

PGRAPH_ANN_INLINE float Finish(const float* acc, float tail) {
  float s = 0;
  for (std::size_t j = 0; j < kLanes; ++j) s += acc[j];
  return s + tail;
}

PGRAPH_ANN_INLINE float Dot1(const float* a, const float* b, std::size_t d) {
  float acc[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0;
  for (; i < d; ++i) tail += a[i] * b[i];
  return Finish(acc, tail);
}

// Four rows against one query; per row the same operations in the same order as Dot1.
PGRAPH_ANN_INLINE void Dot4(const float* a, const float* b0, const float* b1, const float* b2,
                            const float* b3, std::size_t d, float* out) {
  float acc0[kLanes] = {}, acc1[kLanes] = {}, acc2[kLanes] = {}, acc3[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      const float x = a[i + j];
      acc0[j] += x * b0[i + j];
      acc1[j] += x * b1[i + j];
      acc2[j] += x * b2[i + j];
      acc3[j] += x * b3[i + j];
    }
  }
  float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
  for (; i < d; ++i) {
    t0 += a[i] * b0[i];
    t1 += a[i] * b1[i];
    t2 += a[i] * b2[i];
    t3 += a[i] * b3[i];
  }
  out[0] = Finish(acc0, t0);
  out[1] = Finish(acc1, t1);
  out[2] = Finish(acc2, t2);
  out[3] = Finish(acc3, t3);
}

// Branch-free IEEE half -> float: place exponent and mantissa in a float and rescale by
// 2^112 (handles normals, subnormals and zero); infinities and NaNs are patched after.
PGRAPH_ANN_INLINE float Half(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7fffu;
  float f = std::bit_cast<float>(em << 13) * 0x1p112f;
  std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  bits = em >= 0x7c00u ? (0x7f800000u | (em & 0x3ffu) << 13) : bits;
  return std::bit_cast<float>(bits | sign);
}

}  // namespace

PGRAPH_ANN_CLONES
float Dot(const float* a, const float* b, std::size_t d) { return Dot1(a, b, d); }

PGRAPH_ANN_CLONES
float DotHalf(const float* a, const std::uint16_t* b, std::size_t d) {
  float acc[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) acc[j] += a[i + j] * Half(b[i + j]);
  }
  float tail = 0;
  for (; i < d; ++i) tail += a[i] * Half(b[i]);
  return Finish(acc, tail);
}

PGRAPH_ANN_CLONES
void DotBlock(const float* queries, std::size_t m, const float* rows, std::size_t n,
              std::size_t d, float* out) {
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* r = rows + j * d;
    for (std::size_t i = 0; i < m; ++i) {
      float s[4];
      Dot4(queries + i * d, r, r + d, r + 2 * d, r + 3 * d, d, s);
      float* o = out + i * n + j;
      o[0] = s[0];
      o[1] = s[1];
      o[2] = s[2];
      o[3] = s[3];
    }
  }
  for (; j < n; ++j) {
    for (std::size_t i = 0; i < m; ++i) out[i * n + j] = Dot1(queries + i * d, rows + j * d, d);
  }
}

PGRAPH_ANN_CLONES
bool PackSigns(const float* proj, const float* offsets, const float* norms, float scale,
               std::uint32_t tables, std::uint32_t bits, std::uint32_t* sigs) {
  // One flat pass that vectorises (a byte per sign), then the bytes packed 8 at a time.
  constexpr std::size_t kMaxPlanes = 255 * 32;
  std::uint8_t sign[kMaxPlanes + 8];
  const std::size_t np = std::size_t{tables} * bits;
  int near = 0;
  for (std::size_t p = 0; p < np; ++p) {
    const float x = proj[p] - offsets[p];
    sign[p] = x > 0;
    near |= !(std::fabs(x) > scale * norms[p]);
  }
  for (std::uint32_t t = 0; t < tables; ++t) {
    const std::uint8_t* b = sign + std::size_t{t} * bits;
    std::uint32_t s = 0;
    std::uint32_t j = 0;
    for (; j + 8 <= bits; j += 8) {
      std::uint64_t w;
      std::memcpy(&w, b + j, 8);
      // Byte i holds 0 or 1: the product gathers byte i's bit at bit 56 + i.
      s |= static_cast<std::uint32_t>((w * 0x0102040810204080ull) >> 56) << j;
    }
    for (; j < bits; ++j) s |= std::uint32_t{b[j]} << j;
    sigs[t] = s;
  }
  return near != 0;
}

PGRAPH_ANN_CLONES
void HalfToFloat(const std::uint16_t* in, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = Half(in[i]);
}

}  // namespace pgraph::ann::internal
