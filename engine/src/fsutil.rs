//! Atomic state writes: the shared `fsutil` crate (one helper for every crate).
pub use ::fsutil::{
    create_empty, read_json, remove_stale_tmp, write_atomic, write_json, write_private_json, write_runtime, write_runtime_json,
};
