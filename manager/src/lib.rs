//! manager crate: built out by its issue.
