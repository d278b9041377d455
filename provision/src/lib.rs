//! provision: Docker Machine for Flotilla — the store of machines, their TLS material, SSH,
//! drivers (generic, none, local), the provisioner that turns a host into a TLS-secured engine
//! (and swarm agent/manager), and the `machine` commands.
pub mod certs;
pub mod fsutil;
pub mod host;
pub mod ssh;
pub mod store;
pub mod driver;
pub mod nshost;
pub mod tlsclient;
pub mod provisioner;
pub mod template;
pub mod commands;
