//! TLS for TCP listeners, as dockerd's `--tls`/`--tlsverify`: the server presents
//! `--tlscert`/`--tlskey`; with `--tlsverify` every client must show a certificate signed by
//! `--tlscacert`. Plain HTTP and unsigned clients fail the handshake. Shared with the manager.
pub use apiserve::{server_config, TlsError, TlsOptions};
