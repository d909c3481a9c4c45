#include "storage/kv_backend.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pgraph::storage {

Status ErrnoStatus(int err, std::string_view what) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::ResourceExhausted(msg);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

namespace {

// Fails every Write after the first `allowed` with the message a full disk gives.
class FaultInjectingBackend : public KvBackend {
 public:
  FaultInjectingBackend(std::unique_ptr<KvBackend> base, long allowed)
      : base_(std::move(base)), allowed_(allowed) {}
  Status Get(std::string_view key, std::string* out) const override {
    return base_->Get(key, out);
  }
  bool zero_copy() const override { return base_->zero_copy(); }
  Result<std::span<const std::byte>> GetPinned(std::string_view key) const override {
    return base_->GetPinned(key);
  }
  Status Pin() override { return base_->Pin(); }
  Status Write(std::vector<KvOp>& ops) override {
    if (writes_++ >= allowed_) {
      return Status::ResourceExhausted("write failed: No space left on device (injected)");
    }
    return base_->Write(ops);
  }
  Status Sync() override { return base_->Sync(); }
  Status ScanKeys(std::string_view prefix,
                  const std::function<void(std::string_view)>& fn) const override {
    return base_->ScanKeys(prefix, fn);
  }

 private:
  std::unique_ptr<KvBackend> base_;
  long allowed_;
  long writes_ = 0;
};

}  // namespace

Result<std::unique_ptr<KvBackend>> OpenBackend(Backend backend, const std::string& dir,
                                               bool create, bool read_only) {
  Result<std::unique_ptr<KvBackend>> kv =
      backend == Backend::kLmdb ? OpenLmdbBackend(dir, create, read_only)
                                : OpenRocksDbBackend(dir, create, read_only);
  if (!kv.ok()) return kv.status();
  const char* fault = std::getenv("PGRAPH_FAULT_FAIL_WRITE_AFTER");
  if (fault != nullptr && *fault != '\0' && !read_only) {
    return std::unique_ptr<KvBackend>(
        std::make_unique<FaultInjectingBackend>(std::move(kv).value(), std::atol(fault)));
  }
  return kv;
}

}  // namespace pgraph::storage
