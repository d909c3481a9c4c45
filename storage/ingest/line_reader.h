#pragma once
// LineReader: reads a text file as large blocks of whole lines. Plain files are memory-
// mapped (no copy); "-" is standard input; names ending in .gz or .zst are decompressed on
// the fly. Private to storage/ingest. Not thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace pgraph::storage {

// The line of `text` starting at *pos, without its '\n' or a trailing '\r'; advances *pos
// past the newline. Requires: *pos < text.size().
inline std::string_view NextLine(std::string_view text, std::size_t* pos) {
  std::size_t nl = text.find('\n', *pos);
  if (nl == std::string_view::npos) nl = text.size();
  std::string_view line = text.substr(*pos, nl - *pos);
  *pos = nl + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// True for lines that hold no data: blank (spaces and tabs only) or a '#' comment.
inline bool IsBlankOrComment(std::string_view line) {
  std::size_t b = line.find_first_not_of(" \t");
  return b == std::string_view::npos || line[b] == '#';
}

class LineReader {
 public:
  virtual ~LineReader() = default;
  // NotFound naming the file when it does not exist; IOError when unreadable.
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  // The next block of whole lines (the last line of the input may lack its newline).
  // An empty view means the end of input. Valid until the next call, or the one after when
  // blocks_stay_valid().
  virtual Result<std::string_view> Next() = 0;
  // True when a block stays readable after the following Next() (memory-mapped files);
  // false for streams, whose buffer Next() reuses.
  virtual bool blocks_stay_valid() const = 0;
  // Total bytes when known (plain files), else 0; and bytes consumed so far.
  virtual std::uint64_t size_hint() const = 0;
  virtual std::uint64_t consumed() const = 0;
};

}  // namespace pgraph::storage
