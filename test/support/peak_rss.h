#pragma once
// Anonymous memory of this process, for the tests that check a memory budget (infer and
// train): RssAnon now, and its peak while a PeakSampler lives.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

namespace pgraph::test {

// RssAnon of this process in bytes (0 when /proc is unavailable).
inline std::uint64_t RssAnonBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * 1024;
  }
  return 0;
}

// Samples RssAnon every millisecond while alive (a helper thread; the tests assert on the
// peak, never on time).
class PeakSampler {
 public:
  PeakSampler()
      : thread_([this] {
          while (!stop_.load()) {
            std::uint64_t v = RssAnonBytes();
            if (v > peak_.load()) peak_.store(v);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }) {}
  ~PeakSampler() { Stop(); }
  PeakSampler(const PeakSampler&) = delete;
  PeakSampler& operator=(const PeakSampler&) = delete;
  // Stops sampling; the peak seen.
  std::uint64_t Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return peak_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> peak_{0};
  std::thread thread_;
};

}  // namespace pgraph::test
