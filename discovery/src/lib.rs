//! discovery crate: built out by its issue.
