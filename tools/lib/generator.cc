#include "tools/lib/generator.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <system_error>
#include <utility>

#include "tools/lib/progress.h"

namespace pgraph::tools {
namespace {

using u128 = unsigned __int128;

constexpr std::uint64_t kMaxIds = 0xFFFFFFFEull;  // NodeId is 32-bit; kInvalidNode reserved
constexpr std::uint64_t kMaxContextLimit = std::uint64_t{1} << 24;
constexpr int kMaxDim = 65536;
constexpr int kRedraws = 32;                     // per source, per draw
constexpr std::uint64_t kChunkEdges = 1 << 17;   // ~2 MB of edges.tsv per chunk
constexpr std::uint64_t kChunkFloats = 1 << 18;  // ~2.5 MB of features.tsv per chunk
constexpr std::uint64_t kCentroidTableFloats = std::uint64_t{1} << 24;

// Independent random streams; an Rng is keyed by (seed, stream, index).
enum Stream : std::uint64_t {
  kStreamContext = 0x636f6e74,
  kStreamItem = 0x6974656d,
  kStreamCentroid = 0x63656e74,
  kStreamItemPerm = 0x69706572,
  kStreamContextPerm = 0x63706572,
};

inline std::uint64_t Mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// SplitMix64 seeded from (seed, stream, index): a counter-based stream per unit of work, so
// results do not depend on which thread or chunk produces them.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream, std::uint64_t index)
      : state_(Mix64(Mix64(Mix64(seed) ^ stream) ^ index)) {}
  std::uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n >= 1 (multiply-shift; bias < n / 2^64).
  std::uint64_t Below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<u128>(Next()) * n) >> 64);
  }
  // Two independent standard normals (Box-Muller).
  void Gaussian2(double* a, double* b) {
    double u1 = 1.0 - Uniform();  // (0, 1]
    double u2 = Uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    double t = 2.0 * M_PI * u2;
    *a = r * std::cos(t);
    *b = r * std::sin(t);
  }

 private:
  std::uint64_t state_;
};

// x mod n for x < 2^64 and a fixed 1 <= n < 2^32, by Barrett reduction (no division).
class FastMod {
 public:
  explicit FastMod(std::uint64_t n) : n_(n), m_(~std::uint64_t{0} / n) {}
  std::uint64_t operator()(std::uint64_t x) const {
    auto q = static_cast<std::uint64_t>((static_cast<u128>(x) * m_) >> 64);  // q <= x / n
    std::uint64_t r = x - q * n_;
    while (r >= n_) r -= n_;  // at most twice
    return r;
  }
  // x / n, rounded down.
  std::uint64_t Div(std::uint64_t x) const {
    auto q = static_cast<std::uint64_t>((static_cast<u128>(x) * m_) >> 64);
    while (x - q * n_ >= n_) ++q;
    return q;
  }

 private:
  std::uint64_t n_, m_;
};

// A keyed bijection on [0, n): Forward(x) = (a*x + b) mod n with gcd(a, n) = 1.
// Requires: 1 <= n < 2^32, so every product fits in 64 bits.
class AffinePerm {
 public:
  AffinePerm(std::uint64_t n, std::uint64_t key) : n_(n), mod_(n) {
    PGRAPH_CHECK(n_ >= 1 && n_ < (std::uint64_t{1} << 32));
    if (n_ <= 1) return;  // a = 1, b = 0: the identity on {0}
    std::uint64_t jitter = Mix64(key) % std::max<std::uint64_t>(1, n_ / 8);
    a_ = (static_cast<std::uint64_t>(static_cast<double>(n_) * 0.6180339887498949) + jitter) % n_;
    if (a_ == 0) a_ = 1;
    while (std::gcd(a_, n_) != 1) a_ = a_ + 1 < n_ ? a_ + 1 : 1;
    b_ = Mix64(key ^ 0x5bd1e995u) % n_;
    ainv_ = ModInverse(a_, n_);
  }
  std::uint64_t Forward(std::uint64_t x) const { return mod_(a_ * x + b_); }
  std::uint64_t Inverse(std::uint64_t y) const {
    return mod_(ainv_ * (y >= b_ ? y - b_ : y + n_ - b_));
  }

 private:
  static std::uint64_t ModInverse(std::uint64_t a, std::uint64_t n) {
    __int128 t = 0, new_t = 1, r = n, new_r = a;
    while (new_r != 0) {
      __int128 q = r / new_r;
      std::tie(t, new_t) = std::make_pair(new_t, t - q * new_t);
      std::tie(r, new_r) = std::make_pair(new_r, r - q * new_r);
    }
    PGRAPH_CHECK(r == 1);
    if (t < 0) t += n;
    return static_cast<std::uint64_t>(t);
  }
  std::uint64_t n_;
  FastMod mod_;
  std::uint64_t a_ = 1, b_ = 0, ainv_ = 1;
};

// Bounded Zipf ranks in [0, size): the continuous law with density ~ x^-skew on [1, size+1),
// floored; skew 0 is uniform. The inverse CDF is tabulated at kKnots + 1 points and
// interpolated linearly (exact in the last interval, where it is steepest for skew > 1).
class RankSampler {
 public:
  static constexpr int kKnots = 4096;
  RankSampler() = default;
  RankSampler(double skew, std::uint64_t size) : size_(size) {
    one_minus_ = 1.0 - skew;
    log_span_ = std::log(static_cast<double>(size) + 1.0);
    if (std::abs(one_minus_) >= 1e-9) {
      a_ = std::expm1(one_minus_ * log_span_);
      inv_ = 1.0 / one_minus_;
    }
    if (skew != 0) {
      knots_.resize(kKnots + 1);
      for (int i = 0; i <= kKnots; ++i) knots_[i] = Exact(static_cast<double>(i) / kKnots);
    }
  }
  std::uint64_t Sample(double u) const {
    double x;
    if (knots_.empty()) {
      x = 1.0 + u * static_cast<double>(size_);
    } else {
      double t = u * kKnots;
      auto i = static_cast<int>(t);
      x = i >= kKnots - 1 ? Exact(u) : knots_[i] + (t - i) * (knots_[i + 1] - knots_[i]);
    }
    std::uint64_t r = x >= 1 ? static_cast<std::uint64_t>(x) - 1 : 0;
    return std::min(r, size_ - 1);
  }

 private:
  // The inverse CDF on [1, size + 1).
  double Exact(double u) const {
    if (std::abs(one_minus_) < 1e-9) return std::exp(u * log_span_);
    return std::exp(std::log1p(u * a_) * inv_);
  }
  std::uint64_t size_ = 1;
  double one_minus_ = 1, log_span_ = 0, a_ = 0, inv_ = 1;
  std::vector<double> knots_;  // empty for skew 0 (uniform)
};

// Context sizes. Context j sits in stratum r = perm(j) of M equal strata of the unit
// interval; its size is the Lomax quantile at u = (r + 0.5) / M, floored, plus one, capped
// at K. thresholds_[k] is the first stratum whose size is >= k + 2, so the total is exactly
// M + sum_k (M - thresholds_[k]) and can be solved for without touching every context.
class SizeTable {
 public:
  // Solves lambda so the sizes add up to `edges`, then nudges thresholds to hit it exactly.
  // Requires: 1 <= m, m <= edges <= m * k.
  void Solve(std::uint64_t m, std::uint64_t edges, std::uint64_t k, double beta) {
    m_ = m;
    beta_ = beta;
    thresholds_.assign(k - 1, 0);
    double lo = -30, hi = 40;  // log(lambda); Total(lo) == m, Total(hi) == m * k
    for (int it = 0; it < 200 && Total(lo) != edges; ++it) {
      double mid = 0.5 * (lo + hi);
      if (mid == lo || mid == hi) break;
      if (Total(mid) <= edges)
        lo = mid;
      else
        hi = mid;
    }
    lambda_ = std::exp(lo);
    std::uint64_t short_by = edges - Total(lo);  // fills thresholds_ for lo
    // Lowering threshold k by d gives d more contexts of size >= k + 2 (one edge each).
    for (std::size_t i = 0; i < thresholds_.size() && short_by > 0; ++i) {
      std::uint64_t floor = i == 0 ? 0 : thresholds_[i - 1];
      std::uint64_t d = std::min(short_by, thresholds_[i] - floor);
      thresholds_[i] -= d;
      short_by -= d;
    }
    PGRAPH_CHECK(short_by == 0);
  }
  std::uint64_t SizeOfStratum(std::uint64_t r) const {
    return 1 +
           static_cast<std::uint64_t>(std::upper_bound(thresholds_.begin(), thresholds_.end(), r) -
                                      thresholds_.begin());
  }
  std::uint64_t largest() const { return m_ == 0 ? 0 : SizeOfStratum(m_ - 1); }
  double lambda() const { return lambda_; }

 private:
  // Fills thresholds_ for lambda = exp(log_lambda) and returns the total size.
  std::uint64_t Total(double log_lambda) {
    double lambda = std::exp(log_lambda);
    double md = static_cast<double>(m_);
    std::uint64_t total = m_;
    std::uint64_t prev = 0;
    for (std::size_t i = 0; i < thresholds_.size(); ++i) {
      // size >= v  <=>  u >= 1 - (1 + (v - 1) / lambda)^-beta, with v = i + 2.
      double f = -std::expm1(-beta_ * std::log1p(static_cast<double>(i + 1) / lambda));
      double t = std::ceil(md * f - 0.5);
      std::uint64_t ti = t <= 0 ? 0 : t >= md ? m_ : static_cast<std::uint64_t>(t);
      ti = std::max(ti, prev);  // keep monotone under rounding
      thresholds_[i] = prev = ti;
      total += m_ - ti;
    }
    return total;
  }
  std::uint64_t m_ = 0;
  double beta_ = 1.5, lambda_ = 0;
  std::vector<std::uint64_t> thresholds_;
};

// Items drawn for one context, kept distinct: open addressing over a table that only grows,
// where a slot is live iff its stamp equals the current generation (no clearing).
class SeenSet {
 public:
  void Reset(std::uint64_t expected) {
    std::size_t cap =
        std::bit_ceil(static_cast<std::size_t>(std::max<std::uint64_t>(16, 2 * expected)));
    if (cap > keys_.size()) {
      keys_.assign(cap, 0);
      stamps_.assign(cap, 0);
      gen_ = 0;
    }
    mask_ = cap - 1;
    if (++gen_ == 0) {
      std::fill(stamps_.begin(), stamps_.end(), 0);
      gen_ = 1;
    }
  }
  // True if `key` was not in the set (and is now).
  bool Insert(std::uint64_t key) {
    std::size_t h = Mix64(key) & mask_;
    while (stamps_[h] == gen_) {
      if (keys_[h] == key) return false;
      h = (h + 1) & mask_;
    }
    stamps_[h] = gen_;
    keys_[h] = key;
    return true;
  }

 private:
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> stamps_;
  std::size_t mask_ = 0;
  std::uint32_t gen_ = 0;
};

// A growable byte buffer written through raw pointers.
class OutBuf {
 public:
  // Returns room for at least n bytes at the end; Commit(end) sets the new length.
  char* Reserve(std::size_t n) {
    if (len_ + n > buf_.size()) buf_.resize(std::max(2 * buf_.size(), len_ + n + 4096));
    return buf_.data() + len_;
  }
  void Commit(char* end) { len_ = static_cast<std::size_t>(end - buf_.data()); }
  void Clear() { len_ = 0; }
  const char* data() const { return buf_.data(); }
  std::size_t size() const { return len_; }

 private:
  std::vector<char> buf_;
  std::size_t len_ = 0;
};

inline char* PutU64(char* p, std::uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

// Writes v as printf("%.6g") would (at most 13 characters), with "-0" written as "0".
// Fast path for 1e-4 <= |v| < 1e6 (feature values); std::to_chars otherwise.
char* PutFloat6(char* p, float f) {
  static constexpr double kPow10[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
  static constexpr double kScale[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
  double v = f;
  if (v == 0) {
    *p++ = '0';
    return p;
  }
  double a = std::abs(v);
  if (!(a >= 1e-4 && a < 1e6))
    return std::to_chars(p, p + 16, f, std::chars_format::general, 6).ptr;
  int e = -4;  // a in [10^e, 10^(e+1))
  while (a >= kPow10[e + 5]) ++e;
  auto digits =
      static_cast<std::uint32_t>(std::nearbyint(a * kScale[5 - e]));  // ties to even, as printf
  if (digits >= 1000000) {  // rounded up to the next power of ten
    digits /= 10;
    if (++e >= 6) return std::to_chars(p, p + 16, f, std::chars_format::general, 6).ptr;
  }
  char d[6];
  for (int i = 5; i >= 0; --i) {
    d[i] = static_cast<char>('0' + digits % 10);
    digits /= 10;
  }
  int nd = 6;
  while (nd > 1 && d[nd - 1] == '0') --nd;
  if (v < 0) *p++ = '-';
  if (e >= 0) {
    for (int i = 0; i <= e; ++i) *p++ = d[i];
    if (nd > e + 1) {
      *p++ = '.';
      for (int i = e + 1; i < nd; ++i) *p++ = d[i];
    }
  } else {
    *p++ = '0';
    *p++ = '.';
    for (int i = -1; i > e; --i) *p++ = '0';
    for (int i = 0; i < nd; ++i) *p++ = d[i];
  }
  return p;
}

Status ErrnoStatus(int err, std::string_view what, const std::string& path) {
  std::string msg = fmt::format("{} {}: {}", what, path, std::generic_category().message(err));
  if (err == ENOSPC || err == EDQUOT) return Status::ResourceExhausted(msg);
  return Status::IOError(msg);
}

// One output file, written to `<path>.tmp` and renamed to `path` by Commit(). The
// destructor removes the temporary file if Commit() was not reached. Not thread-safe.
class OutputFile {
 public:
  static Result<std::unique_ptr<OutputFile>> Create(std::string path) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(errno, "cannot create", tmp);
    return std::make_unique<OutputFile>(std::move(path), std::move(tmp), fd);
  }
  // Takes ownership of `fd`, open for writing on `tmp`. Use Create().
  OutputFile(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  Status Write(const char* data, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "cannot write", tmp_);
      }
      data += w;
      n -= static_cast<std::size_t>(w);
      bytes_ += static_cast<std::uint64_t>(w);
    }
    return Status::OK();
  }
  Status Write(const OutBuf& b) { return Write(b.data(), b.size()); }
  Status Close() {
    int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0) return ErrnoStatus(errno, "cannot close", tmp_);
    return Status::OK();
  }
  Status Commit() {
    PGRAPH_RETURN_IF_ERROR(Close());
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return ErrnoStatus(errno, "cannot rename to", path_);
    }
    committed_ = true;
    return Status::OK();
  }

 private:
  std::string path_, tmp_;
  int fd_;
  bool committed_ = false;
  std::uint64_t bytes_ = 0;
};

struct EdgeChunk {
  std::uint64_t begin = 0, end = 0;  // contexts
  OutBuf edges, truth;
  std::uint64_t edges_written = 0, truth_pairs = 0;
  SeenSet seen;
  std::vector<std::uint64_t> drawn;
};

struct ItemChunk {
  std::uint64_t begin = 0, end = 0;  // items
  OutBuf features, communities, ids;
  std::vector<float> centroid;  // scratch when centroids are not tabled
};

// Everything derived from the options; immutable once built, shared by all workers.
class Model {
 public:
  explicit Model(const GenerateOptions& o, std::uint64_t communities)
      : o_(o),
        n_(o.items),
        m_(o.contexts),
        c_(communities),
        k_(std::min(o.max_context, o.items)),
        item_perm_(n_, Mix64(o.seed ^ kStreamItemPerm)),
        context_perm_(m_, Mix64(o.seed ^ kStreamContextPerm)),
        small_size_(n_ / c_),
        num_large_(n_ % c_),
        small_(o.item_skew, small_size_),
        large_(o.item_skew, small_size_ + 1) {
    sizes_.Solve(m_, o.edges, k_, o.context_skew);
    noise_scale_ = o.feature_noise / std::sqrt(static_cast<double>(o.dim));
    if (c_ * static_cast<std::uint64_t>(o.dim) <= kCentroidTableFloats) {
      centroids_.resize(c_ * static_cast<std::size_t>(o.dim));
      for (std::uint64_t c = 0; c < c_; ++c) ComputeCentroid(c, &centroids_[c * o.dim]);
    }
  }

  const SizeTable& sizes() const { return sizes_; }

  // Communities 0..num_large_-1 hold small_size_ + 1 positions each, the rest small_size_.
  std::uint64_t CommunityOf(std::uint64_t item) const {
    std::uint64_t pos = item_perm_.Forward(item);
    std::uint64_t large_span = num_large_ * (small_size_ + 1);
    if (pos < large_span) return pos / (small_size_ + 1);
    return num_large_ + (pos - large_span) / small_size_;
  }

  // Generates context j into the chunk.
  void FillContext(std::uint64_t j, EdgeChunk* ch) const {
    Rng rng(o_.seed, kStreamContext, j);
    std::uint64_t home = rng.Below(c_);
    std::uint64_t size = sizes_.SizeOfStratum(context_perm_.Forward(j));
    // A held-out context draws one extra item, so it needs one item to spare.
    bool hold = o_.holdout > 0 && rng.Uniform() < o_.holdout && size < n_;
    std::uint64_t draws = size + (hold ? 1 : 0);
    // Drawn only when asked for, so secondary = 0 leaves the stream (and output) unchanged.
    std::uint64_t second = o_.secondary > 0 ? SecondaryOf(home, &rng) : home;
    ch->seen.Reset(draws);
    ch->drawn.clear();
    for (std::uint64_t d = 0; d < draws; ++d) {
      std::uint64_t comm = home;
      if (o_.mixing > 0 || o_.secondary > 0) {
        double u = rng.Uniform();
        if (u < o_.mixing)
          comm = rng.Below(c_);
        else if (u < o_.mixing + o_.secondary)
          comm = second;
      }
      bool found = false;
      std::uint64_t item = 0;
      for (int t = 0; t < kRedraws && !found; ++t) {
        item = SampleFrom(comm, &rng, /*uniform=*/false);
        found = ch->seen.Insert(item);
      }
      for (int t = 0; t < kRedraws && !found; ++t) {
        item = SampleFrom(comm, &rng, /*uniform=*/true);
        found = ch->seen.Insert(item);
      }
      for (int t = 0; t < kRedraws && !found; ++t) {
        item = rng.Below(n_);
        found = ch->seen.Insert(item);
      }
      // The context holds nearly every item: take the next free id. draws <= n_, so one is free.
      while (!found) {
        item = item + 1 == n_ ? 0 : item + 1;
        found = ch->seen.Insert(item);
      }
      ch->drawn.push_back(item);
    }
    if (hold) {
      std::swap(ch->drawn[rng.Below(ch->drawn.size())], ch->drawn.back());
      std::uint64_t held = ch->drawn.back();
      ch->drawn.pop_back();
      std::uint64_t q = ch->drawn[rng.Below(ch->drawn.size())];
      char* p = ch->truth.Reserve(48);
      p = PutU64(p, q);
      *p++ = '\t';
      p = PutU64(p, held);
      *p++ = '\n';
      ch->truth.Commit(p);
      ++ch->truth_pairs;
    }
    char ctx[24];
    ctx[0] = '\t';
    char* ctx_end = PutU64(ctx + 1, j);
    *ctx_end++ = '\n';
    std::size_t ctx_len = static_cast<std::size_t>(ctx_end - ctx);
    char* p = ch->edges.Reserve(ch->drawn.size() * (20 + ctx_len));
    for (std::uint64_t item : ch->drawn) {
      p = PutU64(p, item);
      std::memcpy(p, ctx, ctx_len);
      p += ctx_len;
    }
    ch->edges.Commit(p);
    ch->edges_written += ch->drawn.size();
  }

  // Generates the feature rows and community lines of items [ch->begin, ch->end).
  void FillItems(ItemChunk* ch) const {
    const int dim = o_.dim;
    ch->centroid.resize(static_cast<std::size_t>(dim));
    for (std::uint64_t i = ch->begin; i < ch->end; ++i) {
      std::uint64_t comm = CommunityOf(i);
      const float* mu;
      if (!centroids_.empty()) {
        mu = &centroids_[comm * dim];
      } else {
        ComputeCentroid(comm, ch->centroid.data());
        mu = ch->centroid.data();
      }
      Rng rng(o_.seed, kStreamItem, i);
      if (o_.npy) {
        char* p = ch->features.Reserve(sizeof(float) * dim);
        for (int d = 0; d < dim; d += 2) {
          double z0, z1;
          rng.Gaussian2(&z0, &z1);
          float f0 = static_cast<float>(mu[d] + noise_scale_ * z0);
          std::memcpy(p, &f0, sizeof f0);
          p += sizeof f0;
          if (d + 1 < dim) {
            float f1 = static_cast<float>(mu[d + 1] + noise_scale_ * z1);
            std::memcpy(p, &f1, sizeof f1);
            p += sizeof f1;
          }
        }
        ch->features.Commit(p);
        p = ch->ids.Reserve(24);
        p = PutU64(p, i);
        *p++ = '\n';
        ch->ids.Commit(p);
      } else {
        // A float with 6 significant digits in general format takes at most 13 characters.
        char* p = ch->features.Reserve(24 + 16 * static_cast<std::size_t>(dim));
        p = PutU64(p, i);
        *p++ = '\t';
        for (int d = 0; d < dim; d += 2) {
          double z0, z1;
          rng.Gaussian2(&z0, &z1);
          p = PutFloat6(p, static_cast<float>(mu[d] + noise_scale_ * z0));
          *p++ = ' ';
          if (d + 1 < dim) {
            p = PutFloat6(p, static_cast<float>(mu[d + 1] + noise_scale_ * z1));
            *p++ = ' ';
          }
        }
        p[-1] = '\n';
        ch->features.Commit(p);
      }
      char* p = ch->communities.Reserve(48);
      p = PutU64(p, i);
      *p++ = '\t';
      p = PutU64(p, comm);
      *p++ = '\n';
      ch->communities.Commit(p);
    }
  }

 private:
  // An item of community `comm`: Zipf over its ranks, or uniform over them.
  // A secondary community for a context at home `home`: one of the `related` nearest on
  // each side of the ring, or any other community when that covers the ring (or related is
  // 0); home itself when there is a single community.
  std::uint64_t SecondaryOf(std::uint64_t home, Rng* rng) const {
    if (c_ <= 1) return home;
    if (o_.related == 0 || 2 * o_.related >= c_ - 1) return (home + 1 + rng->Below(c_ - 1)) % c_;
    std::uint64_t d = 1 + rng->Below(o_.related);
    return rng->Below(2) == 0 ? (home + d) % c_ : (home + c_ - d) % c_;
  }

  std::uint64_t SampleFrom(std::uint64_t comm, Rng* rng, bool uniform) const {
    bool large = comm < num_large_;
    std::uint64_t start = comm * small_size_ + (large ? comm : num_large_);
    if (uniform) return item_perm_.Inverse(start + rng->Below(small_size_ + (large ? 1 : 0)));
    const RankSampler& s = large ? large_ : small_;
    return item_perm_.Inverse(start + s.Sample(rng->Uniform()));
  }

  void ComputeCentroid(std::uint64_t comm, float* out) const {
    Rng rng(o_.seed, kStreamCentroid, comm);
    const int dim = o_.dim;
    double norm2 = 0;
    for (int d = 0; d < dim; d += 2) {
      double z0, z1;
      rng.Gaussian2(&z0, &z1);
      out[d] = static_cast<float>(z0);
      norm2 += z0 * z0;
      if (d + 1 < dim) {
        out[d + 1] = static_cast<float>(z1);
        norm2 += z1 * z1;
      }
    }
    if (norm2 == 0) {
      out[0] = 1;
      return;
    }
    float inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (int d = 0; d < dim; ++d) out[d] *= inv;
  }

  const GenerateOptions& o_;
  std::uint64_t n_, m_, c_, k_;
  AffinePerm item_perm_, context_perm_;
  std::uint64_t small_size_, num_large_;
  RankSampler small_, large_;
  SizeTable sizes_;
  double noise_scale_ = 0;
  std::vector<float> centroids_;  // c_ x dim, empty when computed on the fly
};

// Runs fill (parallel) and emit (serial, in order) over chunks of [0, total) with a bounded
// pool of chunks. Stops at the first error from emit and returns it.
template <typename Chunk, typename Fill, typename Emit>
Status RunChunks(std::uint64_t total, std::uint64_t per_chunk, Fill fill, Emit emit) {
  const std::size_t tokens = static_cast<std::size_t>(tbb::this_task_arena::max_concurrency()) + 2;
  std::vector<std::unique_ptr<Chunk>> pool;
  for (std::size_t i = 0; i < tokens; ++i) pool.push_back(std::make_unique<Chunk>());
  std::uint64_t next = 0, index = 0;
  std::atomic<bool> failed{false};
  Status status;
  tbb::parallel_pipeline(
      tokens, tbb::make_filter<void, Chunk*>(tbb::filter_mode::serial_in_order,
                                             [&](tbb::flow_control& fc) -> Chunk* {
                                               if (next >= total || failed.load()) {
                                                 fc.stop();
                                                 return nullptr;
                                               }
                                               // Tokens leave the last (in-order) stage in order,
                                               // so the chunk used `tokens` items ago is done when
                                               // a new token is admitted.
                                               Chunk* ch = pool[index++ % tokens].get();
                                               ch->begin = next;
                                               ch->end = next + std::min(per_chunk, total - next);
                                               next = ch->end;
                                               return ch;
                                             }) &
                  tbb::make_filter<Chunk*, Chunk*>(tbb::filter_mode::parallel,
                                                   [&](Chunk* ch) {
                                                     fill(ch);
                                                     return ch;
                                                   }) &
                  tbb::make_filter<Chunk*, void>(tbb::filter_mode::serial_in_order, [&](Chunk* ch) {
                    if (failed.load()) return;
                    Status s = emit(ch);
                    if (!s.ok()) {
                      status = std::move(s);
                      failed.store(true);
                    }
                  }));
  return status;
}

std::string NpyHeader(std::uint64_t rows, int dim) {
  std::string dict =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, dim);
  std::size_t total = 10 + dict.size() + 1;
  std::size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string h = "\x93NUMPY";
  h.push_back('\x01');
  h.push_back('\x00');
  auto len = static_cast<std::uint16_t>(dict.size());
  h.push_back(static_cast<char>(len & 0xff));
  h.push_back(static_cast<char>(len >> 8));
  return h + dict;
}

Status Validate(const GenerateOptions& o, std::uint64_t communities) {
  auto bad = [](std::string m) { return Status::InvalidArgument(m); };
  if (o.out_dir.empty()) return bad("--out is required");
  if (o.items == 0) return bad("--items must be at least 1");
  if (o.contexts == 0) return bad("--contexts must be at least 1");
  if (o.items > kMaxIds)
    return bad(fmt::format("--items {} exceeds {} (32-bit ids)", o.items, kMaxIds));
  if (o.contexts > kMaxIds) {
    return bad(fmt::format("--contexts {} exceeds {} (32-bit ids)", o.contexts, kMaxIds));
  }
  if (o.edges < o.contexts) {
    return bad(
        fmt::format("--edges {} is less than --contexts {}: every context has at least "
                    "one edge",
                    o.edges, o.contexts));
  }
  if (o.max_context == 0 || o.max_context > kMaxContextLimit) {
    return bad(fmt::format("--max-context must be in [1, {}]", kMaxContextLimit));
  }
  std::uint64_t k = std::min(o.max_context, o.items);
  if (static_cast<u128>(o.edges) > static_cast<u128>(o.contexts) * k) {
    return bad(
        fmt::format("--edges {} exceeds contexts x largest context = {} x {}: a context "
                    "holds at most min(--max-context, --items) distinct items",
                    o.edges, o.contexts, k));
  }
  if (communities == 0 || communities > o.items) {
    return bad(fmt::format("--communities {} must be in [1, --items {}]", communities, o.items));
  }
  if (o.dim < 1 || o.dim > kMaxDim) return bad(fmt::format("--dim must be in [1, {}]", kMaxDim));
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!in(o.mixing, 0, 1)) return bad("--mixing must be in [0, 1]");
  if (!in(o.secondary, 0, 1)) return bad("--secondary must be in [0, 1]");
  if (o.mixing + o.secondary > 1 + 1e-12) return bad("--mixing + --secondary must be <= 1");
  if (o.related > kMaxIds) return bad(fmt::format("--related must be at most {}", kMaxIds));
  if (!in(o.holdout, 0, 1)) return bad("--holdout must be in [0, 1]");
  if (!in(o.feature_noise, 0, 1e6)) return bad("--feature-noise must be finite and >= 0");
  if (!in(o.item_skew, 0, 10)) return bad("--item-skew must be in [0, 10]");
  if (!in(o.context_skew, 0, 10) || o.context_skew == 0) {
    return bad("--context-skew must be in (0, 10]");
  }
  return Status::OK();
}

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::uint64_t DefaultCommunities(std::uint64_t items) {
  if (items <= 1) return 1;
  auto c = static_cast<std::uint64_t>(std::llround(std::sqrt(static_cast<double>(items))));
  return std::clamp<std::uint64_t>(c, 2, items);
}

Result<GenerateReport> Generate(const GenerateOptions& opts) {
  auto start = std::chrono::steady_clock::now();
  std::uint64_t communities = opts.communities ? opts.communities : DefaultCommunities(opts.items);
  PGRAPH_RETURN_IF_ERROR(Validate(opts, communities));

  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) {
    return Status::IOError(fmt::format("cannot create --out {}: {}", opts.out_dir, ec.message()));
  }
  if (!fs::is_directory(opts.out_dir, ec)) {
    return Status::IOError(fmt::format("--out {} is not a directory", opts.out_dir));
  }
  auto path = [&](const char* name) { return (fs::path(opts.out_dir) / name).string(); };

  Model model(opts, communities);
  GenerateReport report;
  report.out_dir = opts.out_dir;
  report.items = opts.items;
  report.contexts = opts.contexts;
  report.communities = communities;
  report.dim = opts.dim;
  report.seed = opts.seed;
  report.edges_requested = opts.edges;
  report.largest_context = model.sizes().largest();
  report.size_scale = model.sizes().lambda();

  // Pass 1: edges.tsv and truth.tsv, contexts in order.
  PGRAPH_ASSIGN_OR_RETURN(auto edges_file, OutputFile::Create(path("edges.tsv")));
  PGRAPH_ASSIGN_OR_RETURN(auto truth_file, OutputFile::Create(path("truth.tsv")));
  auto edge_start = std::chrono::steady_clock::now();
  {
    std::optional<Progress> progress;
    if (opts.progress) progress.emplace("generate", opts.edges, "edges");
    std::uint64_t mean = std::max<std::uint64_t>(1, opts.edges / opts.contexts);
    std::uint64_t per_chunk = std::max<std::uint64_t>(1, kChunkEdges / mean);
    PGRAPH_RETURN_IF_ERROR(RunChunks<EdgeChunk>(
        opts.contexts, per_chunk,
        [&](EdgeChunk* ch) {
          ch->edges.Clear();
          ch->truth.Clear();
          ch->edges_written = ch->truth_pairs = 0;
          for (std::uint64_t j = ch->begin; j < ch->end; ++j) model.FillContext(j, ch);
        },
        [&](EdgeChunk* ch) -> Status {
          PGRAPH_RETURN_IF_ERROR(edges_file->Write(ch->edges));
          PGRAPH_RETURN_IF_ERROR(truth_file->Write(ch->truth));
          report.edges_written += ch->edges_written;
          report.truth_pairs += ch->truth_pairs;
          if (progress) progress->Add(ch->edges_written);
          return Status::OK();
        }));
    if (progress) progress->Finish();
  }
  PGRAPH_RETURN_IF_ERROR(edges_file->Close());
  PGRAPH_RETURN_IF_ERROR(truth_file->Close());
  report.edge_seconds = Since(edge_start);

  // Pass 2: features and communities, items in order.
  auto item_start = std::chrono::steady_clock::now();
  PGRAPH_ASSIGN_OR_RETURN(auto features_file,
                          OutputFile::Create(path(opts.npy ? "features.npy" : "features.tsv")));
  PGRAPH_ASSIGN_OR_RETURN(auto communities_file, OutputFile::Create(path("communities.tsv")));
  std::unique_ptr<OutputFile> ids_file;
  if (opts.npy) {
    PGRAPH_ASSIGN_OR_RETURN(ids_file, OutputFile::Create(path("feature_ids.txt")));
    std::string header = NpyHeader(opts.items, opts.dim);
    PGRAPH_RETURN_IF_ERROR(features_file->Write(header.data(), header.size()));
  }
  {
    std::optional<Progress> progress;
    if (opts.progress) progress.emplace("generate", opts.items, "items");
    std::uint64_t per_chunk = std::max<std::uint64_t>(1, kChunkFloats / opts.dim);
    PGRAPH_RETURN_IF_ERROR(RunChunks<ItemChunk>(
        opts.items, per_chunk,
        [&](ItemChunk* ch) {
          ch->features.Clear();
          ch->communities.Clear();
          ch->ids.Clear();
          model.FillItems(ch);
        },
        [&](ItemChunk* ch) -> Status {
          PGRAPH_RETURN_IF_ERROR(features_file->Write(ch->features));
          PGRAPH_RETURN_IF_ERROR(communities_file->Write(ch->communities));
          if (ids_file) PGRAPH_RETURN_IF_ERROR(ids_file->Write(ch->ids));
          if (progress) progress->Add(ch->end - ch->begin);
          return Status::OK();
        }));
    if (progress) progress->Finish();
  }
  PGRAPH_RETURN_IF_ERROR(features_file->Close());
  PGRAPH_RETURN_IF_ERROR(communities_file->Close());
  if (ids_file) PGRAPH_RETURN_IF_ERROR(ids_file->Close());
  report.item_seconds = Since(item_start);

  // Publish: rename every file into place, then drop the other feature format's leftovers.
  PGRAPH_RETURN_IF_ERROR(edges_file->Commit());
  PGRAPH_RETURN_IF_ERROR(truth_file->Commit());
  PGRAPH_RETURN_IF_ERROR(features_file->Commit());
  PGRAPH_RETURN_IF_ERROR(communities_file->Commit());
  if (ids_file) PGRAPH_RETURN_IF_ERROR(ids_file->Commit());
  report.files = {"edges.tsv", "truth.tsv", opts.npy ? "features.npy" : "features.tsv",
                  "communities.tsv"};
  if (opts.npy) report.files.push_back("feature_ids.txt");
  const char* stale[] = {"features.tsv"};
  const char* stale_npy[] = {"features.npy", "feature_ids.txt"};
  auto remove = [&](const char* name) -> Status {
    std::error_code rec;
    fs::remove(path(name), rec);
    if (rec)
      return Status::IOError(fmt::format("cannot remove stale {}: {}", path(name), rec.message()));
    return Status::OK();
  };
  if (opts.npy) {
    for (const char* s : stale) PGRAPH_RETURN_IF_ERROR(remove(s));
  } else {
    for (const char* s : stale_npy) PGRAPH_RETURN_IF_ERROR(remove(s));
  }
  report.seconds = Since(start);
  return report;
}

std::string ReportToJson(const GenerateReport& r) {
  std::string files;
  for (const auto& f : r.files) {
    if (!files.empty()) files += ", ";
    files += fmt::format("\"{}\"", f);
  }
  std::string dir;
  for (char ch : r.out_dir) {
    if (ch == '"' || ch == '\\') dir.push_back('\\');
    if (static_cast<unsigned char>(ch) < 0x20) {
      dir += fmt::format("\\u{:04x}", static_cast<int>(ch));
      continue;
    }
    dir.push_back(ch);
  }
  return fmt::format(
      "{{\"out\": \"{}\", \"files\": [{}], \"items\": {}, \"contexts\": {}, \"communities\": {}, "
      "\"dim\": {}, \"seed\": {}, \"edges_requested\": {}, \"edges_written\": {}, "
      "\"truth_pairs\": {}, \"largest_context\": {}, \"size_scale\": {:.6g}, "
      "\"edge_seconds\": {:.3f}, \"item_seconds\": {:.3f}, \"seconds\": {:.3f}}}",
      dir, files, r.items, r.contexts, r.communities, r.dim, r.seed, r.edges_requested,
      r.edges_written, r.truth_pairs, r.largest_context, r.size_scale, r.edge_seconds,
      r.item_seconds, r.seconds);
}

}  // namespace pgraph::tools
