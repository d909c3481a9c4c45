// Small shared helpers of the storage library: enum names, byte sizes, half floats.
#include <xxhash.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "storage/store.h"

namespace pgraph::storage {

std::size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kU8: return 1;
    case DType::kU32: return 4;
    case DType::kU64: return 8;
    case DType::kF32: return 4;
    case DType::kF16: return 2;
  }
  return 1;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kU8: return "u8";
    case DType::kU32: return "u32";
    case DType::kU64: return "u64";
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
  }
  return "?";
}

const char* CodecName(Codec c) { return c == Codec::kZstd ? "zstd" : "none"; }
const char* BackendName(Backend b) { return b == Backend::kRocksDb ? "rocksdb" : "lmdb"; }

Result<Backend> ParseBackend(std::string_view s) {
  if (s == "lmdb") return Backend::kLmdb;
  if (s == "rocksdb") return Backend::kRocksDb;
  return Status::InvalidArgument("unknown backend '" + std::string(s) +
                                 "' (expected lmdb or rocksdb)");
}

Result<Codec> ParseCodec(std::string_view s) {
  if (s == "zstd") return Codec::kZstd;
  if (s == "none" || s == "raw") return Codec::kNone;
  return Status::InvalidArgument("unknown compression '" + std::string(s) +
                                 "' (expected zstd or none)");
}

Result<std::uint64_t> ParseByteSize(std::string_view s) {
  std::string str(s);
  if (str.empty()) return Status::InvalidArgument("empty size");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || errno != 0 || v < 0 || !std::isfinite(v)) {
    return Status::InvalidArgument("bad size '" + str + "' (expected e.g. 512M, 4G)");
  }
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (!unit.empty() && unit.back() == 'I') unit.pop_back();
  double mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else return Status::InvalidArgument("bad size unit in '" + str + "' (use K, M, G or T)");
  return static_cast<std::uint64_t>(v * mult);
}

std::string FormatBytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::uint16_t FloatToHalf(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t exp = (x >> 23) & 0xffu;
  std::uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000u;
    int shift = 14 - e;
    std::uint32_t half = mant >> shift;
    std::uint32_t rem = mant & ((1u << shift) - 1);
    std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = sign | (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into exponent
  return static_cast<std::uint16_t>(half);
}

float HalfToFloat(std::uint16_t h) {
  std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

std::uint64_t HashId(std::string_view name) { return XXH64(name.data(), name.size(), 0); }

}  // namespace pgraph::storage
