//! `machine`: Docker Machine for Flotilla hosts (the provision issue builds it out).
use clap::Parser;

#[derive(Parser)]
#[command(name = "machine", version, about = "Create and manage Flotilla hosts")]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!("machine {}", env!("CARGO_PKG_VERSION"));
}
