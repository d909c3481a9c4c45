// Ingest: edge list (+ features) -> a new store, built aside and renamed into place.
//
// Pipeline: blocks of whole lines -> parallel parse into id keys (integer ids by value on a
// fast path, other ids as spans of the block) -> id interning (items and contexts side by
// side, each in first-appearance order; overlapped with parsing the next block of a mapped
// file) -> CSR item->context (a parallel stable counting sort; rows sorted, duplicates
// merged: weights summed) -> CSR context->item (the same counting sort over the item CSR in
// item order, so rows come out sorted) -> columns, each written while the next CSR is built.
// Nothing depends on the thread count: the store is the same byte for byte. Peak memory is
// about 20-26 bytes per edge plus the id tables.
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>

#include "storage/ingest/features.h"
#include "storage/ingest/id_table.h"
#include "storage/ingest/line_reader.h"
#include "storage/store.h"
#include "storage/test_hooks.h"

namespace pgraph::storage {

namespace {

struct ParseError {
  std::uint64_t line = 0;  // relative to the piece, 1-based; 0 = none
  std::string message;
};

// One piece of a block, parsed by one task. Ids are IdTable keys (string offsets relative
// to the block).
struct Piece {
  std::string_view text;
  std::vector<std::uint64_t> item, ctx;
  std::vector<float> weight;     // weighted input only
  std::uint64_t line_count = 0;  // physical lines, for numbering
  std::uint64_t bad = 0;
  std::vector<ParseError> errors;  // first few
};

std::string Quote(std::string_view s) {
  if (s.size() > 40) return "'" + std::string(s.substr(0, 40)) + "...'";
  return "'" + std::string(s) + "'";
}

bool IsNumber(std::string_view s) {
  float v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool LooksLikeHeaderWord(std::string_view s) {
  static const char* kWords[] = {"item", "item_id", "itemid", "items", "context", "context_id",
                                 "user", "user_id", "userid", "users", "src", "dst", "source",
                                 "target", "weight", "pin", "pin_id", "board", "board_id",
                                 "movie", "movie_id", "artist", "artist_id", "id", "node",
                                 "playlist", "session", "song", "track", "product", "count"};
  std::string l = Lower(s);
  for (const char* w : kWords) {
    if (l == w) return true;
  }
  return false;
}

// Splits a line into fields. Space as delimiter means runs of blanks.
int SplitFields(std::string_view line, char delim, std::string_view* f, int max_fields) {
  int n = 0;
  std::size_t p = 0;
  while (true) {
    std::size_t q;
    if (delim == ' ') {
      while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
      if (p >= line.size()) break;
      q = p;
      while (q < line.size() && line[q] != ' ' && line[q] != '\t') ++q;
    } else {
      q = line.find(delim, p);
      if (q == std::string_view::npos) q = line.size();
    }
    std::string_view field = line.substr(p, q - p);
    while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
    if (n < max_fields) f[n] = field;
    ++n;
    if (q >= line.size()) break;
    p = q + 1;
  }
  return n;
}

struct Format {
  char delim = '\t';
  int fields = 2;  // 2 or 3
  bool header = false;
  bool decided = false;
};

// Sees the first data line and decides delimiter, weightedness and header.
Status DecideFormat(std::string_view first, std::string_view second, const IngestOptions& o,
                    Format* fmt) {
  fmt->delim = o.delimiter != 0 ? o.delimiter
               : first.find('\t') != std::string_view::npos ? '\t'
               : first.find(',') != std::string_view::npos ? ','
                                                          : ' ';
  std::string_view f[4], g[4];
  int n = SplitFields(first, fmt->delim, f, 4);
  bool header = false;
  if (o.header >= 0) {
    header = o.header == 1;
  } else if (n >= 2 && n <= 3) {
    bool words = LooksLikeHeaderWord(f[0]) && LooksLikeHeaderWord(f[1]);
    bool bad_weight = n == 3 && !IsNumber(f[2]);
    header = words || bad_weight;
  }
  fmt->header = header;
  std::string_view data = header ? second : first;
  int m = data.empty() ? n : SplitFields(data, fmt->delim, g, 4);
  fmt->fields = m == 3 ? 3 : 2;
  fmt->decided = true;
  return Status::OK();
}

// A decimal integer id at p exactly as IdTable::ParseInt accepts it (1-18 digits, no
// leading zero): the position after it, or nullptr.
inline const char* ParseIntId(const char* p, const char* end, std::uint64_t* v) {
  const char* s = p;
  std::uint64_t x = 0;
  while (p < end && static_cast<unsigned>(*p - '0') <= 9) {
    x = x * 10 + static_cast<std::uint64_t>(*p - '0');
    ++p;
  }
  std::size_t n = static_cast<std::size_t>(p - s);
  if (n == 0 || n > 18 || (n > 1 && s[0] == '0')) return nullptr;
  *v = x;
  return p;
}

// The common line "INT<delim>INT[<delim>WEIGHT]\n" (or \r\n, or the end of the text), parsed
// without splitting. Returns the position after the line, or nullptr for any other line;
// the general parser then handles it (with the same result for lines accepted here).
inline const char* ParseFastLine(const char* p, const char* end, char delim, bool weighted,
                                 std::uint64_t* a, std::uint64_t* b, float* w) {
  const char* q = ParseIntId(p, end, a);
  if (!q || q == end || *q != delim) return nullptr;
  q = ParseIntId(q + 1, end, b);
  if (!q) return nullptr;
  if (!weighted) {
    if (q == end) return end;
    if (*q == '\n') return q + 1;
    if (*q == '\r' && (q + 1 == end || q[1] == '\n')) return q + 1 == end ? end : q + 2;
    return nullptr;
  }
  if (q == end || *q != delim) return nullptr;
  ++q;
  const char* nl = static_cast<const char*>(std::memchr(q, '\n', static_cast<std::size_t>(end - q)));
  const char* eol = nl ? nl : end;
  const char* next = nl ? nl + 1 : end;
  if (eol > q && eol[-1] == '\r') --eol;
  if (eol == q || std::memchr(q, delim, static_cast<std::size_t>(eol - q))) return nullptr;
  auto r = std::from_chars(q, eol, *w);
  if (r.ec != std::errc() || r.ptr != eol || !std::isfinite(*w) || *w < 0) return nullptr;
  return next;
}

// `header_line` (may be null) points at the header line, which is skipped. Keys go to the
// piece's vectors (cleared first; their capacity is reused from block to block).
void ParsePiece(Piece* piece, std::string_view block, const Format& fmt, const char* header_line) {
  std::string_view text = piece->text;
  std::size_t pos = 0;
  std::uint64_t line_no = 0;
  bool weighted = fmt.fields == 3;
  piece->item.clear();
  piece->ctx.clear();
  piece->weight.clear();
  piece->bad = 0;
  piece->errors.clear();
  piece->item.reserve(text.size() / 12);
  piece->ctx.reserve(text.size() / 12);
  if (weighted) piece->weight.reserve(text.size() / 16);
  // Digits, blanks and line ends cannot be the delimiter of the fast path.
  bool fast = fmt.delim != ' ' && (fmt.delim < '0' || fmt.delim > '9') && fmt.delim != '\n' &&
              fmt.delim != '\r';
  const char* end = text.data() + text.size();
  std::string_view f[4];
  auto fail = [&](std::string msg) {
    ++piece->bad;
    if (piece->errors.size() < 5) piece->errors.push_back({line_no, std::move(msg)});
  };
  auto key = [&](std::string_view s) {
    std::uint64_t v;
    if (IdTable::ParseInt(s, &v)) return v;
    return IdTable::StringKey(static_cast<std::uint32_t>(s.data() - block.data()),
                              static_cast<std::uint32_t>(s.size()));
  };
  while (pos < text.size()) {
    ++line_no;
    const char* p = text.data() + pos;
    if (fast && p != header_line) {
      std::uint64_t a, b;
      float w = 1.0f;
      if (const char* next = ParseFastLine(p, end, fmt.delim, weighted, &a, &b, &w)) {
        piece->item.push_back(a);
        piece->ctx.push_back(b);
        if (weighted) piece->weight.push_back(w);
        pos = static_cast<std::size_t>(next - text.data());
        continue;
      }
    }
    std::string_view line = NextLine(text, &pos);
    if (IsBlankOrComment(line)) continue;
    if (line.data() == header_line) continue;
    int n = SplitFields(line, fmt.delim, f, 4);
    if (n != fmt.fields) {
      fail("expected " + std::to_string(fmt.fields) + " fields (item, context" +
           (fmt.fields == 3 ? ", weight" : "") + ") separated by " +
           (fmt.delim == '\t' ? "tabs" : fmt.delim == ',' ? "commas" : "spaces") + ", got " +
           std::to_string(n));
      continue;
    }
    if (f[0].empty() || f[1].empty()) {
      fail(std::string("empty ") + (f[0].empty() ? "item" : "context") + " id");
      continue;
    }
    float w = 1.0f;
    if (n == 3) {
      auto r = std::from_chars(f[2].data(), f[2].data() + f[2].size(), w);
      if (r.ec != std::errc() || r.ptr != f[2].data() + f[2].size()) {
        fail("weight is not a number: " + Quote(f[2]));
        continue;
      }
      if (!std::isfinite(w)) {
        fail("weight is NaN or infinite: " + Quote(f[2]));
        continue;
      }
      if (w < 0) {
        fail("weight is negative: " + Quote(f[2]));
        continue;
      }
    }
    piece->item.push_back(key(f[0]));
    piece->ctx.push_back(key(f[1]));
    if (weighted) piece->weight.push_back(w);
  }
  piece->line_count = line_no;
}

struct EdgeList {
  std::vector<NodeId> item, ctx;
  std::vector<float> weight;  // empty when unweighted
};

struct Csr {
  std::vector<std::uint64_t> offsets;
  std::vector<NodeId> targets;
  std::vector<float> weights;
};

// A stable counting sort of n elements by row, in parallel: element k of row rows[k] goes to
// the position after every element of a smaller row and every earlier element of its row,
// whatever the thread count. Fills `offsets` (num_rows + 1) and calls
// scatter(begin, end, cursor) for blocks [begin, end) covering [0, n), in parallel; for each
// k in its block, in order, scatter takes position cursor[rows[k]]++.
template <typename Scatter>
void CountingSort(const NodeId* rows, std::uint64_t n, std::uint64_t num_rows, int parallel,
                  std::vector<std::uint64_t>* offsets, Scatter scatter) {
  // One cursor array (4 bytes a row) per block; fewer blocks when rows are sparse.
  std::uint64_t blocks = std::clamp<std::uint64_t>(n / std::max<std::uint64_t>(num_rows, 1), 1,
                                                   static_cast<std::uint64_t>(std::max(parallel, 1)));
  std::vector<std::uint64_t> bounds(blocks + 1);
  for (std::uint64_t b = 0; b <= blocks; ++b) bounds[b] = n * b / blocks;
  std::vector<std::vector<std::uint32_t>> cursors(blocks);
  tbb::parallel_for(std::uint64_t{0}, blocks, [&](std::uint64_t b) {
    ResizeHuge(&cursors[b], num_rows);
    std::uint32_t* c = cursors[b].data();
    for (std::uint64_t k = bounds[b]; k < bounds[b + 1]; ++k) ++c[rows[k]];
  });
  offsets->assign(num_rows + 1, 0);
  std::uint64_t* off = offsets->data();
  std::uint64_t base = 0;
  for (std::uint64_t r = 0; r < num_rows; ++r) {
    off[r] = base;
    for (std::uint64_t b = 0; b < blocks; ++b) {
      std::uint32_t c = cursors[b][r];
      cursors[b][r] = static_cast<std::uint32_t>(base);
      base += c;
    }
  }
  off[num_rows] = base;
  tbb::parallel_for(std::uint64_t{0}, blocks, [&](std::uint64_t b) {
    scatter(bounds[b], bounds[b + 1], cursors[b].data());
  });
}

// Rows of items sorted by context with duplicates merged (weights summed).
Csr BuildItemCsr(EdgeList& edges, std::uint64_t items, bool weighted, int parallel,
                 std::uint64_t* duplicates, std::vector<NodeId>* spare) {
  std::uint64_t e = edges.item.size();
  Csr csr;
  ResizeHuge(&csr.targets, e);
  if (weighted) ResizeHuge(&csr.weights, e);
  CountingSort(edges.item.data(), e, items, parallel, &csr.offsets,
               [&](std::uint64_t begin, std::uint64_t end, std::uint32_t* cursor) {
    const NodeId* item = edges.item.data();
    const NodeId* ctx = edges.ctx.data();
    NodeId* t = csr.targets.data();
    if (weighted) {
      const float* w = edges.weight.data();
      float* tw = csr.weights.data();
      for (std::uint64_t k = begin; k < end; ++k) {
        std::uint32_t p = cursor[item[k]]++;
        t[p] = ctx[k];
        tw[p] = w[k];
      }
    } else {
      for (std::uint64_t k = begin; k < end; ++k) t[cursor[item[k]]++] = ctx[k];
    }
  });
  // Free 4-8 bytes per edge before the next allocation; the item column's memory (already
  // faulted in) is kept for the transpose's targets, which saves zeroing fresh pages.
  *spare = std::move(edges.item);
  edges = EdgeList();
  std::vector<std::uint64_t> kept(items, 0);
  tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, items, 4096),
                    [&](const tbb::blocked_range<std::uint64_t>& r) {
    std::vector<std::pair<NodeId, float>> tmp;
    for (std::uint64_t u = r.begin(); u != r.end(); ++u) {
      NodeId* t = csr.targets.data() + csr.offsets[u];
      std::uint64_t n = csr.offsets[u + 1] - csr.offsets[u];
      if (n == 0) continue;
      std::uint64_t out = 0;
      // Rows often arrive sorted (input grouped by context): then there is nothing to do.
      // A weighted row is skipped only without duplicates, so sums keep their order.
      if (std::adjacent_find(t, t + n, std::greater_equal<NodeId>()) == t + n) {
        out = n;
      } else if (!weighted) {
        std::sort(t, t + n);
        out = static_cast<std::uint64_t>(std::unique(t, t + n) - t);
      } else {
        float* w = csr.weights.data() + csr.offsets[u];
        tmp.resize(n);
        for (std::uint64_t i = 0; i < n; ++i) tmp[i] = {t[i], w[i]};
        std::sort(tmp.begin(), tmp.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::uint64_t i = 0; i < n; ++i) {
          if (out > 0 && t[out - 1] == tmp[i].first) {
            w[out - 1] += tmp[i].second;
          } else {
            t[out] = tmp[i].first;
            w[out] = tmp[i].second;
            ++out;
          }
        }
      }
      kept[u] = out;
    }
  });
  // Compact rows left to right (each row moves to a position <= its old one).
  std::uint64_t write = 0;
  for (std::uint64_t u = 0; u < items; ++u) {
    std::uint64_t begin = csr.offsets[u];
    if (write != begin) {
      std::memmove(csr.targets.data() + write, csr.targets.data() + begin, kept[u] * 4);
      if (weighted) std::memmove(csr.weights.data() + write, csr.weights.data() + begin, kept[u] * 4);
    }
    csr.offsets[u] = write;
    write += kept[u];
  }
  csr.offsets[items] = write;
  *duplicates = e - write;
  csr.targets.resize(write);
  csr.targets.shrink_to_fit();
  if (weighted) {
    csr.weights.resize(write);
    csr.weights.shrink_to_fit();
  }
  return csr;
}

// The context->item CSR of `a`: filled in item order, so its rows come out sorted.
// `spare`: memory to reuse for the targets.
Csr Transpose(const Csr& a, std::uint64_t cols, bool weighted, int parallel,
              std::vector<NodeId> spare) {
  Csr t;
  t.targets = std::move(spare);
  std::uint64_t e = a.targets.size();
  ResizeHuge(&t.targets, e);
  if (weighted) ResizeHuge(&t.weights, e);
  CountingSort(a.targets.data(), e, cols, parallel, &t.offsets,
               [&](std::uint64_t begin, std::uint64_t end, std::uint32_t* cursor) {
    if (begin == end) return;
    const std::uint64_t* off = a.offsets.data();
    // The item owning position `begin`: the last row starting at or before it.
    auto u = static_cast<std::uint64_t>(
        std::upper_bound(a.offsets.begin(), a.offsets.end(), begin) - a.offsets.begin() - 1);
    const NodeId* src = a.targets.data();
    NodeId* dst = t.targets.data();
    for (std::uint64_t k = begin; k < end; ++k) {
      while (off[u + 1] <= k) ++u;
      std::uint32_t p = cursor[src[k]]++;
      dst[p] = static_cast<NodeId>(u);
      if (weighted) t.weights[p] = a.weights[k];
    }
  });
  return t;
}

template <typename T>
Status WriteColumn(Update* update, const char* name, DType dtype, std::uint32_t width,
                   std::span<const T> values) {
  ColumnSpec spec;
  spec.name = name;
  spec.dtype = dtype;
  spec.width = width;
  PGRAPH_ASSIGN_OR_RETURN(ColumnWriter * w, update->AddColumn(spec));
  // Append in 64 MiB slices: each is one backend write of whole chunks taken straight from
  // `values` (the writer stages only a partial last chunk).
  constexpr std::size_t kSlice = 64 << 20;
  std::size_t per = std::max<std::size_t>(width, (kSlice / sizeof(T)) / width * width);
  for (std::size_t i = 0; i < values.size(); i += per) {
    PGRAPH_RETURN_IF_ERROR(w->AppendValues(values.subspan(i, std::min(per, values.size() - i))));
  }
  return Status::OK();
}

Status WriteIds(Update* update, const IdTable& ids, const char* bytes_name,
                const char* offsets_name, const char* index_name) {
  std::string bytes;
  std::vector<std::uint64_t> offsets;
  offsets.reserve(ids.size() + 1);
  offsets.push_back(0);
  std::vector<std::uint64_t> index(ids.size() * 2);
  std::string name;
  for (std::uint64_t i = 0; i < ids.size(); ++i) {
    std::size_t start = bytes.size();
    ids.AppendName(static_cast<NodeId>(i), &bytes);
    offsets.push_back(bytes.size());
    index[2 * i] = HashId(std::string_view(bytes).substr(start));
    index[2 * i + 1] = i;
  }
  // Sort (hash, id) pairs as 16-byte records. The hashes are uniform, so one counting-sort
  // pass on their top bits leaves buckets of about 16 records, each finished by std::sort;
  // (hash, id) pairs are unique, so this order is the only one.
  struct Rec {
    std::uint64_t h, id;
  };
  const auto* recs = reinterpret_cast<const Rec*>(index.data());
  std::uint64_t n = ids.size();
  int bits = 1;
  while (bits < 24 && (std::uint64_t{1} << (bits + 4)) < n) ++bits;
  std::vector<std::uint64_t> bucket((std::size_t{1} << bits) + 1, 0);
  for (std::uint64_t i = 0; i < n; ++i) ++bucket[(recs[i].h >> (64 - bits)) + 1];
  for (std::size_t b = 1; b < bucket.size(); ++b) bucket[b] += bucket[b - 1];
  std::vector<std::uint64_t> sorted_index(index.size());
  auto* sorted = reinterpret_cast<Rec*>(sorted_index.data());
  {
    std::vector<std::uint64_t> cursor(bucket.begin(), bucket.end() - 1);
    for (std::uint64_t i = 0; i < n; ++i) sorted[cursor[recs[i].h >> (64 - bits)]++] = recs[i];
  }
  index = {};
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, bucket.size() - 1, 1024),
                    [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t b = r.begin(); b != r.end(); ++b) {
      std::sort(sorted + bucket[b], sorted + bucket[b + 1],
                [](const Rec& x, const Rec& y) { return x.h != y.h ? x.h < y.h : x.id < y.id; });
    }
  });
  PGRAPH_RETURN_IF_ERROR(WriteColumn<std::uint8_t>(
      update, bytes_name, DType::kU8, 1,
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())));
  PGRAPH_RETURN_IF_ERROR(WriteColumn<std::uint64_t>(update, offsets_name, DType::kU64, 1, offsets));
  return WriteColumn<std::uint64_t>(update, index_name, DType::kU64, 2, sorted_index);
}

}  // namespace

Result<IngestReport> Ingest(const IngestOptions& o) {
  auto start = std::chrono::steady_clock::now();
  if (o.store_dir.empty()) return Status::InvalidArgument("no --store directory given");
  if (o.edges_path.empty()) return Status::InvalidArgument("no --edges file given");
  const std::string& file = o.edges_path == "-" ? std::string("<stdin>") : o.edges_path;
  auto log = [&](const std::string& msg) {
    if (o.progress) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "ingest [%6.1fs] %s\n", secs, msg.c_str());
    }
  };

  // Fail before reading anything when the target exists and may not be replaced.
  {
    std::error_code ec;
    if (!o.overwrite && std::filesystem::exists(o.store_dir, ec)) {
      return Status::InvalidArgument("store '" + o.store_dir +
                                     "' already exists (use --overwrite to replace it)");
    }
  }
  if (!o.features_path.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(o.features_path, ec)) {
      return Status::NotFound("file not found: '" + o.features_path + "'");
    }
  }

  PGRAPH_ASSIGN_OR_RETURN(auto reader, LineReader::Open(o.edges_path));
  IngestReport report;
  IdTable items, contexts;
  EdgeList edges;
  Format fmt;
  std::uint64_t lines_before = 0;
  const char* header_line = nullptr;
  int parallel = o.threads > 0 ? o.threads : tbb::this_task_arena::max_concurrency();
  std::uint64_t next_log = 10'000'000;

  // Two stages overlap: block N+1 is parsed (in parallel pieces) while the ids of block N
  // are interned (items and contexts side by side, each in input order, so dense ids do
  // not depend on the thread count). Streams reuse their buffer at each Next(), so there a
  // block is interned before the next one is read.
  struct Batch {
    std::string_view block;
    std::vector<Piece> pieces;  // reused, with their vectors' capacity, batch to batch
    std::size_t used = 0;
  };
  Batch batches[2];
  Batch* pending = nullptr;  // parsed and checked, not interned yet
  int cur = 0;
  auto intern_batch = [&](Batch& b) -> Status {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < b.used; ++i) total += b.pieces[i].item.size();
    std::size_t old = edges.item.size();
    if (std::uint64_t(old) + total > std::uint64_t(kInvalidNode)) {
      return Status::InvalidArgument("'" + file + "': more than 4 billion edges are not supported yet");
    }
    if (old == 0 && reader->size_hint() > 0) {
      // Reserve for the whole file from the first block's line density (pages are only
      // touched as they fill, so an overestimate costs address space, not memory).
      double est = static_cast<double>(total) * static_cast<double>(reader->size_hint()) /
                   static_cast<double>(b.block.size()) * 1.05 + 1024;
      auto n = static_cast<std::size_t>(std::min(est, double(kInvalidNode)));
      edges.item.reserve(n);
      edges.ctx.reserve(n);
      AdviseHugePages(edges.item.data(), n * sizeof(NodeId));
      AdviseHugePages(edges.ctx.data(), n * sizeof(NodeId));
      if (fmt.fields == 3) {
        edges.weight.reserve(n);
        AdviseHugePages(edges.weight.data(), n * sizeof(float));
      }
    }
    edges.item.resize(old + total);
    edges.ctx.resize(old + total);
    if (fmt.fields == 3) edges.weight.resize(old + total);
    auto intern = [&](IdTable* table, bool item_side, NodeId* out) {
      for (std::size_t i = 0; i < b.used; ++i) {
        const std::vector<std::uint64_t>& keys = item_side ? b.pieces[i].item : b.pieces[i].ctx;
        table->InternKeys(keys, b.block, out);
        out += keys.size();
      }
    };
    tbb::parallel_invoke([&] { intern(&items, true, edges.item.data() + old); },
                         [&] {
                           intern(&contexts, false, edges.ctx.data() + old);
                           if (fmt.fields != 3) return;
                           float* w = edges.weight.data() + old;
                           for (std::size_t i = 0; i < b.used; ++i) {
                             w = std::copy(b.pieces[i].weight.begin(), b.pieces[i].weight.end(), w);
                           }
                         });
    if (edges.item.size() >= next_log) {
      log("read " + std::to_string(edges.item.size()) + " edges");
      next_log += 10'000'000;
    }
    return Status::OK();
  };

  for (;;) {
    if (pending && !reader->blocks_stay_valid()) {
      PGRAPH_RETURN_IF_ERROR(intern_batch(*pending));
      pending = nullptr;
    }
    PGRAPH_ASSIGN_OR_RETURN(std::string_view block, reader->Next());
    if (block.empty()) break;
    if (!fmt.decided) {
      // The first two data lines decide the format.
      std::string_view first, second;
      std::size_t pos = 0;
      while (pos < block.size() && second.empty()) {
        std::string_view line = NextLine(block, &pos);
        if (IsBlankOrComment(line)) continue;
        (first.empty() ? first : second) = line;
      }
      if (first.empty()) {
        lines_before += static_cast<std::uint64_t>(std::count(block.begin(), block.end(), '\n'));
        continue;
      }
      PGRAPH_RETURN_IF_ERROR(DecideFormat(first, second, o, &fmt));
      if (fmt.header) header_line = first.data();
    }
    // Cut the block into pieces at line boundaries.
    Batch& b = batches[cur];
    cur ^= 1;
    b.block = block;
    b.used = 0;
    std::size_t want = static_cast<std::size_t>(parallel) * 4;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < want && begin < block.size(); ++i) {
      std::size_t end = i + 1 == want ? block.size()
                                      : std::min(block.size(), begin + block.size() / want + 1);
      if (end < block.size()) {
        std::size_t nl = block.find('\n', end);
        end = nl == std::string_view::npos ? block.size() : nl + 1;
      }
      if (b.pieces.size() <= b.used) b.pieces.emplace_back();
      b.pieces[b.used++].text = block.substr(begin, end - begin);
      begin = end;
    }
    auto parse = [&] {
      tbb::parallel_for(std::size_t{0}, b.used, [&](std::size_t i) {
        ParsePiece(&b.pieces[i], block, fmt, header_line);
      });
    };
    if (pending) {
      Status interned;
      tbb::parallel_invoke(parse, [&] { interned = intern_batch(*pending); });
      pending = nullptr;
      PGRAPH_RETURN_IF_ERROR(interned);
    } else {
      parse();
    }
    header_line = nullptr;
    std::uint64_t line_base = lines_before;
    for (std::size_t i = 0; i < b.used; ++i) {
      const Piece& p = b.pieces[i];
      if (p.bad > 0) {
        if (!o.skip_bad_lines) {
          const ParseError& e = p.errors.front();
          return Status::InvalidArgument("'" + file + "' line " + std::to_string(line_base + e.line) +
                                         ": " + e.message +
                                         " (use --skip-bad-lines to skip malformed lines)");
        }
        for (const ParseError& e : p.errors) {
          if (report.bad_lines < 5 && o.progress) {
            std::fprintf(stderr, "ingest: warning: '%s' line %llu: %s (skipped)\n", file.c_str(),
                         static_cast<unsigned long long>(line_base + e.line), e.message.c_str());
          }
        }
        report.bad_lines += p.bad;
      }
      line_base += p.line_count;
    }
    lines_before = line_base;
    pending = &b;
  }
  if (pending) PGRAPH_RETURN_IF_ERROR(intern_batch(*pending));
  report.lines = lines_before;
  report.items = items.size();
  report.contexts = contexts.size();
  if (edges.item.empty()) {
    return Status::InvalidArgument("'" + file + "': no edges (empty input" +
                                   std::string(report.bad_lines ? ", all lines malformed" : "") + ")");
  }
  if (items.size() >= kInvalidNode || contexts.size() >= kInvalidNode) {
    return Status::InvalidArgument("'" + file + "': more than 2^32-1 items or contexts");
  }
  bool weighted = fmt.fields == 3;
  std::uint64_t contexts_count = contexts.size();
  log("parsed " + std::to_string(edges.item.size()) + " edges: " + std::to_string(items.size()) +
      " items, " + std::to_string(contexts.size()) + " contexts" +
      (report.bad_lines ? ", " + std::to_string(report.bad_lines) + " bad lines skipped" : ""));

  // Features before the CSR: a bad feature file should fail fast.
  FeatureMatrix features;
  if (!o.features_path.empty()) {
    PGRAPH_ASSIGN_OR_RETURN(features, LoadFeatures(o, items));
    report.feature_dim = features.dim;
    report.filled_features = features.filled;
    report.items = items.size();  // --isolated-items may have added some
    log("features: " + std::to_string(features.dim) + " dims" +
        (features.filled ? ", " + std::to_string(features.filled) + " rows filled" : ""));
  }

  // Columns are written while the next CSR is built: the id maps while the item CSR is
  // built, the item CSR while it is transposed. Each write batch starts its writeback to
  // disk at once, so little is left for the final sync.
  PGRAPH_ASSIGN_OR_RETURN(auto store, Store::Create(o.store_dir, o.store, o.overwrite));
  PGRAPH_ASSIGN_OR_RETURN(auto update, store->BeginUpdate());
  Update* u = update.get();
  Status written;
  Csr item_csr;
  std::vector<NodeId> spare;
  tbb::parallel_invoke(
      [&] {
        written = WriteIds(u, items, columns::kItemIdBytes, columns::kItemIdOffsets,
                           columns::kItemIdIndex);
        if (!written.ok()) return;
        written = WriteIds(u, contexts, columns::kContextIdBytes, columns::kContextIdOffsets,
                           columns::kContextIdIndex);
      },
      [&] {
        item_csr = BuildItemCsr(edges, items.size(), weighted, parallel, &report.duplicate_edges,
                                &spare);
      });
  PGRAPH_RETURN_IF_ERROR(written);
  items = IdTable();
  contexts = IdTable();
  report.edges = item_csr.targets.size();
  log("built item CSR: " + std::to_string(report.edges) + " edges after merging " +
      std::to_string(report.duplicate_edges) + " duplicates");
  TestStopPoint("ingest.columns");
  Csr ctx_csr;
  tbb::parallel_invoke(
      [&] {
        written = WriteColumn<std::uint64_t>(u, columns::kItemOffsets, DType::kU64, 1, item_csr.offsets);
        if (!written.ok()) return;
        written = WriteColumn<NodeId>(u, columns::kItemTargets, DType::kU32, 1, item_csr.targets);
        if (!written.ok() || !weighted) return;
        written = WriteColumn<float>(u, columns::kItemWeights, DType::kF32, 1, item_csr.weights);
      },
      [&] { ctx_csr = Transpose(item_csr, contexts_count, weighted, parallel, std::move(spare)); });
  PGRAPH_RETURN_IF_ERROR(written);
  item_csr = Csr();
  log("built context CSR");
  PGRAPH_RETURN_IF_ERROR(WriteColumn<std::uint64_t>(u, columns::kContextOffsets, DType::kU64, 1, ctx_csr.offsets));
  PGRAPH_RETURN_IF_ERROR(WriteColumn<NodeId>(u, columns::kContextTargets, DType::kU32, 1, ctx_csr.targets));
  if (weighted) {
    PGRAPH_RETURN_IF_ERROR(WriteColumn<float>(u, columns::kContextWeights, DType::kF32, 1, ctx_csr.weights));
  }
  ctx_csr = Csr();
  log("wrote context CSR");
  if (features.dim > 0) {
    auto dim = static_cast<std::uint32_t>(features.dim);
    if (o.features_f16) {
      std::vector<std::uint16_t> half(features.values.size());
      for (std::size_t i = 0; i < half.size(); ++i) half[i] = FloatToHalf(features.values[i]);
      features.values = {};
      PGRAPH_RETURN_IF_ERROR(WriteColumn<std::uint16_t>(u, columns::kFeatures, DType::kF16, dim, half));
    } else {
      PGRAPH_RETURN_IF_ERROR(WriteColumn<float>(u, columns::kFeatures, DType::kF32, dim, features.values));
    }
  }
  u->SetCount("items", report.items);
  u->SetCount("contexts", report.contexts);
  u->SetCount("edges", report.edges);
  u->SetCount("feature_dim", report.feature_dim);
  u->SetCount("weighted", weighted ? 1 : 0);
  u->SetMeta("ingest.edges", o.edges_path);
  if (!o.features_path.empty()) u->SetMeta("ingest.features", o.features_path);
  PGRAPH_RETURN_IF_ERROR(u->Publish());
  update.reset();
  log("published");
  TestStopPoint("ingest.seal");
  PGRAPH_RETURN_IF_ERROR(store->Seal());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log("store written to " + o.store_dir);
  return report;
}

}  // namespace pgraph::storage
