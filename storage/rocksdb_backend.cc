// RocksDB implementation of KvBackend. Chunks arrive already compressed (or deliberately
// raw), so RocksDB's own block compression is off. Read-only opens do not take RocksDB's
// lock, so queries run while another process writes.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "storage/kv_backend.h"

namespace pgraph::storage {
namespace {

Status RocksStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kSpaceLimit) return Status::ResourceExhausted(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.ToString().find("No space left") != std::string::npos) {
    return Status::ResourceExhausted(msg);
  }
  return Status::IOError(msg);
}

class RocksDbBackend : public KvBackend {
 public:
  Status Open(const std::string& dir, bool create, bool read_only) {
    path_ = dir + "/rocksdb";
    rocksdb::Options opt;
    opt.create_if_missing = create;
    opt.compression = rocksdb::kNoCompression;
    opt.write_buffer_size = 64 << 20;
    opt.max_open_files = 256;
    opt.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    opt.keep_log_file_num = 2;
    rocksdb::BlockBasedTableOptions table;
    table.block_size = 64 << 10;
    opt.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(opt, path_, &db)
                                  : rocksdb::DB::Open(opt, path_, &db);
    if (!s.ok()) return RocksStatus(s, "opening RocksDB database " + path_);
    db_.reset(db);
    return Status::OK();
  }

  Status Get(std::string_view key, std::string* out) const override {
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), out);
    return RocksStatus(s, "rocksdb get");
  }

  Status Write(std::vector<KvOp>& ops) override {
    rocksdb::WriteBatch batch;
    for (KvOp& op : ops) {
      rocksdb::Slice k(op.key.data(), op.key.size());
      if (op.kind == KvOp::Kind::kPut) {
        batch.Put(k, rocksdb::Slice(op.value.data(), op.value.size()));
      } else if (op.kind == KvOp::Kind::kDelete) {
        batch.Delete(k);
      } else {
        std::string end = op.key;
        end.push_back('\xff');
        end.append(16, '\xff');
        batch.DeleteRange(k, rocksdb::Slice(end));
      }
    }
    return RocksStatus(db_->Write(rocksdb::WriteOptions(), &batch),
                       "writing to RocksDB database " + path_);
  }

  Status Sync() override { return RocksStatus(db_->FlushWAL(true), "rocksdb sync " + path_); }

  Status ScanKeys(std::string_view prefix,
                  const std::function<void(std::string_view)>& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      std::string_view key(it->key().data(), it->key().size());
      if (key.substr(0, prefix.size()) != prefix) break;
      fn(key);
    }
    return RocksStatus(it->status(), "rocksdb scan");
  }

 private:
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

Result<std::unique_ptr<KvBackend>> OpenRocksDbBackend(const std::string& dir, bool create,
                                                      bool read_only) {
  auto b = std::make_unique<RocksDbBackend>();
  PGRAPH_RETURN_IF_ERROR(b->Open(dir, create, read_only));
  return std::unique_ptr<KvBackend>(std::move(b));
}

}  // namespace pgraph::storage
