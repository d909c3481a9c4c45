// pgraph::storage::ReuseFreedMemory — how the process's allocator treats large freed blocks.
//
// Bulk work writes through the store in batches of tens of MiB: the column writer's pending
// rows and encoded chunks, and LMDB's dirty pages (one malloc per 1 MiB chunk, freed at each
// commit). glibc's defaults return such blocks to the kernel as soon as they are freed
// (mmap for blocks over its dynamic threshold, heap trimming above 128 KiB of free top), so
// every batch faults in and clears fresh pages again: ~0.5 s per GiB on the VMs measured,
// 10-15% of a 1M-item inference (docs/BENCHMARKS.md, "infer").
//
// ReuseFreedMemory() makes malloc serve blocks up to 32 MiB (glibc's largest mmap threshold)
// from its heaps and keep up to 1 GiB of freed memory for reuse. Larger blocks (the arrays a
// memory budget sizes) still come from mmap and go back when freed. Peak memory does not grow:
// what is kept was in use before. Call once, at the start of main().
// Does nothing where the C library is not glibc.
#pragma once

namespace pgraph::storage {

void ReuseFreedMemory();

}  // namespace pgraph::storage
