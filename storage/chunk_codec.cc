#include "storage/chunk_codec.h"

#include <xxhash.h>
#include <zstd.h>

#include <cstring>

namespace pgraph::storage {

std::uint64_t ChecksumBytes(std::span<const std::byte> bytes) {
  return XXH64(bytes.data(), bytes.size(), 0);
}

Status EncodeChunk(std::span<const std::byte> raw, Codec codec, int level, std::string* out,
                   std::uint64_t* checksum, std::uint64_t* payload_size) {
  ChunkHeader h{};
  h.magic = kChunkMagic;
  h.raw_size = raw.size();
  if (codec == Codec::kZstd) {
    thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
    std::size_t bound = ZSTD_compressBound(raw.size());
    out->resize(kChunkHeaderSize + bound);
    std::size_t n = ZSTD_compressCCtx(cctx, out->data() + kChunkHeaderSize, bound, raw.data(),
                                      raw.size(), level);
    if (ZSTD_isError(n)) {
      return Status::Internal(std::string("zstd compress: ") + ZSTD_getErrorName(n));
    }
    // Incompressible data is kept raw: no point paying decompression for nothing.
    if (n < raw.size()) {
      out->resize(kChunkHeaderSize + n);
      h.codec = static_cast<std::uint8_t>(Codec::kZstd);
    } else {
      codec = Codec::kNone;
    }
  }
  if (codec == Codec::kNone) {
    out->resize(kChunkHeaderSize + raw.size());
    if (!raw.empty()) std::memcpy(out->data() + kChunkHeaderSize, raw.data(), raw.size());
    h.codec = static_cast<std::uint8_t>(Codec::kNone);
  }
  h.payload_size = out->size() - kChunkHeaderSize;
  h.checksum = XXH64(out->data() + kChunkHeaderSize, h.payload_size, 0);
  std::memcpy(out->data(), &h, sizeof h);
  *checksum = h.checksum;
  *payload_size = h.payload_size;
  return Status::OK();
}

Status CheckChunk(std::span<const std::byte> stored, std::uint64_t expected_checksum,
                  std::uint64_t expected_raw_size, const std::string& what,
                  std::span<const std::byte>* payload, Codec* codec) {
  if (stored.size() < kChunkHeaderSize) {
    return Status::Corruption(what + ": chunk shorter than its header");
  }
  ChunkHeader h;
  std::memcpy(&h, stored.data(), sizeof h);
  if (h.magic != kChunkMagic || h.codec > 1 ||
      h.payload_size != stored.size() - kChunkHeaderSize || h.raw_size != expected_raw_size) {
    return Status::Corruption(what + ": bad chunk header");
  }
  std::span<const std::byte> p = stored.subspan(kChunkHeaderSize);
  std::uint64_t sum = ChecksumBytes(p);
  if (sum != expected_checksum || sum != h.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof buf, ": checksum mismatch (stored %016llx, computed %016llx)",
                  static_cast<unsigned long long>(expected_checksum),
                  static_cast<unsigned long long>(sum));
    return Status::Corruption(what + buf);
  }
  if (h.codec == 0 && p.size() != expected_raw_size) {
    return Status::Corruption(what + ": raw chunk size mismatch");
  }
  *payload = p;
  *codec = static_cast<Codec>(h.codec);
  return Status::OK();
}

Status DecodeZstd(std::span<const std::byte> payload, std::uint64_t raw_size,
                  const std::string& what, std::vector<std::byte>* out) {
  thread_local ZSTD_DCtx* dctx = ZSTD_createDCtx();
  out->resize(raw_size);
  std::size_t n = ZSTD_decompressDCtx(dctx, out->data(), raw_size, payload.data(), payload.size());
  if (ZSTD_isError(n) || n != raw_size) {
    return Status::Corruption(what + ": zstd decode failed" +
                              (ZSTD_isError(n) ? std::string(": ") + ZSTD_getErrorName(n) : ""));
  }
  return Status::OK();
}

}  // namespace pgraph::storage
