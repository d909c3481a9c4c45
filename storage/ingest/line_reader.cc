#include "storage/ingest/line_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "storage/kv_backend.h"

namespace pgraph::storage {
namespace {

constexpr std::size_t kBlock = 64 << 20;

// Block size: 64 MiB, or PGRAPH_TEST_BLOCK_BYTES (tests use tiny blocks to cross block
// boundaries with small inputs).
std::size_t BlockBytes() {
  if (const char* e = std::getenv("PGRAPH_TEST_BLOCK_BYTES")) {
    std::size_t n = std::strtoull(e, nullptr, 10);
    if (n > 0) return n;
  }
  return kBlock;
}

bool EndsWith(const std::string& s, const char* suffix) {
  std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

class MappedReader : public LineReader {
 public:
  ~MappedReader() override {
    if (data_ && size_) munmap(const_cast<char*>(data_), size_);
  }
  Status Init(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "cannot open '" + path + "'");
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return ErrnoStatus(errno, "cannot stat '" + path + "'");
    }
    if (S_ISDIR(st.st_mode)) {
      close(fd);
      return Status::InvalidArgument("'" + path + "' is a directory, not a file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        close(fd);
        return ErrnoStatus(errno, "cannot map '" + path + "'");
      }
      madvise(p, size_, MADV_SEQUENTIAL);
      data_ = static_cast<const char*>(p);
    }
    close(fd);
    return Status::OK();
  }
  Result<std::string_view> Next() override {
    if (pos_ >= size_) return std::string_view();
    std::size_t end = std::min(size_, pos_ + block_);
    if (end < size_) {
      const void* nl = memchr(data_ + end, '\n', size_ - end);
      end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - data_) + 1 : size_;
    }
    // The block before the previous one is done with: drop its pages from our resident
    // set (they stay in the page cache) so a huge input does not count against the memory
    // budget. The previous block stays resident: it may still be in use.
    std::size_t drop_end = prev_ & ~std::size_t{4095};
    if (drop_end > dropped_) {
      madvise(const_cast<char*>(data_) + dropped_, drop_end - dropped_, MADV_DONTNEED);
      dropped_ = drop_end;
    }
    std::string_view block(data_ + pos_, end - pos_);
    prev_ = pos_;
    pos_ = end;
    return block;
  }
  bool blocks_stay_valid() const override { return true; }
  std::uint64_t size_hint() const override { return size_; }
  std::uint64_t consumed() const override { return pos_; }

 private:
  const char* data_ = nullptr;
  std::size_t block_ = BlockBytes();
  std::size_t size_ = 0, pos_ = 0, prev_ = 0, dropped_ = 0;
};

// Reads raw bytes from a source and hands out whole-line blocks.
class StreamReader : public LineReader {
 public:
  virtual std::size_t Read(char* dst, std::size_t n, Status* error) = 0;
  Result<std::string_view> Next() override {
    // Move the incomplete last line of the previous block to the front.
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(handed_));
    handed_ = 0;
    while (!eof_) {
      std::size_t old = buf_.size();
      buf_.resize(old + block_);
      Status err;
      std::size_t n = Read(buf_.data() + old, block_, &err);
      buf_.resize(old + n);
      if (!err.ok()) return err;
      consumed_ += n;
      if (n == 0) eof_ = true;
      const void* nl = buf_.size() > old ? memrchr(buf_.data() + old, '\n', buf_.size() - old) : nullptr;
      if (nl) {
        handed_ = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data()) + 1;
        return std::string_view(buf_.data(), handed_);
      }
    }
    handed_ = buf_.size();
    return std::string_view(buf_.data(), buf_.size());
  }
  bool blocks_stay_valid() const override { return false; }
  std::uint64_t size_hint() const override { return 0; }
  std::uint64_t consumed() const override { return consumed_; }

 protected:
  std::string path_;

 private:
  std::vector<char> buf_;
  std::size_t block_ = BlockBytes();
  std::size_t handed_ = 0;
  std::uint64_t consumed_ = 0;
  bool eof_ = false;
};

class FdReader : public StreamReader {
 public:
  explicit FdReader(int fd, std::string path) : fd_(fd) { path_ = std::move(path); }
  std::size_t Read(char* dst, std::size_t n, Status* error) override {
    std::size_t total = 0;
    while (total < n) {
      ssize_t r = read(fd_, dst + total, n - total);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        *error = ErrnoStatus(errno, "reading " + path_);
        return total;
      }
      if (r == 0) break;
      total += static_cast<std::size_t>(r);
    }
    return total;
  }

 private:
  int fd_;
};

class GzReader : public StreamReader {
 public:
  ~GzReader() override {
    if (gz_) gzclose(gz_);
  }
  Status Init(const std::string& path) {
    path_ = path;
    if (access(path.c_str(), R_OK) != 0) return ErrnoStatus(errno, "cannot open '" + path + "'");
    gz_ = gzopen(path.c_str(), "rb");
    if (!gz_) return ErrnoStatus(errno, "cannot open '" + path + "'");
    gzbuffer(gz_, 1 << 20);
    return Status::OK();
  }
  std::size_t Read(char* dst, std::size_t n, Status* error) override {
    int r = gzread(gz_, dst, static_cast<unsigned>(n));
    if (r < 0) {
      int errnum = 0;
      *error = Status::InvalidArgument("'" + path_ + "': gzip error: " + gzerror(gz_, &errnum));
      return 0;
    }
    return static_cast<std::size_t>(r);
  }

 private:
  gzFile gz_ = nullptr;
};

class ZstdReader : public StreamReader {
 public:
  ~ZstdReader() override {
    if (f_) fclose(f_);
    ZSTD_freeDStream(ds_);
  }
  Status Init(const std::string& path) {
    path_ = path;
    f_ = fopen(path.c_str(), "rb");
    if (!f_) return ErrnoStatus(errno, "cannot open '" + path + "'");
    ds_ = ZSTD_createDStream();
    ZSTD_initDStream(ds_);
    in_buf_.resize(ZSTD_DStreamInSize());
    return Status::OK();
  }
  std::size_t Read(char* dst, std::size_t n, Status* error) override {
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos < out.size) {
      if (in_.pos == in_.size) {
        std::size_t r = fread(in_buf_.data(), 1, in_buf_.size(), f_);
        if (r == 0) {
          if (ferror(f_)) *error = ErrnoStatus(errno, "reading " + path_);
          else if (last_ret_ != 0) *error = Status::InvalidArgument("'" + path_ + "': truncated zstd stream");
          break;
        }
        in_ = ZSTD_inBuffer{in_buf_.data(), r, 0};
      }
      std::size_t ret = ZSTD_decompressStream(ds_, &out, &in_);
      if (ZSTD_isError(ret)) {
        *error = Status::InvalidArgument("'" + path_ + "': zstd error: " + ZSTD_getErrorName(ret));
        break;
      }
      last_ret_ = ret;
    }
    return out.pos;
  }

 private:
  FILE* f_ = nullptr;
  ZSTD_DStream* ds_ = nullptr;
  std::vector<char> in_buf_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  std::size_t last_ret_ = 0;
};

}  // namespace

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<LineReader>(std::make_unique<FdReader>(0, "<stdin>"));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound("file not found: '" + path + "'");
    return ErrnoStatus(errno, "cannot open '" + path + "'");
  }
  if (EndsWith(path, ".gz")) {
    auto r = std::make_unique<GzReader>();
    PGRAPH_RETURN_IF_ERROR(r->Init(path));
    return std::unique_ptr<LineReader>(std::move(r));
  }
  if (EndsWith(path, ".zst")) {
    auto r = std::make_unique<ZstdReader>();
    PGRAPH_RETURN_IF_ERROR(r->Init(path));
    return std::unique_ptr<LineReader>(std::move(r));
  }
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "cannot open '" + path + "'");
    return std::unique_ptr<LineReader>(std::make_unique<FdReader>(fd, path));
  }
  auto r = std::make_unique<MappedReader>();
  PGRAPH_RETURN_IF_ERROR(r->Init(path));
  return std::unique_ptr<LineReader>(std::move(r));
}

}  // namespace pgraph::storage
