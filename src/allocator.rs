//! Makes freed recording buffers go back to the operating system.
//!
//! Part buffers are several MiB each. glibc serves blocks that large with `mmap` at
//! first, but raises its threshold each time such a block is freed (up to 32 MiB), after
//! which the buffers come from the heap and its arenas, where freed memory stays with
//! the process and fragments across worker threads. Measured with `scripts/bench/memory.sh`:
//! 2 workers streaming 2 GiB recordings peaked at 92 MiB against 78 MiB for 100 MiB ones
//! (not flat), and 8 workers at 228 MiB. A fixed threshold of 1 MiB keeps every part
//! buffer in its own mapping, returned on free, so peak memory follows
//! `workers * part_size * (parts_in_flight + 1)` and nothing else (55 and 162 MiB).

/// Fixes glibc's mmap threshold; a no-op with other C libraries.
pub fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once at start, before
    // any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
