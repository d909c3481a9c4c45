#include "storage/blas_runtime.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string_view>

namespace pgraph::storage {
namespace {

// OpenBLAS's own entry points, looked up at run time so that any other libblas still works.
using CoreNameFn = char* (*)();
using VoidFn = void (*)();

std::string Select() {
  auto corename = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (corename == nullptr) return "";
  const std::string chosen = corename();
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return chosen;
  // Only the generic fallbacks are replaced: a model OpenBLAS knows keeps its own choice.
  const std::string_view fallbacks[] = {"Prescott", "Core2", "Penryn", "Nehalem", "Unknown"};
  bool fallback = false;
  for (std::string_view f : fallbacks) fallback = fallback || chosen == f;
  if (!fallback) return chosen;
  const char* target = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    target = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    target = "Haswell";
  }
  auto quit = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (target == nullptr || quit == nullptr || init == nullptr) return chosen;
  // gotoblas_dynamic_init() reads OPENBLAS_CORETYPE and selects again; quit() only clears
  // the selection, so the thread pool and buffers stay as they are.
  setenv("OPENBLAS_CORETYPE", target, /*overwrite=*/0);
  quit();
  init();
  return corename();
}

}  // namespace

std::string SelectBlasKernels() {
  static std::once_flag once;
  static std::string result;
  std::call_once(once, [] { result = Select(); });
  return result;
}

int SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  // Looked up once found (dlsym walks every loaded library: libtorch loads ~290), and again
  // while not: CblasSgemm may load the library later.
  static std::atomic<SetFn> set_fn{nullptr};
  static std::atomic<GetFn> get_fn{nullptr};
  if (set_fn.load() == nullptr || get_fn.load() == nullptr) {
    set_fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    get_fn = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  }
  const SetFn set = set_fn.load();
  const GetFn get = get_fn.load();
  if (set == nullptr || get == nullptr) return 0;
  const int before = get();
  if (before != n) set(n);
  return before;
}

SgemmFn CblasSgemm() {
  static const SgemmFn fn = [] {
    void* sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
    if (sym == nullptr) {
      // Global, so that the OpenBLAS entry points above find it too. Never closed.
      if (dlopen("libblas.so.3", RTLD_NOW | RTLD_GLOBAL) == nullptr) return SgemmFn{nullptr};
      sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
    }
    SelectBlasKernels();
    return reinterpret_cast<SgemmFn>(sym);
  }();
  return fn;
}

}  // namespace pgraph::storage
