//! agent crate: built out by its issue.
