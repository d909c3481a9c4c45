// LshIndex: hyperplanes, hashing and the table build.
#include <tbb/blocked_range.h>
#include <tbb/combinable.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>

#include "ann/kernels.h"
#include "ann/lsh_impl.h"

namespace pgraph::ann {
namespace {

std::uint64_t SplitMix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256**: fixed, platform-independent, so a seed names the same hyperplanes
// everywhere (std::normal_distribution is implementation-defined).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& w : s_) w = SplitMix64(seed);
  }
  std::uint64_t Next() {
    const std::uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1p-53; }  // [0, 1)
  // Box-Muller, one value per call (the second is dropped: simplicity over speed).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// Rows per block when hashing: the projections (planes x rows floats) stay near 1 MiB, in
// L2 between the product and the bit packing, with enough rows for the product to run at
// the BLAS's full rate.
std::uint64_t HashBlockRows(std::uint32_t planes) {
  return std::clamp<std::uint64_t>((1u << 20) / (4ull * planes), 16, 2048);
}

// Stable LSD radix sort of (key, id) pairs by key, 16 bits per pass; ids enter ascending,
// so they stay ascending within a key.
void SortByKey(std::vector<std::uint32_t>& keys, std::vector<std::uint32_t>& ids,
               std::uint32_t bits) {
  const std::size_t n = keys.size();
  std::vector<std::uint32_t> k2(n), i2(n);
  std::vector<std::uint64_t> count(1 << 16);
  for (std::uint32_t shift = 0; shift < bits; shift += 16) {
    std::fill(count.begin(), count.end(), 0);
    for (std::uint32_t k : keys) ++count[(k >> shift) & 0xffff];
    std::uint64_t sum = 0;
    for (auto& c : count) {
      const std::uint64_t t = c;
      c = sum;
      sum += t;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t pos = count[(keys[i] >> shift) & 0xffff]++;
      k2[pos] = keys[i];
      i2[pos] = ids[i];
    }
    keys.swap(k2);
    ids.swap(i2);
  }
}

std::atomic<bool> hash_with_blas{true};

}  // namespace

namespace internal {
void SetHashWithBlas(bool on) { hash_with_blas = on; }
bool HashWithBlas() { return hash_with_blas.load(); }
}  // namespace internal

std::uint32_t AutoBits(std::uint64_t items) {
  const double l = std::round(std::log2(static_cast<double>(std::max<std::uint64_t>(items, 1))));
  return static_cast<std::uint32_t>(std::clamp(l - 4.0, 1.0, 32.0));
}

Status CheckParams(const LshParams& p) {
  if (p.tables < 1 || p.tables > 255) {
    return Status::InvalidArgument("lsh: tables must be in 1..255, got " +
                                   std::to_string(p.tables));
  }
  if (p.bits > 32) {
    return Status::InvalidArgument("lsh: bits must be in 1..32 (0: auto), got " +
                                   std::to_string(p.bits));
  }
  return Status::OK();
}

void LshIndex::Impl::MakePlanes(std::uint64_t seed) {
  planes.resize(std::size_t{tables} * bits * dim);
  for (std::uint32_t t = 0; t < tables; ++t) {
    std::uint64_t s = seed;
    const std::uint64_t a = SplitMix64(s);
    Rng rng(a ^ (0x632be59bd9b4e019ull * (t + 1)));
    float* p = planes.data() + std::size_t{t} * bits * dim;
    for (std::size_t i = 0; i < std::size_t{bits} * dim; ++i) {
      p[i] = static_cast<float>(rng.Normal());
    }
  }
  plane_norms.resize(std::size_t{tables} * bits);
  for (std::size_t p = 0; p < plane_norms.size(); ++p) {
    const float* row = planes.data() + p * dim;
    plane_norms[p] = std::sqrt(internal::Dot(row, row, dim));
  }
}

void LshIndex::Impl::SetCenter(std::vector<float> c) {
  center = std::move(c);
  offsets.resize(std::size_t{tables} * bits);
  internal::DotBlock(planes.data(), offsets.size(), center.data(), 1, dim, offsets.data());
}

void LshIndex::Impl::BuildDirectory() {
  dense.clear();
  if (bits > kDenseBits) return;
  const std::size_t width = (std::size_t{1} << bits) + 1;
  dense.assign(width * tables, 0);
  for (std::uint32_t t = 0; t < tables; ++t) {
    std::uint32_t* d = dense.data() + t * width;
    const std::uint64_t base = std::uint64_t{t} * items;
    std::uint64_t b = table_starts[t];
    const std::uint64_t end = table_starts[t + 1];
    for (std::size_t key = 0; key < width; ++key) {
      while (b < end && bucket_keys[b] < key) ++b;
      d[key] = static_cast<std::uint32_t>((b < end ? bucket_starts[b] : bucket_starts[end]) - base);
    }
  }
}

void LshIndex::Impl::Hash(const float* v, float* proj, std::uint32_t* sigs) const {
  const std::size_t np = std::size_t{tables} * bits;
  internal::DotBlock(planes.data(), np, v, 1, dim, proj);
  for (std::uint32_t t = 0; t < tables; ++t) {
    std::uint32_t s = 0;
    for (std::uint32_t j = 0; j < bits; ++j) {
      float& x = proj[t * bits + j];
      x -= offsets[t * bits + j];
      s |= static_cast<std::uint32_t>(x > 0) << j;
    }
    sigs[t] = s;
  }
}

void LshIndex::Impl::Signatures(const float* rows, std::size_t count, storage::SgemmFn sgemm,
                                std::vector<float>& scratch, std::uint32_t* sigs,
                                std::size_t stride) const {
  const std::size_t np = std::size_t{tables} * bits;
  scratch.resize(np * count);
  float* proj = scratch.data();
  if (sgemm == nullptr) {  // proj[p * count + i]
    internal::DotBlock(planes.data(), np, rows, count, dim, proj);
    for (std::size_t i = 0; i < count; ++i) {
      for (std::uint32_t t = 0; t < tables; ++t) {
        std::uint32_t s = 0;
        for (std::uint32_t j = 0; j < bits; ++j) {
          const std::size_t p = std::size_t{t} * bits + j;
          s |= static_cast<std::uint32_t>(proj[p * count + i] - offsets[p] > 0) << j;
        }
        sigs[t * stride + i] = s;
      }
    }
    return;
  }
  // proj[i * np + p] = <row i, plane p>.
  sgemm(storage::kCblasRowMajor, storage::kCblasNoTrans, storage::kCblasTrans,
        static_cast<int>(count), static_cast<int>(np), static_cast<int>(dim), 1.0f, rows,
        static_cast<int>(dim), planes.data(), static_cast<int>(dim), 0.0f, proj,
        static_cast<int>(np));
  // Both products are within dim * 2^-24 * sum |p_k v_k| <= dim * 2^-24 * |p| |v| of the
  // exact value (a classic bound for any summation order, fused or not); 4x that margin
  // separates the BLAS's sign from Hash's.
  const float margin = 4.0f * static_cast<float>(dim) * 0x1p-24f;
  std::vector<std::uint32_t> row_sigs(tables);
  for (std::size_t i = 0; i < count; ++i) {
    const float* v = rows + i * dim;
    float* pi = proj + i * np;
    const float scale = margin * std::sqrt(internal::Dot(v, v, dim));
    if (internal::PackSigns(pi, offsets.data(), plane_norms.data(), scale, tables, bits,
                            row_sigs.data())) {
      for (std::size_t p = 0; p < np; ++p) {  // rare: near a hyperplane, or not a number
        if (std::fabs(pi[p] - offsets[p]) > scale * plane_norms[p]) continue;
        internal::DotBlock(planes.data() + p * dim, 1, v, 1, dim, pi + p);  // as Hash does
      }
      internal::PackSigns(pi, offsets.data(), plane_norms.data(), scale, tables, bits,
                          row_sigs.data());
    }
    for (std::uint32_t t = 0; t < tables; ++t) sigs[t * stride + i] = row_sigs[t];
  }
}

LshIndex::LshIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  dim_ = impl_->dim;
  items_ = impl_->items;
}
LshIndex::~LshIndex() = default;

Result<std::unique_ptr<LshIndex>> LshIndex::Build(const Embeddings& embeddings,
                                                  const LshParams& requested) {
  PGRAPH_RETURN_IF_ERROR(CheckParams(requested));
  LshParams params = requested;
  if (params.bits == 0) params.bits = AutoBits(embeddings.rows());
  if (embeddings.rows() == 0 || embeddings.dim() == 0) {
    return Status::InvalidArgument("lsh: no embeddings to index");
  }
  if (embeddings.rows() >= kInvalidNode) {
    return Status::InvalidArgument("lsh: too many rows for 32-bit item ids");
  }
  auto impl = std::make_unique<Impl>();
  impl->tables = params.tables;
  impl->bits = params.bits;
  impl->dim = embeddings.dim();
  impl->items = embeddings.rows();
  impl->MakePlanes(params.seed);

  const std::uint32_t d = impl->dim;
  const std::uint64_t n = impl->items;
  const std::uint32_t np = params.tables * params.bits;
  const std::uint64_t block_rows = HashBlockRows(np);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> blocks;
  for (std::uint64_t r = 0; r < n;) {
    const auto run = embeddings.Contiguous(r, block_rows);
    blocks.emplace_back(r, run.rows);
    r += run.rows;
  }
  auto rows_as_float = [&](std::uint64_t first, std::uint64_t count, std::vector<float>& buf) {
    const auto run = embeddings.Contiguous(first, count);
    if (!embeddings.is_f16()) return static_cast<const float*>(run.data);
    buf.resize(count * d);
    internal::HalfToFloat(static_cast<const std::uint16_t*>(run.data), count * d, buf.data());
    return static_cast<const float*>(buf.data());
  };

  // The mean embedding (double sums), when centering.
  std::vector<float> center(d, 0.0f);
  if (params.center) {
    tbb::combinable<std::vector<double>> sums([d] { return std::vector<double>(d, 0.0); });
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, blocks.size()),
                      [&](const tbb::blocked_range<std::size_t>& range) {
      std::vector<double>& sum = sums.local();
      std::vector<float> buf;
      for (std::size_t b = range.begin(); b != range.end(); ++b) {
        const float* rows = rows_as_float(blocks[b].first, blocks[b].second, buf);
        for (std::uint64_t i = 0; i < blocks[b].second; ++i) {
          for (std::uint32_t j = 0; j < d; ++j) sum[j] += rows[i * d + j];
        }
      }
    });
    std::vector<double> total(d, 0.0);
    sums.combine_each([&](const std::vector<double>& s) {
      for (std::uint32_t j = 0; j < d; ++j) total[j] += s[j];
    });
    for (std::uint32_t j = 0; j < d; ++j) center[j] = static_cast<float>(total[j] / n);
  }
  impl->SetCenter(std::move(center));

  // Signatures, table-major: sigs[t * n + item]. One BLAS product per block on each TBB
  // thread, the BLAS's own pool held at one thread meanwhile (it would start its pool on the
  // same cores for every product).
  std::vector<std::uint32_t> sigs(std::size_t{params.tables} * n);
  const storage::SgemmFn sgemm = internal::HashWithBlas() ? storage::CblasSgemm() : nullptr;
  const storage::ScopedBlasThreads one_blas_thread(1);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, blocks.size()),
                    [&](const tbb::blocked_range<std::size_t>& range) {
    std::vector<float> buf, proj;
    for (std::size_t b = range.begin(); b != range.end(); ++b) {
      const auto [first, count] = blocks[b];
      const float* rows = rows_as_float(first, count, buf);
      impl->Signatures(rows, count, sgemm, proj, sigs.data() + first, n);
    }
  });

  // Per table: sort items by signature, then record the buckets.
  std::vector<std::vector<std::uint32_t>> keys_of(params.tables);
  std::vector<std::vector<std::uint64_t>> starts_of(params.tables);
  impl->ids.owned.resize(std::size_t{params.tables} * n);
  tbb::parallel_for(std::uint32_t{0}, params.tables, [&](std::uint32_t t) {
    std::vector<std::uint32_t> keys(sigs.begin() + static_cast<std::ptrdiff_t>(t * n),
                                    sigs.begin() + static_cast<std::ptrdiff_t>((t + 1) * n));
    std::vector<std::uint32_t> ids(n);
    for (std::uint64_t i = 0; i < n; ++i) ids[i] = static_cast<std::uint32_t>(i);
    SortByKey(keys, ids, params.bits);
    std::copy(ids.begin(), ids.end(),
              impl->ids.owned.begin() + static_cast<std::ptrdiff_t>(t * n));
    for (std::uint64_t i = 0; i < n; ++i) {
      if (i == 0 || keys[i] != keys[i - 1]) {
        keys_of[t].push_back(keys[i]);
        starts_of[t].push_back(t * n + i);
      }
    }
  });
  std::vector<std::uint32_t>().swap(sigs);
  impl->table_starts.push_back(0);
  for (std::uint32_t t = 0; t < params.tables; ++t) {
    impl->bucket_keys.insert(impl->bucket_keys.end(), keys_of[t].begin(), keys_of[t].end());
    impl->bucket_starts.insert(impl->bucket_starts.end(), starts_of[t].begin(),
                               starts_of[t].end());
    impl->table_starts.push_back(impl->bucket_keys.size());
  }
  impl->bucket_starts.push_back(std::uint64_t{params.tables} * n);
  impl->ids.size = impl->ids.owned.size();
  impl->ids.chunks = {impl->ids.owned.data()};
  impl->BuildDirectory();

  auto index = std::unique_ptr<LshIndex>(new LshIndex(std::move(impl)));
  index->params_ = params;
  return index;
}

IndexStats LshIndex::Stats() const {
  IndexStats s;
  s.buckets = impl_->bucket_keys.size();
  for (std::size_t b = 0; b < s.buckets; ++b) {
    s.max_bucket =
        std::max(s.max_bucket, impl_->bucket_starts[b + 1] - impl_->bucket_starts[b]);
  }
  s.mean_bucket = s.buckets ? static_cast<double>(impl_->ids.size) / s.buckets : 0.0;
  return s;
}

void LshIndex::Hash(std::span<const float> v, std::span<std::uint32_t> sigs,
                    std::span<float> projections) const {
  std::vector<float> local;
  float* proj = projections.data();
  if (projections.empty()) {
    local.resize(std::size_t{impl_->tables} * impl_->bits);
    proj = local.data();
  }
  impl_->Hash(v.data(), proj, sigs.data());
}

std::vector<NodeId> LshIndex::Bucket(std::uint32_t table, std::uint32_t key) const {
  std::vector<NodeId> out;
  const auto [b, e] = impl_->Find(table, key);
  impl_->ids.ForEach(b, e, [&](std::uint32_t id) { out.push_back(id); });
  return out;
}

// ---- params text ----------------------------------------------------------------------

std::string FormatParams(const StoredParams& p) {
  std::ostringstream os;
  os << "format=1 tables=" << p.params.tables << " bits=" << p.params.bits
     << " seed=" << p.params.seed << " center=" << (p.params.center ? 1 : 0) << " dim=" << p.dim
     << " items=" << p.items << " embedding_version=" << p.embedding_version;
  return os.str();
}

Result<StoredParams> ParseParams(const std::string& text) {
  StoredParams out;
  std::istringstream is(text);
  std::string word;
  bool seen_format = false;
  while (is >> word) {
    const auto eq = word.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("lsh.params: expected key=value, got '" + word + "'");
    }
    const std::string key = word.substr(0, eq);
    const std::string value = word.substr(eq + 1);
    std::uint64_t v = 0;
    const char* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, v);
    if (value.empty() || ec != std::errc() || ptr != end) {
      return Status::InvalidArgument("lsh.params: bad value in '" + word + "'");
    }
    if (key == "format") {
      if (v != 1) return Status::NotSupported("lsh.params: unknown format " + value);
      seen_format = true;
    } else if (key == "tables") {
      out.params.tables = static_cast<std::uint32_t>(v);
    } else if (key == "bits") {
      out.params.bits = static_cast<std::uint32_t>(v);
    } else if (key == "seed") {
      out.params.seed = v;
    } else if (key == "center") {
      out.params.center = v != 0;
    } else if (key == "dim") {
      out.dim = static_cast<std::uint32_t>(v);
    } else if (key == "items") {
      out.items = v;
    } else if (key == "embedding_version") {
      out.embedding_version = v;
    }  // unknown keys: written by a newer minor version, ignored
  }
  if (!seen_format) return Status::InvalidArgument("lsh.params: no format= word");
  PGRAPH_RETURN_IF_ERROR(CheckParams(out.params));
  if (out.params.bits == 0) return Status::InvalidArgument("lsh.params: bits=0");
  return out;
}

}  // namespace pgraph::ann
