//! The memory allocator of every process that links the kit: mimalloc instead of glibc malloc.
//!
//! Measured on bench/cdc's catch-up (sysbench, 2 cores): with glibc malloc the sink spent 26%
//! of its CPU samples in malloc/free (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`) and
//! another ~12% in the kernel zeroing and faulting in pages that glibc had handed back to the
//! system between groups (the per-thread arena shrinks with `MADV_DONTNEED` and grows again with
//! `mprotect`). Every service parses and builds many short-lived values per message, so the
//! allocator is set once here for all of them.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
