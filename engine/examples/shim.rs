//! The shim entry point as a standalone binary, for the runtime integration tests
//! (`<this> shim <state_dir>` behaves exactly like `swarm shim <state_dir>`).
fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("shim") {
        args.remove(0);
    }
    std::process::exit(engine::shim::main(args));
}
