//! Links `swarm` as a position-dependent executable: a PIE's relocated read-only data
//! (`.data.rel.ro`, ~1 MB for this binary) is written by the dynamic loader at startup and so
//! becomes private memory in every process; at a fixed address it stays shared page cache.
//! That is most of the memory of each per-container `swarm shim` (bench/shim-mem).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=swarm=-no-pie");
    }
}
