#pragma once
// Minimal JSON output helpers for the commands' --json modes.

#include <cstdio>
#include <string>

namespace pgraph::tools {

// `s` with quotes, backslashes and control characters escaped for a JSON string body.
inline std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace pgraph::tools
