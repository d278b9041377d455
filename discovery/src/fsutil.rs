//! Atomic state writes: the shared `fsutil` crate (one helper for every crate).
pub use ::fsutil::{remove_durable, write_atomic, write_atomic_mode};

/// Removes leftover `*.tmp` files of interrupted writes in `dir` (best effort).
pub fn remove_stale_tmp(dir: &std::path::Path) {
    let _ = ::fsutil::remove_stale_tmp(dir);
}
