//! provision: Docker Machine for Flotilla — the store of machines, their TLS material, SSH,
//! drivers (generic, none, local), the provisioner that turns a host into a TLS-secured engine
//! (and swarm agent/manager), and the `machine` commands.
//!
//! ```text
//! commands::create ─► store (reserve NAME, config.json v3) ─► certs::bootstrap (locked CA)
//!        │                 driver::{generic,none,local}.create  (local: nshost = netns + sshd)
//!        ├─► provisioner::engine_check: `swarm check-engine <engine flags>` (before anything)
//!        └─► ssh::Ssh2Client::connect_retry ─► provisioner::Provisioner::provision
//!              (host key: hostkey::KnownHosts, trusted on first use, then pinned)
//!              detect OS · hostname · upload swarm + certs + /etc/flotilla/*.cmd (by hash)
//!              · ctl.sh start|restart engine [manager] [agent] (systemd or supervisor)
//!              · wait for GET /_ping over TLS (tlsclient)
//! ```
//! On the host: `/usr/local/bin/swarm`, `/etc/flotilla/{ca,server,server-key}.pem`,
//! `/etc/flotilla/{engine,agent,manager}.{cmd,env}` (the command lines), `ctl.sh` and
//! `supervise.sh`; units `flotilla-{engine,agent,manager}.service` where systemd is PID 1;
//! logs in `/var/log/flotilla/` (supervisor) or the journal.
pub mod certs;
pub mod commands;
pub mod driver;
pub mod fsutil;
pub mod host;
pub mod hostkey;
pub mod nshost;
pub mod provisioner;
pub mod ssh;
pub mod store;
pub mod template;
pub mod tlsclient;
