//! The allocator's arenas.
//!
//! glibc gives every thread that allocates while the others hold their arenas an arena of its
//! own, up to eight per core. The server's threads are the runtime's workers and the blocking
//! threads that run database transactions (dozens under load); freed memory stays spread over
//! their arenas and is seldom returned. Measured in `cargo xtask bench` (docs/benchmarks.md):
//! after the push and pull cases the server held 145–174 MiB, and 341–370 MiB with 10,000 idle
//! streams; with as many arenas as cores, 101–130 and 271–286 MiB, throughput within the spread
//! between runs. mimalloc was worse (264 and 525 MiB).
//!
//! An operator's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins.

/// Limits glibc to one arena per core (at least two). Call before any other thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a tunable of the allocator; it is called before the process
    // starts a second thread, so no allocation runs concurrently with it.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other allocators choose their own arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
