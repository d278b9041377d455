//! `swarm shim`: the per-container supervisor process (no tokio). OWNER: runtime/shim helper.

/// Entry point of `swarm shim <args>`; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    eprintln!("shim: not built yet: {args:?}");
    2
}
