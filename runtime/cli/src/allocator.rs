//! The global allocator: mimalloc (default feature), told to keep the pages it frees.

/// mimalloc: steady RSS over long runs where glibc's per-thread arenas keep growing, and no
/// global lock as with musl's allocator in the static build.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps the memory mimalloc frees mapped instead of handing it back to the OS after a delay.
///
/// A network's intermediate tensors are freed at the end of each inference and allocated
/// again by the next: handed back, every frame faulted them in again and the kernel zeroed
/// them (its `clear_page` took 13-18 % of the inference thread's time on NanoDet-m at two
/// threads, about 70 page faults per frame). Kept, the process stays at the size of one frame's
/// working set, which is what it needs anyway. Call it first thing in `main`.
pub fn keep_freed_pages() {
    #[cfg(feature = "mimalloc")]
    {
        use std::ffi::{c_int, c_long};
        extern "C" {
            /// mimalloc's option setter (`mi_option_set`, in the library the crate links).
            fn mi_option_set(option: c_int, value: c_long);
        }
        /// `mi_option_purge_delay` (the same index in mimalloc 2 and 3); -1: never purge.
        const PURGE_DELAY: c_int = 15;
        // SAFETY: a plain setter of a global option, valid at any time; the value is in range.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}
