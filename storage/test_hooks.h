#pragma once
// Deterministic crash points for tests: when the environment variable PGRAPH_TEST_STOP_AT
// names a point, the process stops itself there (SIGSTOP), so a test can SIGKILL it at
// exactly that moment instead of guessing with timers. Private to storage/.

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace pgraph::storage {

inline void TestStopPoint(const char* name) {
  const char* at = std::getenv("PGRAPH_TEST_STOP_AT");
  if (at != nullptr && std::strcmp(at, name) == 0) raise(SIGSTOP);
}

}  // namespace pgraph::storage
