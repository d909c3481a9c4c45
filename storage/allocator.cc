#include "storage/allocator.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pgraph::storage {

void ReuseFreedMemory() {
#if defined(__GLIBC__)
  // Setting either fixes both (glibc stops adjusting them dynamically).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace pgraph::storage
