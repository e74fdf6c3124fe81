//! The process's memory.

/// Gives the heap's free pages back to the system. glibc keeps what a phase of many small
/// allocations freed (apt's lists: tens of megabytes in a hundred thousand pieces) in its
/// heap, where it counts towards the process's resident memory until reused; without this
/// the next phase's peak stacks on top of it.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
