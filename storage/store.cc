// Store: directory layout, creation by rename, the writer lock, the manifest and Update.
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "storage/schema/manifest_generated.h"
#include "storage/store_impl.h"

namespace pgraph::storage {

namespace fs = std::filesystem;

// ---- Manifest encoding -------------------------------------------------------------------

std::string EncodeManifest(const ManifestData& m) {
  flatbuffers::FlatBufferBuilder b(4096);
  std::vector<flatbuffers::Offset<fb::Count>> counts;
  for (const auto& [k, v] : m.counts) counts.push_back(fb::CreateCount(b, b.CreateString(k), v));
  std::vector<flatbuffers::Offset<fb::Meta>> metas;
  for (const auto& [k, v] : m.meta) {
    metas.push_back(fb::CreateMeta(b, b.CreateString(k), b.CreateString(v)));
  }
  std::vector<flatbuffers::Offset<fb::ColumnMeta>> cols;
  for (const auto& [name, c] : m.columns) {
    const ColumnInfo& i = c.info;
    cols.push_back(fb::CreateColumnMeta(
        b, b.CreateString(name), static_cast<fb::DType>(i.dtype), i.width, i.rows,
        i.rows_per_chunk, static_cast<fb::Codec>(i.codec), c.zstd_level, i.raw_bytes,
        i.stored_bytes, i.version, b.CreateVector(c.checksums)));
  }
  auto root = fb::CreateManifest(b, m.format_version, static_cast<fb::Backend>(m.backend),
                                 m.created_unix, m.generation, b.CreateVector(counts),
                                 b.CreateVector(metas), b.CreateVector(cols));
  b.Finish(root);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Result<ManifestData> DecodeManifest(std::string_view bytes, const std::string& where) {
  flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                 bytes.size());
  if (!fb::VerifyManifestBuffer(verifier)) {
    return Status::Corruption(where + ": manifest does not verify");
  }
  const fb::Manifest* f = fb::GetManifest(bytes.data());
  ManifestData m;
  m.format_version = f->format_version();
  if (m.format_version != kFormatVersion) {
    return Status::NotSupported(where + ": store format version " +
                                std::to_string(m.format_version) + ", this pgraph reads " +
                                std::to_string(kFormatVersion));
  }
  m.backend = static_cast<Backend>(f->backend());
  m.created_unix = f->created_unix();
  m.generation = f->generation();
  if (f->counts()) {
    for (const auto* c : *f->counts()) m.counts[c->key()->str()] = c->value();
  }
  if (f->meta()) {
    for (const auto* c : *f->meta()) m.meta[c->key()->str()] = c->value() ? c->value()->str() : "";
  }
  if (f->columns()) {
    for (const auto* c : *f->columns()) {
      ColumnMeta cm;
      ColumnInfo& i = cm.info;
      i.name = c->name()->str();
      i.dtype = static_cast<DType>(c->dtype());
      i.width = c->width();
      i.rows = c->rows();
      i.rows_per_chunk = c->rows_per_chunk();
      i.codec = static_cast<Codec>(c->codec());
      i.raw_bytes = c->raw_bytes();
      i.stored_bytes = c->stored_bytes();
      i.version = c->version();
      cm.zstd_level = c->zstd_level();
      if (c->checksums()) cm.checksums.assign(c->checksums()->begin(), c->checksums()->end());
      if (i.rows_per_chunk == 0 || i.width == 0 || cm.checksums.size() != i.num_chunks() ||
          static_cast<int>(i.dtype) > 4) {
        return Status::Corruption(where + ": column '" + i.name + "' metadata is inconsistent");
      }
      m.columns[i.name] = std::move(cm);
    }
  }
  return m;
}

// ---- Store ---------------------------------------------------------------------------------

namespace {

constexpr const char* kMarkerFile = "PGRAPH";
constexpr const char* kLockFile = "LOCK";

Status WriteMarker(const std::string& dir, Backend backend) {
  std::string path = dir + "/" + kMarkerFile;
  std::ofstream f(path, std::ios::trunc);
  f << "pgraph-store\nformat " << kFormatVersion << "\nbackend " << BackendName(backend) << "\n";
  f.flush();
  if (!f) return ErrnoStatus(errno, "writing " + path);
  return Status::OK();
}

Result<Backend> ReadMarker(const std::string& dir) {
  std::string path = dir + "/" + kMarkerFile;
  std::ifstream f(path);
  if (!f) {
    return Status::NotFound("'" + dir + "' is not a pgraph store (no " + kMarkerFile + " file)");
  }
  std::string line, key, value;
  std::getline(f, line);
  if (line != "pgraph-store") return Status::Corruption(path + ": not a pgraph store marker");
  while (f >> key >> value) {
    if (key == "backend") return ParseBackend(value);
  }
  return Status::Corruption(path + ": no backend line");
}

class UpdateImpl;

class StoreImpl : public Store {
 public:
  StoreImpl() = default;
  ~StoreImpl() override {
    kv_.reset();
    if (lock_fd_ >= 0) close(lock_fd_);
    if (building_ && !sealed_) {
      std::error_code ec;
      fs::remove_all(dir_, ec);  // never leave a half-built store behind
    }
  }

  Status InitCreate(std::string_view final_dir, const StoreOptions& options, bool overwrite) {
    options_ = options;
    final_dir_ = fs::absolute(fs::path(final_dir)).lexically_normal().string();
    while (final_dir_.size() > 1 && final_dir_.back() == '/') final_dir_.pop_back();
    overwrite_ = overwrite;
    PGRAPH_RETURN_IF_ERROR(CheckTarget());
    fs::path parent = fs::path(final_dir_).parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return Status::IOError("cannot create directory " + parent.string() + ": " + ec.message());
    RemoveStaleBuilds(parent, fs::path(final_dir_).filename().string());
    std::string tmpl = (parent / ("." + fs::path(final_dir_).filename().string() + ".tmp-" +
                                  std::to_string(getpid()) + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus(errno, "creating " + tmpl);
    dir_ = tmpl;
    building_ = true;
    PGRAPH_RETURN_IF_ERROR(WriteMarker(dir_, options.backend));
    PGRAPH_RETURN_IF_ERROR(TakeLock());
    PGRAPH_ASSIGN_OR_RETURN(kv_, OpenBackend(options.backend, dir_, true, false));
    manifest_.backend = options.backend;
    manifest_.created_unix = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch()).count());
    PGRAPH_RETURN_IF_ERROR(WriteManifest(manifest_));
    cache_ = std::make_unique<ChunkCache>(options.memory_budget);
    return Status::OK();
  }

  Status InitOpen(std::string_view dir, const StoreOptions& options) {
    options_ = options;
    dir_ = std::string(dir);
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) return Status::NotFound("no store at '" + dir_ + "'");
    PGRAPH_ASSIGN_OR_RETURN(Backend backend, ReadMarker(dir_));
    options_.backend = backend;
    if (!options.read_only) PGRAPH_RETURN_IF_ERROR(TakeLock());
    PGRAPH_ASSIGN_OR_RETURN(kv_, OpenBackend(backend, dir_, false, options.read_only));
    PGRAPH_RETURN_IF_ERROR(LoadManifest());
    cache_ = std::make_unique<ChunkCache>(options.memory_budget);
    if (!options.read_only) PGRAPH_RETURN_IF_ERROR(CollectGarbage());
    return Status::OK();
  }

  Status Seal() override {
    if (!building_ || sealed_) return Status::Internal("Seal on a store that is not being built");
    PGRAPH_RETURN_IF_ERROR(kv_->Sync());
    kv_.reset();
    PGRAPH_RETURN_IF_ERROR(CheckTarget());
    std::error_code ec;
    if (fs::exists(final_dir_, ec)) {
      // Atomic swap: at every instant either the old or the new store is at final_dir_.
      if (renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, final_dir_.c_str(), RENAME_EXCHANGE) != 0) {
        return ErrnoStatus(errno, "replacing " + final_dir_);
      }
      sealed_ = true;
      fs::remove_all(dir_, ec);  // now the old store
    } else {
      if (rename(dir_.c_str(), final_dir_.c_str()) != 0) {
        return ErrnoStatus(errno, "renaming " + dir_ + " to " + final_dir_);
      }
      sealed_ = true;
    }
    SyncDir(fs::path(final_dir_).parent_path().string());
    dir_ = final_dir_;
    return Status::OK();
  }

  const std::string& dir() const override { return dir_; }
  Backend backend() const override { return options_.backend; }
  const StoreOptions& options() const override { return options_; }
  std::uint32_t format_version() const override { return kFormatVersion; }

  std::uint64_t count(std::string_view key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = manifest_.counts.find(key);
    return it == manifest_.counts.end() ? 0 : it->second;
  }
  std::map<std::string, std::uint64_t> counts() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return {manifest_.counts.begin(), manifest_.counts.end()};
  }
  Result<std::string> GetMeta(std::string_view key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = manifest_.meta.find(key);
    if (it == manifest_.meta.end()) return Status::NotFound("no metadata '" + std::string(key) + "'");
    return it->second;
  }
  std::vector<ColumnInfo> ListColumns() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ColumnInfo> out;
    for (const auto& [_, c] : manifest_.columns) out.push_back(c.info);
    return out;
  }
  bool HasColumn(std::string_view name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return manifest_.columns.count(name) > 0;
  }
  Result<const Column*> OpenColumn(std::string_view name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = manifest_.columns.find(name);
    if (it == manifest_.columns.end()) {
      return Status::NotFound("store '" + dir_ + "' has no column '" + std::string(name) + "'");
    }
    std::uint64_t version = it->second.info.version;
    auto& slot = open_columns_[version];
    if (!slot) slot = std::make_unique<ColumnImpl>(kv_.get(), cache_.get(), it->second);
    return static_cast<const Column*>(slot.get());
  }

  Status Refresh() override {
    PGRAPH_RETURN_IF_ERROR(kv_->Pin());
    return LoadManifest();
  }

  Result<std::unique_ptr<Update>> BeginUpdate() override;

  Status Verify() const override {
    for (const ColumnInfo& ci : ListColumns()) {
      PGRAPH_ASSIGN_OR_RETURN(const Column* col, OpenColumn(ci.name));
      for (std::uint64_t c = 0; c < ci.num_chunks(); ++c) {
        PGRAPH_ASSIGN_OR_RETURN(ChunkRef ref, col->ReadChunk(c));
        (void)ref;
      }
    }
    return Status::OK();
  }

  ChunkCache& cache() const override { return *cache_; }

  // Used by UpdateImpl.
  KvBackend* kv() { return kv_.get(); }
  Status PublishManifest(const std::function<void(ManifestData*)>& change,
                         std::vector<KvOp> extra_ops) {
    PGRAPH_RETURN_IF_ERROR(kv_->Sync());  // chunks durable before the manifest names them
    ManifestData m;
    {
      std::string bytes;
      PGRAPH_RETURN_IF_ERROR(kv_->Get(kManifestKey, &bytes));
      PGRAPH_ASSIGN_OR_RETURN(m, DecodeManifest(bytes, dir_));
    }
    std::set<std::uint64_t> before;
    for (const auto& [_, c] : m.columns) before.insert(c.info.version);
    change(&m);
    ++m.generation;
    std::set<std::uint64_t> after;
    for (const auto& [_, c] : m.columns) after.insert(c.info.version);
    for (std::uint64_t v : before) {
      if (!after.count(v)) extra_ops.push_back({KvOp::Kind::kDeletePrefix, ChunkPrefix(v), {}});
    }
    extra_ops.push_back({KvOp::Kind::kPut, kManifestKey, EncodeManifest(m)});
    PGRAPH_RETURN_IF_ERROR(kv_->Write(extra_ops));
    PGRAPH_RETURN_IF_ERROR(kv_->Sync());
    return Refresh();
  }

 private:
  Status CheckTarget() {
    std::error_code ec;
    if (!fs::exists(final_dir_, ec)) return Status::OK();
    if (!overwrite_) {
      return Status::InvalidArgument("store '" + final_dir_ +
                                     "' already exists (use --overwrite to replace it)");
    }
    bool is_store = fs::exists(fs::path(final_dir_) / kMarkerFile, ec);
    bool empty_dir = fs::is_directory(final_dir_, ec) && fs::is_empty(final_dir_, ec);
    if (!is_store && !empty_dir) {
      return Status::InvalidArgument("'" + final_dir_ +
                                     "' exists and is not a pgraph store; refusing to replace it");
    }
    return Status::OK();
  }

  // Build directories of killed ingests: ".NAME.tmp-PID-XXXXXX" whose PID is gone.
  static void RemoveStaleBuilds(const fs::path& parent, const std::string& name) {
    std::error_code ec;
    std::string prefix = "." + name + ".tmp-";
    for (const auto& e : fs::directory_iterator(parent, ec)) {
      std::string f = e.path().filename().string();
      if (f.rfind(prefix, 0) != 0) continue;
      long pid = std::atol(f.c_str() + prefix.size());
      if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        fs::remove_all(e.path(), ec);
      }
    }
  }

  static void SyncDir(const std::string& dir) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      fsync(fd);
      close(fd);
    }
  }

  Status TakeLock() {
    std::string path = dir_ + "/" + kLockFile;
    lock_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) return ErrnoStatus(errno, "opening " + path);
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return Status::IOError("store '" + dir_ + "' is being written by another process");
    }
    return Status::OK();
  }

  Status WriteManifest(const ManifestData& m) {
    std::vector<KvOp> ops;
    ops.push_back({KvOp::Kind::kPut, kManifestKey, EncodeManifest(m)});
    return kv_->Write(ops);
  }

  Status LoadManifest() {
    std::string bytes;
    Status s = kv_->Get(kManifestKey, &bytes);
    if (s.IsNotFound()) return Status::Corruption("store '" + dir_ + "' has no manifest");
    PGRAPH_RETURN_IF_ERROR(s);
    PGRAPH_ASSIGN_OR_RETURN(ManifestData m, DecodeManifest(bytes, "store '" + dir_ + "'"));
    std::lock_guard<std::mutex> lock(mu_);
    manifest_ = std::move(m);
    return Status::OK();
  }

  // Removes chunks of versions written by killed or failed writers.
  Status CollectGarbage() {
    std::vector<std::string> pending;
    PGRAPH_RETURN_IF_ERROR(kv_->ScanKeys("p", [&](std::string_view k) {
      if (k.size() == 9) pending.emplace_back(k);
    }));
    if (pending.empty()) return Status::OK();
    std::set<std::uint64_t> live;
    for (const auto& [_, c] : manifest_.columns) live.insert(c.info.version);
    std::vector<KvOp> ops;
    for (const std::string& k : pending) {
      std::uint64_t v = 0;
      for (int i = 1; i < 9; ++i) v = (v << 8) | static_cast<unsigned char>(k[i]);
      if (!live.count(v)) ops.push_back({KvOp::Kind::kDeletePrefix, ChunkPrefix(v), {}});
      ops.push_back({KvOp::Kind::kDelete, k, {}});
    }
    return kv_->Write(ops);
  }

  StoreOptions options_;
  std::string dir_, final_dir_;
  bool building_ = false, sealed_ = false, overwrite_ = false;
  int lock_fd_ = -1;
  std::unique_ptr<KvBackend> kv_;
  std::unique_ptr<ChunkCache> cache_;
  mutable std::mutex mu_;  // guards manifest_ and open_columns_
  ManifestData manifest_;
  // Readers by column version; kept for the Store's life so handed-out pointers stay valid.
  mutable std::map<std::uint64_t, std::unique_ptr<ColumnImpl>> open_columns_;
};

class UpdateImpl : public Update {
 public:
  explicit UpdateImpl(StoreImpl* store) : store_(store) {}
  ~UpdateImpl() override {
    if (published_) return;
    std::vector<KvOp> ops;
    for (auto& w : writers_) {
      if (!w->wrote_anything()) continue;
      ops.push_back({KvOp::Kind::kDeletePrefix, ChunkPrefix(w->info().version), {}});
      ops.push_back({KvOp::Kind::kDelete, PendingKey(w->info().version), {}});
    }
    // Best effort: if this fails, the next writable open removes them.
    if (!ops.empty()) store_->kv()->Write(ops).IgnoreError();
  }

  Result<ColumnWriter*> AddColumn(const ColumnSpec& spec) override {
    if (spec.name.empty()) return Status::InvalidArgument("column name is empty");
    if (spec.width == 0) return Status::InvalidArgument("column '" + spec.name + "': width 0");
    for (auto& w : writers_) {
      if (w->info().name == spec.name) {
        return Status::InvalidArgument("column '" + spec.name + "' added twice in one update");
      }
    }
    ColumnMeta meta;
    ColumnInfo& i = meta.info;
    i.name = spec.name;
    i.dtype = spec.dtype;
    i.width = spec.width;
    i.codec = spec.codec < 0 ? store_->options().codec : static_cast<Codec>(spec.codec);
    meta.zstd_level = store_->options().zstd_level;
    std::uint64_t rpc = spec.rows_per_chunk;
    if (rpc == 0) rpc = std::max<std::uint64_t>(1, (1ull << 20) / i.row_bytes());
    std::uint32_t pow2 = 1;
    while (pow2 < rpc && pow2 < (1u << 30)) pow2 <<= 1;
    i.rows_per_chunk = pow2;
    i.version = NewVersion();
    writers_.push_back(std::make_unique<ColumnWriterImpl>(store_->kv(), std::move(meta)));
    return static_cast<ColumnWriter*>(writers_.back().get());
  }

  void DropColumn(std::string_view name) override { drops_.emplace_back(name); }
  void SetMeta(std::string_view key, std::string_view value) override {
    meta_[std::string(key)] = std::string(value);
  }
  void SetCount(std::string_view key, std::uint64_t value) override {
    counts_[std::string(key)] = value;
  }

  Status Publish() override {
    if (published_) return Status::Internal("update published twice");
    for (auto& w : writers_) PGRAPH_RETURN_IF_ERROR(w->Finish());
    std::vector<KvOp> ops;
    for (auto& w : writers_) {
      if (w->wrote_anything()) ops.push_back({KvOp::Kind::kDelete, PendingKey(w->info().version), {}});
    }
    Status s = store_->PublishManifest(
        [&](ManifestData* m) {
          for (const auto& d : drops_) m->columns.erase(d);
          for (auto& w : writers_) m->columns[w->info().name] = w->meta();
          for (const auto& [k, v] : meta_) m->meta[k] = v;
          for (const auto& [k, v] : counts_) m->counts[k] = v;
        },
        std::move(ops));
    if (s.ok()) published_ = true;
    return s;
  }

 private:
  StoreImpl* store_;
  std::vector<std::unique_ptr<ColumnWriterImpl>> writers_;
  std::vector<std::string> drops_;
  std::map<std::string, std::string> meta_;
  std::map<std::string, std::uint64_t> counts_;
  bool published_ = false;
};

Result<std::unique_ptr<Update>> StoreImpl::BeginUpdate() {
  if (options_.read_only) return Status::InvalidArgument("store '" + dir_ + "' is open read-only");
  if (sealed_) return Status::Internal("update on a sealed store");
  return std::unique_ptr<Update>(std::make_unique<UpdateImpl>(this));
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Create(std::string_view dir, const StoreOptions& options,
                                             bool overwrite) {
  auto s = std::make_unique<StoreImpl>();
  PGRAPH_RETURN_IF_ERROR(s->InitCreate(dir, options, overwrite));
  return std::unique_ptr<Store>(std::move(s));
}

Result<std::unique_ptr<Store>> Store::Open(std::string_view dir, const StoreOptions& options) {
  auto s = std::make_unique<StoreImpl>();
  PGRAPH_RETURN_IF_ERROR(s->InitOpen(dir, options));
  return std::unique_ptr<Store>(std::move(s));
}

}  // namespace pgraph::storage
