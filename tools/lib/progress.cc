#include "tools/lib/progress.h"

#include <unistd.h>

#include <cstdio>

namespace pgraph::tools {

std::string HumanCount(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

Progress::Progress(std::string label, std::uint64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {
  next_print_ns_ = tty_ ? 200'000'000 : 5'000'000'000;
}

Progress::~Progress() {
  if (!finished_ && enabled_ && tty_) std::fputc('\n', stderr);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Add(std::uint64_t n) {
  done_.fetch_add(n, std::memory_order_relaxed);
  MaybePrint(false);
}

void Progress::Set(std::uint64_t done) {
  done_.store(done, std::memory_order_relaxed);
  MaybePrint(false);
}

void Progress::MaybePrint(bool force) {
  if (!enabled_) return;
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - start_).count();
  if (!force && now_ns < next_print_ns_.load(std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  next_print_ns_ = now_ns + (tty_ ? 200'000'000 : 5'000'000'000);
  double secs = now_ns / 1e9;
  double done = static_cast<double>(done_.load());
  double rate = secs > 0 ? done / secs : 0;
  char eta[64] = "";
  if (total_ > 0 && rate > 0 && done < total_) {
    std::snprintf(eta, sizeof eta, ", ETA %.0fs", (total_ - done) / rate);
  }
  char pct[32] = "";
  if (total_ > 0) std::snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * done / total_);
  std::fprintf(stderr, "%s%s: %s %s%s, %s %s/s%s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               HumanCount(done).c_str(), unit_.c_str(), pct, HumanCount(rate).c_str(),
               unit_.c_str(), eta, tty_ ? "" : "\n");
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  double secs = elapsed_seconds();
  double done = static_cast<double>(done_.load());
  std::fprintf(stderr, "%s%s: %s %s in %.2fs (%s %s/s)\n", tty_ ? "\r\033[K" : "",
               label_.c_str(), HumanCount(done).c_str(), unit_.c_str(), secs,
               HumanCount(secs > 0 ? done / secs : 0).c_str(), unit_.c_str());
}

}  // namespace pgraph::tools
