//! The build benchmark (`bench/build` runs it; ignored in the test suite, as timings on a
//! shared machine are not assertions): the same 8-step Dockerfile built cold (`--no-cache`)
//! and warm (every step from the cache) by our engine and by dockerd's classic builder
//! (`DOCKER_BUILDKIT=0`), side by side in one run, TRIALS times each; medians and ratios.
//! Goals (issue 13): cold <= 1/3 of dockerd's time, warm <= 1/5.
mod common;
use common::*;
use std::time::Instant;

const DOCKERFILE: &str = "FROM busybox\nENV APP=/app\nWORKDIR /app\nCOPY files/ ./files/\n\
RUN cat files/* > all.txt\nRUN echo built > /built\nLABEL bench=build\nCMD [\"cat\", \"/app/all.txt\"]\n";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (cold, warm) medians in ms.
fn measure(e: &Engine, ctx: &str, trials: usize) -> (f64, f64) {
    let build = |extra: &str| {
        let t = Instant::now();
        let o = e.sh(&format!("DOCKER_BUILDKIT=0 docker build -q {extra} -t bench-build {ctx} 2>&1"));
        e.expect_ok(&o);
        t.elapsed().as_secs_f64() * 1000.0
    };
    build(""); // warm-up: the base image's first use
    let cold: Vec<f64> = (0..trials).map(|_| build("--no-cache")).collect();
    let warm: Vec<f64> = (0..trials).map(|_| build("")).collect();
    (median(cold), median(warm))
}

#[test]
#[ignore = "benchmark: run by bench/build"]
fn build_cold_and_warm_next_to_dockerd() {
    require_root!();
    let trials: usize = std::env::var("TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(5);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::create_dir_all(ctx.path().join("files")).unwrap();
    for i in 0..20 {
        std::fs::write(ctx.path().join(format!("files/f{i}.txt")), format!("file {i}\n").repeat(50)).unwrap();
    }
    let dir = ctx.path().display().to_string();
    let ours = {
        let e = engine_with_busybox();
        measure(&e, &dir, trials)
    };
    let theirs = {
        let mut o = opts();
        o.dockerd = true;
        let e = Engine::start_with(o);
        e.load_busybox();
        measure(&e, &dir, trials)
    };
    println!("build (8 steps, {trials} trials, median)   flotilla      dockerd   ratio   goal");
    println!("cold (--no-cache)                  {:>9.1} ms {:>9.1} ms   {:.2}   <= 0.33", ours.0, theirs.0, ours.0 / theirs.0);
    println!("warm (all cache hits)              {:>9.1} ms {:>9.1} ms   {:.2}   <= 0.20", ours.1, theirs.1, ours.1 / theirs.1);
}
