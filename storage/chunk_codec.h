#pragma once
// The on-disk form of one chunk: a 32-byte header then the payload (raw bytes or a zstd
// frame). The payload's XXH64 is in the header and in the column metadata; both must match
// before a chunk is used. Private to storage/.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "storage/status.h"
#include "storage/store.h"

namespace pgraph::storage {

inline constexpr std::uint32_t kChunkMagic = 0x4b434750;  // "PGCK"
inline constexpr std::size_t kChunkHeaderSize = 32;

struct ChunkHeader {
  std::uint32_t magic;
  std::uint8_t codec;
  std::uint8_t reserved[3];
  std::uint64_t raw_size;
  std::uint64_t payload_size;
  std::uint64_t checksum;
};
static_assert(sizeof(ChunkHeader) == kChunkHeaderSize);

std::uint64_t ChecksumBytes(std::span<const std::byte> bytes);

// Encodes `raw` into `out` (header + payload); returns the payload checksum via `checksum`
// and the payload size via `payload_size`.
Status EncodeChunk(std::span<const std::byte> raw, Codec codec, int level, std::string* out,
                   std::uint64_t* checksum, std::uint64_t* payload_size);

// Checks header and checksum of a stored chunk against `expected_checksum` and
// `expected_raw_size`. On success `payload` is the payload and `codec` its codec.
// Corruption with `what` (column and chunk) in the message otherwise.
Status CheckChunk(std::span<const std::byte> stored, std::uint64_t expected_checksum,
                  std::uint64_t expected_raw_size, const std::string& what,
                  std::span<const std::byte>* payload, Codec* codec);

// Decompresses a zstd payload into exactly raw_size bytes.
Status DecodeZstd(std::span<const std::byte> payload, std::uint64_t raw_size,
                  const std::string& what, std::vector<std::byte>* out);

}  // namespace pgraph::storage
