#include "storage/ingest/features.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>

#include "storage/ingest/line_reader.h"

namespace pgraph::storage {

namespace {

std::string Quote(std::string_view s) {
  if (s.size() > 40) return "'" + std::string(s.substr(0, 40)) + "...'";
  return "'" + std::string(s) + "'";
}

bool IsSep(char c) { return c == ' ' || c == '\t' || c == ','; }

Status Missing(const IngestOptions& o, const IdTable& items, std::vector<std::uint8_t>& present,
               FeatureMatrix* m) {
  std::uint64_t n = items.size(), missing = 0;
  NodeId first = kInvalidNode;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!present[i]) {
      if (first == kInvalidNode) first = static_cast<NodeId>(i);
      ++missing;
    }
  }
  if (missing == 0) return Status::OK();
  if (o.missing_features == MissingFeatures::kError) {
    std::string name;
    items.AppendName(first, &name);
    return Status::InvalidArgument(
        "'" + o.features_path + "': " + std::to_string(missing) + " of " + std::to_string(n) +
        " items have no feature row (first: " + Quote(name) +
        "); add them, or use --missing-features zero|mean");
  }
  std::vector<double> mean(m->dim, 0.0);
  if (o.missing_features == MissingFeatures::kMean && missing < n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      if (!present[i]) continue;
      for (std::uint64_t d = 0; d < m->dim; ++d) mean[d] += m->values[i * m->dim + d];
    }
    for (auto& v : mean) v /= static_cast<double>(n - missing);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    if (present[i]) continue;
    for (std::uint64_t d = 0; d < m->dim; ++d) m->values[i * m->dim + d] = static_cast<float>(mean[d]);
  }
  m->filled = missing;
  return Status::OK();
}

Result<FeatureMatrix> LoadTsv(const IngestOptions& o, IdTable& items) {
  PGRAPH_ASSIGN_OR_RETURN(auto reader, LineReader::Open(o.features_path));
  FeatureMatrix m;
  std::vector<std::uint8_t> present(items.size(), 0);
  std::uint64_t line_no = 0;
  std::vector<float> row;
  const std::string& file = o.features_path;
  auto where = [&](std::uint64_t line) { return "'" + file + "' line " + std::to_string(line); };
  for (;;) {
    PGRAPH_ASSIGN_OR_RETURN(std::string_view block, reader->Next());
    if (block.empty()) break;
    std::size_t pos = 0;
    while (pos < block.size()) {
      std::string_view line = NextLine(block, &pos);
      ++line_no;
      if (IsBlankOrComment(line)) continue;
      std::size_t b = line.find_first_not_of(" \t");
      std::size_t e = b;
      while (e < line.size() && line[e] != '\t' && line[e] != ',' && line[e] != ' ') ++e;
      std::string_view id = line.substr(b, e - b);
      row.clear();
      std::size_t p = e;
      while (p < line.size()) {
        while (p < line.size() && IsSep(line[p])) ++p;
        if (p >= line.size()) break;
        std::size_t q = p;
        while (q < line.size() && !IsSep(line[q])) ++q;
        std::string_view tok = line.substr(p, q - p);
        float v = 0;
        auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
        bool special = tok == "nan" || tok == "NaN" || tok == "inf" || tok == "-inf" ||
                       tok == "Inf" || tok == "-Inf";
        if ((r.ec != std::errc() || r.ptr != tok.data() + tok.size()) && !special) {
          if (line_no == 1 && m.dim == 0 && row.empty()) break;  // a header line
          return Status::InvalidArgument(where(line_no) + ": feature value " +
                                         std::to_string(row.size() + 1) + " is not a number: " +
                                         Quote(tok));
        }
        if (special || !std::isfinite(v)) {
          return Status::InvalidArgument(where(line_no) + ": feature value " +
                                         std::to_string(row.size() + 1) + " is NaN or infinite");
        }
        row.push_back(v);
        p = q;
      }
      if (row.empty()) {
        if (line_no == 1) continue;  // header
        return Status::InvalidArgument(where(line_no) + ": no feature values after item " + Quote(id));
      }
      if (m.dim == 0) {
        m.dim = row.size();
        m.values.assign(items.size() * m.dim, 0.0f);
      } else if (row.size() != m.dim) {
        return Status::InvalidArgument(where(line_no) + ": expected " + std::to_string(m.dim) +
                                       " feature values (the dimension of the first row), got " +
                                       std::to_string(row.size()));
      }
      NodeId item = items.Find(id);
      if (item == kInvalidNode) {
        if (!o.isolated_items) {
          return Status::InvalidArgument(where(line_no) + ": feature row for unknown item " +
                                         Quote(id) +
                                         " (not in the edge list; --isolated-items adds such items)");
        }
        item = items.Intern(id);  // a cold-start item: features, no edges yet
        m.values.resize(items.size() * m.dim, 0.0f);
        present.resize(items.size(), 0);
      }
      if (present[item]) {
        return Status::InvalidArgument(where(line_no) + ": duplicate feature row for item " + Quote(id));
      }
      present[item] = 1;
      std::memcpy(&m.values[static_cast<std::size_t>(item) * m.dim], row.data(), m.dim * 4);
    }
  }
  if (m.dim == 0) return Status::InvalidArgument("'" + file + "': no feature rows (empty input)");
  PGRAPH_RETURN_IF_ERROR(Missing(o, items, present, &m));
  return m;
}

// Parses the header dict of a .npy file: descr, fortran_order, shape (2-D).
Status ParseNpyHeader(const std::string& path, std::string_view h, std::uint64_t* rows,
                      std::uint64_t* cols) {
  auto field = [&](std::string_view key) -> std::string_view {
    std::size_t k = h.find(key);
    if (k == std::string_view::npos) return {};
    std::size_t colon = h.find(':', k);
    if (colon == std::string_view::npos) return {};
    return h.substr(colon + 1);
  };
  std::string_view descr = field("'descr'");
  std::size_t q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  std::string dt = q1 == std::string_view::npos ? "" : std::string(descr.substr(q1 + 1, q2 - q1 - 1));
  if (dt != "<f4" && dt != "=f4" && dt != "f4") {
    return Status::InvalidArgument("'" + path + "': dtype '" + dt + "', expected float32 ('<f4')");
  }
  std::string_view fo = field("'fortran_order'");
  if (fo.substr(0, 10).find("True") != std::string_view::npos) {
    return Status::InvalidArgument("'" + path + "': Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  }
  std::string_view shape = field("'shape'");
  std::size_t open = shape.find('('), close = shape.find(')');
  if (open == std::string_view::npos || close == std::string_view::npos) {
    return Status::InvalidArgument("'" + path + "': no shape in header");
  }
  std::vector<std::uint64_t> dims;
  std::string_view inner = shape.substr(open + 1, close - open - 1);
  std::size_t p = 0;
  while (p < inner.size()) {
    while (p < inner.size() && (inner[p] == ' ' || inner[p] == ',')) ++p;
    if (p >= inner.size()) break;
    std::uint64_t v = 0;
    auto r = std::from_chars(inner.data() + p, inner.data() + inner.size(), v);
    if (r.ec != std::errc()) return Status::InvalidArgument("'" + path + "': bad shape");
    dims.push_back(v);
    p = static_cast<std::size_t>(r.ptr - inner.data());
  }
  if (dims.size() != 2) {
    return Status::InvalidArgument("'" + path + "': shape has " + std::to_string(dims.size()) +
                                   " dimensions, expected 2 (items, features)");
  }
  *rows = dims[0];
  *cols = dims[1];
  return Status::OK();
}

Result<FeatureMatrix> LoadNpy(const IngestOptions& o, IdTable& items) {
  const std::string& path = o.features_path;
  if (o.feature_ids_path.empty()) {
    return Status::InvalidArgument("'" + path + "': .npy features need --feature-ids FILE (one item id per row)");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("file not found: '" + path + "'");
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    return Status::InvalidArgument("'" + path + "': not a .npy file (bad magic)");
  }
  std::uint32_t header_len = 0;
  if (magic[6] == 1) {
    std::uint16_t l = 0;
    f.read(reinterpret_cast<char*>(&l), 2);
    header_len = l;
  } else {
    f.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  f.read(header.data(), header_len);
  if (!f) return Status::InvalidArgument("'" + path + "': truncated header");
  std::uint64_t rows = 0, cols = 0;
  PGRAPH_RETURN_IF_ERROR(ParseNpyHeader(path, header, &rows, &cols));
  if (cols == 0 || rows == 0) return Status::InvalidArgument("'" + path + "': empty matrix");

  PGRAPH_ASSIGN_OR_RETURN(auto ids, LineReader::Open(o.feature_ids_path));
  std::vector<NodeId> row_item;
  std::uint64_t line_no = 0;
  for (;;) {
    PGRAPH_ASSIGN_OR_RETURN(std::string_view block, ids->Next());
    if (block.empty()) break;
    std::size_t pos = 0;
    while (pos < block.size()) {
      std::string_view line = NextLine(block, &pos);
      ++line_no;
      if (line.empty()) continue;
      NodeId item = items.Find(line);
      if (item == kInvalidNode) {
        if (!o.isolated_items) {
          return Status::InvalidArgument("'" + o.feature_ids_path + "' line " + std::to_string(line_no) +
                                         ": unknown item " + Quote(line) +
                                         " (not in the edge list; --isolated-items adds such items)");
        }
        item = items.Intern(line);
      }
      row_item.push_back(item);
    }
  }
  if (row_item.size() != rows) {
    return Status::InvalidArgument("'" + path + "' has " + std::to_string(rows) + " rows but '" +
                                   o.feature_ids_path + "' lists " + std::to_string(row_item.size()) + " ids");
  }
  FeatureMatrix m;
  m.dim = cols;
  m.values.assign(items.size() * cols, 0.0f);
  std::vector<std::uint8_t> present(items.size(), 0);
  std::vector<float> row(cols);
  for (std::uint64_t r = 0; r < rows; ++r) {
    f.read(reinterpret_cast<char*>(row.data()), static_cast<std::streamsize>(cols * 4));
    if (!f) return Status::InvalidArgument("'" + path + "': data shorter than its shape says");
    for (std::uint64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(row[c])) {
        return Status::InvalidArgument("'" + path + "': row " + std::to_string(r) + " column " +
                                       std::to_string(c) + " is NaN or infinite");
      }
    }
    NodeId item = row_item[r];
    if (present[item]) {
      return Status::InvalidArgument("'" + o.feature_ids_path + "': duplicate feature row for item at row " +
                                     std::to_string(r));
    }
    present[item] = 1;
    std::memcpy(&m.values[static_cast<std::size_t>(item) * cols], row.data(), cols * 4);
  }
  PGRAPH_RETURN_IF_ERROR(Missing(o, items, present, &m));
  return m;
}

}  // namespace

Result<FeatureMatrix> LoadFeatures(const IngestOptions& options, IdTable& items) {
  const std::string& p = options.features_path;
  if (p.size() >= 4 && p.compare(p.size() - 4, 4, ".npy") == 0) return LoadNpy(options, items);
  return LoadTsv(options, items);
}

}  // namespace pgraph::storage
