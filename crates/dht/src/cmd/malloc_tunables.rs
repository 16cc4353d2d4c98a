//! glibc allocator tunables for the simulator's heap: transparent huge pages and a larger
//! per-thread cache.
//!
//! A million simulated nodes keep about 10 GB of small allocations, and every event lands on
//! a node at random: with 4 KB pages nearly every one of its memory reads also misses the TLB
//! and walks the page table. glibc's allocator asks the kernel for transparent huge pages
//! (2 MB) when the tunable `glibc.malloc.hugetlb=1` is set. The second tunable lets the
//! per-thread cache keep up to 256 freed chunks of each small size instead of 7: a simulated
//! node frees a datagram or a request record that another node allocates again an event
//! later, and with 7 many of those frees went down the allocator's slow path (merging free
//! chunks) while the next allocation split them again (docs/benchmarks.md, step 13).
//!
//! glibc reads tunables only when a process starts, so `dht sim` and `dht compare` start
//! themselves again once with them set. Where the kernel has transparent huge pages off, or
//! the C library is not glibc, this changes nothing. Set `DHT_SIM_HUGE_PAGES=0` (the name
//! predates the second tunable) to run without either.

/// The tunables (glibc 2.35 and later).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNABLES: &str = "glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=256";

/// `0` turns the re-execution off; the re-executed process sees `1`.
pub const ENV: &str = "DHT_SIM_HUGE_PAGES";

/// Replaces this process by the same command with the tunables added to `GLIBC_TUNABLES`,
/// unless that already names `glibc.malloc.hugetlb` (the caller's own choice stands), the
/// re-execution was turned off, or this is not Linux with glibc. Returns only if it did not
/// re-execute.
pub fn reexec_with_malloc_tunables() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(ENV).is_some() {
            return;
        }
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains("glibc.malloc.hugetlb") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let tunables = if current.is_empty() {
            TUNABLES.to_string()
        } else {
            format!("{current}:{TUNABLES}")
        };
        // `exec` returns only on failure; the run then goes on here, without the tunables.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env(ENV, "1")
            .exec();
    }
}
