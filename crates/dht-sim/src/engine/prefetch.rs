//! A cache hint for the engine's hot path (docs/simulator.md, Engine).

/// A hint to load the cache line at `p` ahead of its use; it does nothing off x86-64.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing the program sees and cannot fault,
    // whatever the address; SSE, which it needs, is part of every x86-64 processor.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints to load the `len` bytes from `p`: every cache line that starts within them, counted
/// from `p`.
#[inline(always)]
pub fn prefetch_lines(p: *const u8, len: usize) {
    for offset in (0..len).step_by(64) {
        prefetch(p.wrapping_add(offset));
    }
}
