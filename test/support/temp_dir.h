#pragma once
// Test helpers: a RAII temporary directory and small file utilities.

#include <cstdio>
#include <string>
#include <string_view>

namespace pgraph::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string Sub(std::string_view name) const;

 private:
  std::string path_;
};

// Writes `content` to `path`, replacing it. Aborts the test binary on failure.
void WriteFile(const std::string& path, std::string_view content);
std::string ReadFile(const std::string& path);

// Runs a shell command line; returns its exit status (or -1) and captures stdout+stderr.
int RunCommand(const std::string& command, std::string* output);

// The directory of the read-only real data sets, or "" when absent.
std::string SharedDataDir();

}  // namespace pgraph::test
