//! Big short-lived buffers without a page fault per 4 KiB.
//!
//! On the machine Spiral is measured on (a VM), faulting in a fresh 4 KiB page costs about
//! 15 µs: a 100 MB scratch vector costs a third of a second before any work is done, and
//! glibc gives vectors that large fresh pages (mmap) every time. Checkpoints build several
//! such vectors under the engine lock, so they ask for transparent huge pages (2 MiB each,
//! where the kernel allows them: `madvise` mode is the common default), which fault in 512
//! times less often.

/// An empty vector with room for `capacity` items, backed by huge pages where possible.
pub fn vec_huge<T>(capacity: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    advise_huge_pages(&mut v);
    v
}

/// Asks the kernel to back `v`'s allocation with transparent huge pages (a hint: contents
/// and behaviour are unchanged, only how many faults filling it takes).
#[cfg(target_os = "linux")]
pub fn advise_huge_pages<T>(v: &mut Vec<T>) {
    const HUGE: usize = 2 << 20;
    let start = v.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE);
    let end = (start + v.capacity() * size_of::<T>()) / HUGE * HUGE;
    if end > aligned {
        // SAFETY: the range lies inside the Vec's own allocation; MADV_HUGEPAGE only changes
        // how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn advise_huge_pages<T>(_: &mut Vec<T>) {}

/// Makes glibc hand large freed blocks back to the kernel at once, for a process whose peak
/// resident memory is a reported figure (`spiral replay`, issue #2).
///
/// By default glibc raises its mmap threshold to the size of each large block freed, up to
/// 32 MiB, so the engine's tables, which grow by reallocation, soon come from the heap, and
/// a table's old copy, freed when it grows, stays resident as a hole the heap cannot give
/// back: 3 MB of a 1 M event replay's peak. Pinning the threshold keeps blocks of 128 KiB
/// and more in their own mappings, unmapped on free and grown in place by `mremap`. Replay
/// time did not change measurably (docs/performance.md). Not applied to the live service,
/// whose Kafka client allocates fetch buffers of that size all the time.
pub fn return_freed_memory_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under glibc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// Starts loading the cache line of `item`, so a read soon after does not wait for memory.
/// A hint only: it never faults and has no effect on memory.
#[inline]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint with no effect on memory; the address is a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_vector_is_an_ordinary_vector() {
        let mut v: Vec<u64> = vec_huge(1 << 20);
        assert!(v.capacity() >= 1 << 20);
        v.extend(0..1 << 20);
        assert_eq!(v.iter().sum::<u64>(), ((1u64 << 20) - 1) * (1 << 20) / 2);
        let mut small: Vec<u8> = vec_huge(3);
        small.push(1);
        assert_eq!(small, [1]);
    }
}
