#pragma once
// KvBackend: the one interface through which the store touches its key-value database.
// Private to storage/. Implementations: LMDB (zero-copy reads from the memory map),
// RocksDB, and a fault-injecting wrapper used by tests to simulate a full disk.
//
// Thread safety: Get/GetPinned/Scan may be called concurrently; Write calls are
// serialised by the caller (one writer per store, see Store).

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"
#include "storage/store.h"

namespace pgraph::storage {

struct KvOp {
  enum class Kind { kPut, kDelete, kDeletePrefix } kind = Kind::kPut;
  std::string key;
  std::string value;  // kPut only; moved in to avoid a copy of large chunks
};

class KvBackend {
 public:
  virtual ~KvBackend() = default;

  // Copies the value of `key` into `out`. NotFound when absent.
  virtual Status Get(std::string_view key, std::string* out) const = 0;

  // True when GetPinned returns pointers into a memory map.
  virtual bool zero_copy() const { return false; }

  // Zero-copy read: bytes valid until the backend is destroyed. Sees the database as of the
  // last Pin() (or open). NotSupported when !zero_copy().
  virtual Result<std::span<const std::byte>> GetPinned(std::string_view key) const {
    (void)key;
    return Status::NotSupported("zero-copy reads");
  }
  // Makes later GetPinned calls see everything committed so far; earlier pointers stay valid.
  virtual Status Pin() { return Status::OK(); }

  // Applies all ops atomically (one transaction / write batch).
  virtual Status Write(std::vector<KvOp>& ops) = 0;

  // Makes every committed write durable (fsync).
  virtual Status Sync() = 0;

  // Calls fn(key) for every key with `prefix`, in key order, on the latest committed state.
  virtual Status ScanKeys(std::string_view prefix,
                          const std::function<void(std::string_view key)>& fn) const = 0;
};

// Opens or creates the database inside store directory `dir`.
Result<std::unique_ptr<KvBackend>> OpenLmdbBackend(const std::string& dir, bool create,
                                                   bool read_only);
Result<std::unique_ptr<KvBackend>> OpenRocksDbBackend(const std::string& dir, bool create,
                                                      bool read_only);

// Opens the right backend; wraps it in the fault injector when the environment variable
// PGRAPH_FAULT_FAIL_WRITE_AFTER=N is set (the N+1-th Write fails with ResourceExhausted,
// "No space left on device"), which is how tests exercise full-disk handling.
Result<std::unique_ptr<KvBackend>> OpenBackend(Backend backend, const std::string& dir,
                                               bool create, bool read_only);

// Maps an errno-style code to a Status: ENOSPC/EDQUOT/MDB_MAP_FULL -> ResourceExhausted.
Status ErrnoStatus(int err, std::string_view what);

}  // namespace pgraph::storage
