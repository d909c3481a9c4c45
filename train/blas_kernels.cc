#include "train/blas_kernels.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string_view>

namespace pgraph::train {
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

}  // namespace pgraph::train
