// page_touch_bench: what fresh memory costs the first time it is written, the cost behind
// inference's working set (docs/BENCHMARKS.md, infer). Each round maps --mb of anonymous
// memory and writes one byte per 4 KiB page, with plain pages, then with MADV_HUGEPAGE (THP
// in "madvise" mode: the kernel may compact memory first to find huge pages), and reports
// seconds per GiB of each; the minimum and maximum over --rounds show how erratic the
// huge-page case is.
//
//   page_touch_bench [--mb 800] [--rounds 3]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double TouchSeconds(std::size_t bytes, bool huge) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("page_touch_bench: mmap");
    std::exit(1);
  }
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
  volatile char* c = static_cast<char*>(p);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < bytes; i += 4096) c[i] = 1;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  munmap(p, bytes);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mb = 800;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--mb") {
      mb = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (k == "--rounds") {
      rounds = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: page_touch_bench [--mb 800] [--rounds 3]\n");
      return 2;
    }
  }
  if (mb == 0 || rounds < 1) {
    std::fprintf(stderr, "page_touch_bench: --mb and --rounds must be positive\n");
    return 2;
  }
  const std::size_t bytes = mb << 20;
  const double gib = static_cast<double>(bytes) / (1ull << 30);
  for (bool huge : {false, true}) {
    std::vector<double> s;
    for (int r = 0; r < rounds; ++r) s.push_back(TouchSeconds(bytes, huge) / gib);
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    std::printf("%-14s %zu MiB, %d rounds: %.3f s/GiB min, %.3f s/GiB max\n",
                huge ? "MADV_HUGEPAGE" : "plain pages", mb, rounds, *lo, *hi);
  }
  return 0;
}
