#include "train/blas_threads.h"

#include <dlfcn.h>

namespace pgraph::train {

int SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  // Looked up once: dlsym walks every loaded library (libtorch loads ~290).
  static const auto set =
      reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  static const auto get =
      reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return 0;
  const int before = get();
  if (before != n) set(n);
  return before;
}

}  // namespace pgraph::train
