//! provision crate: built out by its issue.
