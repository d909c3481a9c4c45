#pragma once
// Private pieces shared by column.cc and store.cc: the in-memory form of the manifest, key
// layout, and the Column / ColumnWriter implementations.
//
// Key layout in the key-value database:
//   "manifest"                      FlatBuffers Manifest (schema/manifest.fbs)
//   "c" BE64(version) BE64(chunk)   one chunk: 32-byte header + payload (chunk_codec.h)
//   "p" BE64(version)               pending marker: chunks of this version may exist but are
//                                   not yet published; cleaned up at the next writable open

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/kv_backend.h"
#include "storage/store.h"

namespace pgraph::storage {

inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr const char* kManifestKey = "manifest";

struct ColumnMeta {
  ColumnInfo info;
  int zstd_level = 3;
  std::vector<std::uint64_t> checksums;
};

struct ManifestData {
  std::uint32_t format_version = kFormatVersion;
  Backend backend = Backend::kLmdb;
  std::uint64_t created_unix = 0;
  std::uint64_t generation = 0;
  std::map<std::string, std::uint64_t, std::less<>> counts;
  std::map<std::string, std::string, std::less<>> meta;
  std::map<std::string, ColumnMeta, std::less<>> columns;
};

std::string EncodeManifest(const ManifestData& m);
Result<ManifestData> DecodeManifest(std::string_view bytes, const std::string& where);

std::string ChunkKey(std::uint64_t version, std::uint64_t chunk);
std::string ChunkPrefix(std::uint64_t version);
std::string PendingKey(std::uint64_t version);
std::uint64_t NewVersion();

class ColumnImpl : public Column {
 public:
  ColumnImpl(const KvBackend* kv, ChunkCache* cache, ColumnMeta meta);
  const ColumnInfo& info() const override { return meta_.info; }
  Result<ChunkRef> ReadChunk(std::uint64_t chunk) const override;

 private:
  std::string What(std::uint64_t chunk) const;
  const KvBackend* kv_;
  ChunkCache* cache_;
  ColumnMeta meta_;
  std::uint64_t cache_base_;
  // Verified zero-copy payloads of raw LMDB chunks (null until first read).
  std::unique_ptr<std::atomic<const std::byte*>[]> zero_copy_;
};

class ColumnWriterImpl : public ColumnWriter {
 public:
  ColumnWriterImpl(KvBackend* kv, ColumnMeta meta);
  ~ColumnWriterImpl() override = default;
  const ColumnInfo& info() const override { return meta_.info; }
  Status Append(std::span<const std::byte> data) override;
  // Writes the final partial chunk and everything buffered; fills the metadata.
  Status Finish();
  const ColumnMeta& meta() const { return meta_; }
  bool wrote_anything() const { return wrote_marker_; }

 private:
  Status FlushChunks(bool final);
  // Encodes and writes the whole chunks of `src` (and a final partial one when `final`) in
  // one backend write; *consumed is the bytes written.
  Status WriteChunks(std::span<const std::byte> src, bool final, std::uint64_t* consumed);
  KvBackend* kv_;
  ColumnMeta meta_;
  std::uint64_t chunk_bytes_;
  std::vector<std::byte> pending_;  // raw bytes of whole chunks not yet encoded (+ a tail)
  bool wrote_marker_ = false;
  bool finished_ = false;
  Status error_;
};

}  // namespace pgraph::storage
