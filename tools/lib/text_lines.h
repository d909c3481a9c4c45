#pragma once
// Line-by-line reading of small text inputs (pair lists, query lists, data set files) for
// the tools. Bulk inputs go through storage's ingest instead.

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace pgraph::tools {

// Calls f(line, number) for every line of `path` ("-" = standard input), the newline and a
// trailing '\r' removed, numbers from 1; stops at the first non-OK Status f returns.
// NotFound when the file cannot be opened; IOError on a read error.
template <typename F>
Status ForEachTextLine(const std::string& path, F&& f) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return Status::NotFound("cannot open '" + path + "'");
    in = &file;
  }
  std::string line;
  std::uint64_t number = 0;
  while (std::getline(*in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    PGRAPH_RETURN_IF_ERROR(f(std::string_view(line), number));
  }
  if (in->bad()) return Status::IOError("error reading '" + path + "'");
  return Status::OK();
}

// True for lines without data: blank (spaces and tabs) or a '#' comment.
inline bool IsBlankOrCommentLine(std::string_view line) {
  const std::size_t first = line.find_first_not_of(" \t");
  return first == std::string_view::npos || line[first] == '#';
}

}  // namespace pgraph::tools
