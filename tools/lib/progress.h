#pragma once
// Progress reporting for long work: on a terminal, one self-overwriting line with count,
// rate and ETA; otherwise a plain log line at most every few seconds. Thread-safe: Add()
// may be called from many threads (it only touches an atomic on the fast path).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace pgraph::tools {

class Progress {
 public:
  // `total` 0 means unknown (no ETA). `unit` names what is counted ("edges", "items").
  Progress(std::string label, std::uint64_t total, std::string unit, bool enabled = true);
  ~Progress();
  void Add(std::uint64_t n);
  void Set(std::uint64_t done);
  // Prints the final line (count, elapsed, mean rate).
  void Finish();
  double elapsed_seconds() const;

 private:
  void MaybePrint(bool force);
  std::string label_, unit_;
  std::uint64_t total_;
  bool enabled_, tty_, finished_ = false;
  std::atomic<std::uint64_t> done_{0};
  std::atomic<std::int64_t> next_print_ns_{0};
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;  // guards printing
};

// "1.2M", "950k", "12".
std::string HumanCount(double v);

}  // namespace pgraph::tools
