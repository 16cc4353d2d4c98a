//! Transparent huge pages for the simulator's heap.
//!
//! A million simulated nodes keep about 12 GB of small allocations, and every event lands on
//! a node at random: with 4 KB pages nearly every one of its memory reads also misses the TLB
//! and walks the page table. glibc's allocator asks the kernel for transparent huge pages
//! (2 MB) when the tunable `glibc.malloc.hugetlb=1` is set, but it reads tunables only when a
//! process starts, so `dht sim` and `dht compare` start themselves again once with it set.
//! Where the kernel has transparent huge pages off, or the C library is not glibc, this
//! changes nothing. Set `DHT_SIM_HUGE_PAGES=0` to run without it.
//!
//! The same start sets a second tunable: the per-thread cache keeps up to 256 freed chunks of
//! each small size instead of 7. A simulated node frees a datagram, a request record or a
//! lookup's buffers that another node allocates again an event later, and with 7 most of those
//! frees went down the allocator's slow path (merging free chunks) while the next allocation
//! split them again (measured in docs/benchmarks.md, step 13).

/// The tunables (glibc 2.35 and later): `madvise` the heap for transparent huge pages, and
/// 256 chunks per size in the per-thread cache.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNABLE: &str = "glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=256";

/// `0` turns the re-execution off; the re-executed process sees `1`.
pub const ENV: &str = "DHT_SIM_HUGE_PAGES";

/// Replaces this process by the same command with the tunable set, unless it is set already,
/// was turned off, or this is not Linux with glibc. Returns only if it did not re-execute.
pub fn reexec_with_huge_pages() {
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
            TUNABLE.to_string()
        } else {
            format!("{current}:{TUNABLE}")
        };
        // `exec` returns only on failure; the run then goes on here, without huge pages.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env(ENV, "1")
            .exec();
    }
}
