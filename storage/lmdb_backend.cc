// LMDB implementation of KvBackend. The environment is opened with MDB_NOTLS so read
// transactions are not tied to threads; "pin" transactions stay open for the backend's
// lifetime, which keeps every page they can see from being reused, so pointers returned by
// GetPinned remain valid until the backend closes.
#include <fcntl.h>
#include <lmdb.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "storage/kv_backend.h"

namespace pgraph::storage {
namespace {

Status MdbStatus(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return Status::OK();
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_NOTFOUND) return Status::NotFound(msg);
  if (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT) return Status::ResourceExhausted(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
    return Status::Corruption(msg);
  }
  if (rc == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

class LmdbBackend : public KvBackend {
 public:
  ~LmdbBackend() override {
    for (MDB_txn* t : pins_) mdb_txn_abort(t);
    if (env_) mdb_env_close(env_);
  }

  Status Open(const std::string& path, bool create, bool read_only) {
    path_ = path;
    create_ = create;
    int rc = mdb_env_create(&env_);
    if (rc) return MdbStatus(rc, "lmdb env create");
    std::uint64_t map_size = 1ull << 40;  // address space only; the file grows as needed
    if (const char* m = std::getenv("PGRAPH_LMDB_MAP_SIZE")) map_size = std::strtoull(m, nullptr, 10);
    mdb_env_set_mapsize(env_, map_size);
    mdb_env_set_maxreaders(env_, 1024);
    // A store being created lives in a hidden directory until Seal, which syncs once: no
    // need to sync each batch. Later updates sync data pages on commit (NOMETASYNC keeps
    // the database consistent after a system crash) and fully at Publish.
    unsigned flags = MDB_NOTLS | (create ? MDB_NOSYNC : MDB_NOMETASYNC);
    if (read_only) flags |= MDB_RDONLY;
    rc = mdb_env_open(env_, path.c_str(), flags, 0644);
    if (rc) return MdbStatus(rc, "opening LMDB database in " + path);
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    if (rc) return MdbStatus(rc, "lmdb begin");
    rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
    if (rc) {
      mdb_txn_abort(txn);
      return MdbStatus(rc, "lmdb dbi open");
    }
    rc = read_only ? (mdb_txn_abort(txn), 0) : mdb_txn_commit(txn);
    if (rc) return MdbStatus(rc, "lmdb commit");
    return Pin();
  }

  Status Get(std::string_view key, std::string* out) const override {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc) return MdbStatus(rc, "lmdb read begin");
    MDB_val k = Val(key), v;
    rc = mdb_get(txn, dbi_, &k, &v);
    if (rc == MDB_SUCCESS) out->assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_abort(txn);
    return MdbStatus(rc, "lmdb get");
  }

  bool zero_copy() const override { return true; }

  Result<std::span<const std::byte>> GetPinned(std::string_view key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    MDB_val k = Val(key), v;
    int rc = mdb_get(pins_.back(), dbi_, &k, &v);
    if (rc) return MdbStatus(rc, "lmdb get");
    return std::span<const std::byte>(static_cast<const std::byte*>(v.mv_data), v.mv_size);
  }

  Status Pin() override {
    std::lock_guard<std::mutex> lock(mu_);
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc) return MdbStatus(rc, "lmdb read begin");
    pins_.push_back(txn);
    return Status::OK();
  }

  Status Write(std::vector<KvOp>& ops) override {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return MdbStatus(rc, "lmdb write begin in " + path_);
    for (KvOp& op : ops) {
      MDB_val k = Val(op.key);
      if (op.kind == KvOp::Kind::kPut) {
        MDB_val v = Val(op.value);
        rc = mdb_put(txn, dbi_, &k, &v, 0);
      } else if (op.kind == KvOp::Kind::kDelete) {
        rc = mdb_del(txn, dbi_, &k, nullptr);
        if (rc == MDB_NOTFOUND) rc = 0;
      } else {
        rc = DeletePrefix(txn, op.key);
      }
      if (rc) {
        mdb_txn_abort(txn);
        return MdbStatus(rc, "writing to LMDB database in " + path_);
      }
    }
    rc = mdb_txn_commit(txn);
    if (rc == MDB_SUCCESS && create_) {
      // Unsynced commits of a store being built: start their writeback now (without
      // waiting), so the one sync at Seal has little left to wait for.
      int fd;
      if (mdb_env_get_fd(env_, &fd) == MDB_SUCCESS) sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    return MdbStatus(rc, "committing to LMDB database in " + path_);
  }

  Status Sync() override { return MdbStatus(mdb_env_sync(env_, 1), "lmdb sync in " + path_); }

  Status ScanKeys(std::string_view prefix,
                  const std::function<void(std::string_view)>& fn) const override {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc) return MdbStatus(rc, "lmdb read begin");
    MDB_cursor* cur = nullptr;
    rc = mdb_cursor_open(txn, dbi_, &cur);
    if (rc) {
      mdb_txn_abort(txn);
      return MdbStatus(rc, "lmdb cursor");
    }
    MDB_val k = Val(prefix), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS) {
      std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
      if (key.substr(0, prefix.size()) != prefix) break;
      fn(key);
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? Status::OK() : MdbStatus(rc, "lmdb scan");
  }

 private:
  int DeletePrefix(MDB_txn* txn, std::string_view prefix) {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(txn, dbi_, &cur);
    if (rc) return rc;
    MDB_val k = Val(prefix), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS) {
      std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
      if (key.substr(0, prefix.size()) != prefix) break;
      rc = mdb_cursor_del(cur, 0);
      if (rc) break;
      rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
      if (rc == MDB_NOTFOUND) break;
      std::string_view cur_key(static_cast<const char*>(k.mv_data), k.mv_size);
      if (cur_key.substr(0, prefix.size()) != prefix) break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  std::string path_;
  bool create_ = false;  // opened with MDB_NOSYNC to build a new store
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  mutable std::mutex mu_;       // guards pins_ and use of pins_.back()
  std::vector<MDB_txn*> pins_;  // never empty after Open
};

}  // namespace

Result<std::unique_ptr<KvBackend>> OpenLmdbBackend(const std::string& dir, bool create,
                                                   bool read_only) {
  auto b = std::make_unique<LmdbBackend>();
  PGRAPH_RETURN_IF_ERROR(b->Open(dir, create, read_only));
  return std::unique_ptr<KvBackend>(std::move(b));
}

}  // namespace pgraph::storage
