// pgraph export: writes store contents to plain files. One exporter per `--what`, each with
// the formats it supports; add an entry to Exporters() to export something new (e.g.
// `--what embedding --format npy|tsv`).
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "walker/walker.h"

namespace pgraph::tools {
namespace {

// A FILE* for --out: "-" is stdout; otherwise `<out>.tmp`, renamed over `out` by Commit so
// a failed export leaves no partial file.
class OutFile {
 public:
  static Result<std::unique_ptr<OutFile>> Open(const std::string& path) {
    auto f = std::unique_ptr<OutFile>(new OutFile());
    f->path_ = path;
    if (path == "-") {
      f->file_ = stdout;
      return f;
    }
    f->tmp_ = path + ".tmp";
    f->file_ = std::fopen(f->tmp_.c_str(), "wb");
    if (!f->file_) {
      return Status::IOError("cannot write '" + f->tmp_ + "': " + std::strerror(errno));
    }
    return f;
  }
  ~OutFile() {
    if (file_ && file_ != stdout) {
      std::fclose(file_);
      std::remove(tmp_.c_str());
    }
  }
  std::FILE* get() const { return file_; }
  Status Commit() {
    if (file_ == stdout) {
      return std::fflush(stdout) == 0 ? Status::OK() : Status::IOError("error writing stdout");
    }
    bool ok = !std::ferror(file_);
    ok = (std::fclose(file_) == 0) && ok;
    file_ = nullptr;
    if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      std::remove(tmp_.c_str());
      return Status::IOError("cannot write '" + path_ + "': " + std::strerror(errno));
    }
    return Status::OK();
  }

 private:
  OutFile() = default;
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
};

struct ExportArgs {
  std::string store, what, format = "tsv", out, memory_budget = "auto";
  std::string ids;  // embedding/npy: the id list (default <out>.ids.txt)
};

// neighbors/tsv: `item<TAB>neighbor<TAB>weight` per line (external ids), items in store
// order, each item's neighbours most important first; items without neighbours write none.
Status ExportNeighborsTsv(const storage::Store& store, std::FILE* out) {
  namespace cols = storage::columns;
  if (!store.HasColumn(cols::kWalkNeighbors) || !store.HasColumn(cols::kWalkWeights)) {
    return Status::InvalidArgument("store '" + store.dir() +
                                   "' has no neighbourhoods (run `pgraph walk` first)");
  }
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* nc, store.OpenColumn(cols::kWalkNeighbors));
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* wc, store.OpenColumn(cols::kWalkWeights));
  const std::uint32_t t = nc->info().width;
  const std::uint64_t rows = nc->info().rows;
  if (nc->info().dtype != storage::DType::kU32 || wc->info().dtype != storage::DType::kF32 ||
      wc->info().width != t || wc->info().rows != rows) {
    return Status::Corruption("walk.neighbors (u32 x T) and walk.weights (f32 x T) disagree");
  }
  PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(store, NodeKind::kItem));
  constexpr std::uint64_t kBlock = 4096;
  std::vector<NodeId> nbrs(kBlock * t);
  std::vector<float> weights(kBlock * t);
  for (std::uint64_t first = 0; first < rows; first += kBlock) {
    const std::uint64_t n = std::min(kBlock, rows - first);
    PGRAPH_RETURN_IF_ERROR(
        nc->ReadRows(first, n, std::as_writable_bytes(std::span(nbrs).first(n * t))));
    PGRAPH_RETURN_IF_ERROR(
        wc->ReadRows(first, n, std::as_writable_bytes(std::span(weights).first(n * t))));
    for (std::uint64_t r = 0; r < n; ++r) {
      std::string name;
      for (std::uint32_t j = 0; j < t; ++j) {
        const NodeId v = nbrs[r * t + j];
        if (v == kInvalidNode) break;
        if (name.empty()) {
          PGRAPH_ASSIGN_OR_RETURN(name, ids->Name(static_cast<NodeId>(first + r)));
        }
        PGRAPH_ASSIGN_OR_RETURN(std::string vname, ids->Name(v));
        std::fprintf(out, "%s\t%s\t%.7g\n", name.c_str(), vname.c_str(), weights[r * t + j]);
      }
    }
    if (std::ferror(out)) return Status::IOError("error writing the export");
  }
  return Status::OK();
}

// embedding/npy: the `embedding` column as a NumPy .npy matrix (items x d, '<f4' or '<f2' as
// stored), rows in dense item order; the id list (one external id per line, same order) goes
// to --ids. embedding/tsv: `item<TAB>v1<TAB>...<TAB>vd` per line, as float32 text.
// Python: `np.load(out)` and `open(ids).read().split()`.
Status ExportEmbedding(const storage::Store& store, const std::string& format, std::FILE* out) {
  namespace cols = storage::columns;
  if (!store.HasColumn(cols::kEmbedding)) {
    return Status::InvalidArgument("store '" + store.dir() +
                                   "' has no embeddings (run `pgraph infer` first)");
  }
  PGRAPH_ASSIGN_OR_RETURN(const storage::Column* c, store.OpenColumn(cols::kEmbedding));
  const storage::ColumnInfo& info = c->info();
  if (info.dtype != storage::DType::kF32 && info.dtype != storage::DType::kF16) {
    return Status::Corruption("embedding column is neither f32 nor f16");
  }
  const std::uint32_t d = info.width;
  const std::uint64_t rows = info.rows;
  constexpr std::uint64_t kBlock = 4096;
  std::unique_ptr<storage::IdMap> ids;
  if (format == "npy") {
    // NPY 1.0: magic, version, header length, a dict padded with spaces to a multiple of 64.
    std::string header = std::string("{'descr': '") +
                         (info.dtype == storage::DType::kF16 ? "<f2" : "<f4") +
                         "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                         std::to_string(d) + "), }";
    const std::size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header.push_back('\n');
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                   static_cast<unsigned char>(header.size() & 0xff),
                                   static_cast<unsigned char>(header.size() >> 8)};
    std::fwrite(pre, 1, sizeof pre, out);
    std::fwrite(header.data(), 1, header.size(), out);
    std::vector<std::byte> buf(kBlock * info.row_bytes());
    for (std::uint64_t first = 0; first < rows; first += kBlock) {
      const std::uint64_t n = std::min(kBlock, rows - first);
      PGRAPH_RETURN_IF_ERROR(c->ReadRows(first, n, std::span(buf).first(n * info.row_bytes())));
      std::fwrite(buf.data(), 1, n * info.row_bytes(), out);
      if (std::ferror(out)) return Status::IOError("error writing the export");
    }
    return Status::OK();
  }
  PGRAPH_ASSIGN_OR_RETURN(ids, storage::IdMap::Open(store, NodeKind::kItem));
  std::vector<float> buf(kBlock * d);
  for (std::uint64_t first = 0; first < rows; first += kBlock) {
    const std::uint64_t n = std::min(kBlock, rows - first);
    PGRAPH_RETURN_IF_ERROR(c->ReadRowsAsFloat(first, n, std::span(buf).first(n * d)));
    for (std::uint64_t r = 0; r < n; ++r) {
      PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(static_cast<NodeId>(first + r)));
      std::fputs(name.c_str(), out);
      for (std::uint32_t j = 0; j < d; ++j) std::fprintf(out, "\t%.9g", buf[r * d + j]);
      std::fputc('\n', out);
    }
    if (std::ferror(out)) return Status::IOError("error writing the export");
  }
  return Status::OK();
}

// The external item ids in dense order, one per line.
Status ExportItemIds(const storage::Store& store, std::FILE* out) {
  PGRAPH_ASSIGN_OR_RETURN(auto ids, storage::IdMap::Open(store, NodeKind::kItem));
  for (std::uint64_t i = 0; i < ids->size(); ++i) {
    PGRAPH_ASSIGN_OR_RETURN(std::string name, ids->Name(static_cast<NodeId>(i)));
    std::fputs(name.c_str(), out);
    std::fputc('\n', out);
  }
  return std::ferror(out) ? Status::IOError("error writing the id list") : Status::OK();
}

struct Exporter {
  std::string what;
  std::vector<std::string> formats;
  std::function<Status(const storage::Store&, const std::string& format, std::FILE* out)> run;
  // Formats that also write the id list to --ids (default <out>.ids.txt), or none.
  std::vector<std::string> id_list_formats;
};

const std::vector<Exporter>& Exporters() {
  static const std::vector<Exporter> exporters = {
      {"neighbors", {"tsv"},
       [](const storage::Store& s, const std::string&, std::FILE* out) {
         return ExportNeighborsTsv(s, out);
       },
       {}},
      {"embedding", {"npy", "tsv"},
       [](const storage::Store& s, const std::string& format, std::FILE* out) {
         return ExportEmbedding(s, format, out);
       },
       {"npy"}},
  };
  return exporters;
}

std::function<Status()> Setup(CLI::App* app) {
  auto a = std::make_shared<ExportArgs>();
  std::string whats;
  for (const auto& e : Exporters()) whats += (whats.empty() ? "" : ", ") + e.what;
  app->add_option("--store", a->store, "Store directory")->required();
  app->add_option("--what", a->what, "What to export: " + whats)->required();
  app->add_option("--format", a->format,
                  "Output format (neighbors: tsv, `item<TAB>neighbor<TAB>weight` per line; "
                  "embedding: npy (+ id list) or tsv, `item<TAB>v1..vd`)");
  app->add_option("--ids", a->ids, "embedding/npy: id list file (default <out>.ids.txt)");
  app->add_option("--out", a->out, "Output file ('-' for stdout)")->required();
  app->add_option("--memory-budget", a->memory_budget, storage::MemoryBudgetHelp("Chunk cache budget"));
  return [a]() -> Status {
    const Exporter* ex = nullptr;
    for (const auto& e : Exporters()) {
      if (e.what == a->what) ex = &e;
    }
    if (!ex) return Status::InvalidArgument("unknown --what '" + a->what + "'");
    bool format_ok = false;
    for (const auto& f : ex->formats) format_ok |= f == a->format;
    if (!format_ok) {
      return Status::InvalidArgument("--what " + a->what + " does not support --format " +
                                     a->format);
    }
    storage::StoreOptions so;
    so.read_only = true;
    PGRAPH_ASSIGN_OR_RETURN(so.memory_budget, storage::ParseMemoryBudget(a->memory_budget));
    PGRAPH_ASSIGN_OR_RETURN(auto store, storage::Store::Open(a->store, so));
    PGRAPH_ASSIGN_OR_RETURN(auto out, OutFile::Open(a->out));
    PGRAPH_RETURN_IF_ERROR(ex->run(*store, a->format, out->get()));
    bool with_ids = false;
    for (const auto& f : ex->id_list_formats) with_ids |= f == a->format;
    std::string ids_path = a->ids;
    if (with_ids && ids_path.empty() && a->out != "-") ids_path = a->out + ".ids.txt";
    if (with_ids && !ids_path.empty()) {
      PGRAPH_ASSIGN_OR_RETURN(auto ids, OutFile::Open(ids_path));
      PGRAPH_RETURN_IF_ERROR(ExportItemIds(*store, ids->get()));
      PGRAPH_RETURN_IF_ERROR(ids->Commit());
    }
    return out->Commit();
  };
}

}  // namespace
PGRAPH_COMMAND(export_cmd, "export",
               "Write store contents (neighbourhoods, embeddings, ...) to files",
               Setup);
}  // namespace pgraph::tools
