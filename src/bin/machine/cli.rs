//! `machine`'s command line: Docker Machine's commands, flags and environment variables.
use clap::{Args, Parser, Subcommand};
use provision::certs::CaPaths;
use provision::commands::create::CreateArgs;
use provision::driver::DriverFlags;
use provision::host::{EngineOptions, SwarmOptions};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "machine", about = "Create and manage Flotilla hosts (Docker Machine for Flotilla)")]
pub struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Enable debug mode.
    #[arg(short = 'D', long, global = true, env = "MACHINE_DEBUG")]
    pub debug: bool,
    /// Configures storage path (default ~/.flotilla/machine).
    #[arg(short = 's', long, global = true, env = "MACHINE_STORAGE_PATH")]
    pub storage_path: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// Use the native (libssh2) SSH client instead of the system's ssh.
    #[arg(long, global = true, env = "MACHINE_NATIVE_SSH")]
    pub native_ssh: bool,
    /// The `swarm` binary to install on hosts (default: `swarm` next to this binary).
    #[arg(long, global = true, env = "MACHINE_SWARM_BINARY")]
    pub swarm_binary: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Args, Clone)]
pub struct TlsFlags {
    /// CA to verify remotes against.
    #[arg(long, global = true, env = "MACHINE_TLS_CA_CERT")]
    pub tls_ca_cert: Option<PathBuf>,
    /// Private key to generate certificates.
    #[arg(long, global = true, env = "MACHINE_TLS_CA_KEY")]
    pub tls_ca_key: Option<PathBuf>,
    /// Client cert to use for TLS.
    #[arg(long, global = true, env = "MACHINE_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// Private key used in client TLS auth.
    #[arg(long, global = true, env = "MACHINE_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Print which machine is active.
    Active {
        #[arg(short = 't', long, default_value_t = 10)]
        timeout: u64,
    },
    /// Print the connection config for machine.
    Config {
        name: Option<String>,
        #[arg(long)]
        swarm: bool,
    },
    /// Create a machine.
    Create(Box<CreateFlags>),
    /// Display the commands to set up the environment for the Docker client.
    Env {
        name: Option<String>,
        #[arg(long)]
        swarm: bool,
        /// bash, fish, powershell, cmd, tcsh, emacs (default: from $SHELL).
        #[arg(long)]
        shell: Option<String>,
        #[arg(short = 'u', long)]
        unset: bool,
        #[arg(long)]
        no_proxy: bool,
    },
    /// Inspect information about a machine.
    Inspect {
        name: Option<String>,
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Get the IP address of a machine.
    Ip { names: Vec<String> },
    /// Kill a machine.
    Kill { names: Vec<String> },
    /// List machines.
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        filter: Vec<String>,
        #[arg(short = 't', long, default_value_t = 10)]
        timeout: u64,
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Re-provision existing machines.
    Provision { names: Vec<String> },
    /// Regenerate TLS certificates for a machine.
    RegenerateCerts {
        names: Vec<String>,
        #[arg(short = 'f', long)]
        force: bool,
        /// Also re-issue the client certificate (and the CA when it expires soon).
        #[arg(long)]
        client_certs: bool,
        /// Forget the SSH host key recorded on first use, and trust the one the host presents now.
        #[arg(long)]
        reset_host_key: bool,
    },
    /// Restart a machine.
    Restart { names: Vec<String> },
    /// Remove a machine.
    Rm {
        names: Vec<String>,
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(short = 'y')]
        yes: bool,
    },
    /// Log into or run a command on a machine with SSH.
    #[command(disable_help_flag = true)]
    Ssh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Copy files between machines.
    Scp {
        src: String,
        dst: String,
        #[arg(short = 'r', long)]
        recursive: bool,
        #[arg(short = 'd', long)]
        delta: bool,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Start a machine.
    Start { names: Vec<String> },
    /// Get the status of a machine.
    Status { name: Option<String> },
    /// Stop a machine.
    Stop { names: Vec<String> },
    /// Upgrade a machine to the swarm binary given (re-upload and restart).
    Upgrade { names: Vec<String> },
    /// Get the URL of a machine.
    Url { name: Option<String> },
    /// Show the machine version or a machine's engine version.
    Version { name: Option<String> },
}

#[derive(Args)]
pub struct CreateFlags {
    /// Machine name.
    pub name: Option<String>,
    /// Anything after the name: refused, as Docker Machine does.
    #[arg(hide = true)]
    pub extra: Vec<String>,
    /// Also create this machine, with the same options and in parallel (repeatable).
    #[arg(long, value_name = "NAME")]
    pub also: Vec<String>,
    /// Driver to create machine with: generic, local, none.
    #[arg(short = 'd', long, env = "MACHINE_DRIVER", default_value = "local")]
    pub driver: String,
    /// generic: IP address of the host.
    #[arg(long, env = "GENERIC_IP_ADDRESS")]
    pub generic_ip_address: Option<String>,
    /// generic: SSH user.
    #[arg(long, env = "GENERIC_SSH_USER", default_value = "root")]
    pub generic_ssh_user: String,
    /// generic: SSH private key path (default: ssh-agent, then ~/.ssh).
    #[arg(long, env = "GENERIC_SSH_KEY", default_value = "")]
    pub generic_ssh_key: String,
    /// generic: SSH port.
    #[arg(long, env = "GENERIC_SSH_PORT", default_value_t = 22)]
    pub generic_ssh_port: u16,
    /// Port the engine listens on (TLS).
    #[arg(long, env = "GENERIC_ENGINE_PORT", default_value_t = 2376)]
    pub generic_engine_port: u16,
    /// none: URL of an engine already serving TLS.
    #[arg(long)]
    pub url: Option<String>,
    /// local: bridge the hosts are attached to.
    #[arg(long, env = "LOCAL_BRIDGE", default_value = provision::driver::local::DEFAULT_BRIDGE)]
    pub local_bridge: String,
    /// local: subnet of that bridge (the bridge takes .1).
    #[arg(long, env = "LOCAL_SUBNET", default_value = provision::driver::local::DEFAULT_SUBNET)]
    pub local_subnet: String,
    /// Specify arbitrary flags to include with the created engine in the form flag=value.
    #[arg(long)]
    pub engine_opt: Vec<String>,
    /// Specify insecure registries to allow with the created engine.
    #[arg(long)]
    pub engine_insecure_registry: Vec<String>,
    /// Specify registry mirrors to use.
    #[arg(long, env = "ENGINE_REGISTRY_MIRROR")]
    pub engine_registry_mirror: Vec<String>,
    /// Specify labels for the created engine.
    #[arg(long)]
    pub engine_label: Vec<String>,
    /// Specify a storage driver: overlay2 (or overlay), the one Flotilla's engine has; others are refused.
    #[arg(long, default_value = "")]
    pub engine_storage_driver: String,
    /// Specify environment variables to set in the engine.
    #[arg(long)]
    pub engine_env: Vec<String>,
    /// Cluster store of the engine for overlay networks (etcd://ip:port[,ip:port]/prefix), with
    /// --cluster-advertise at the machine's engine address. Default with --swarm: an etcd:// --swarm-discovery.
    #[arg(long, default_value = "")]
    pub engine_cluster_store: String,
    /// Ignored (the `swarm` binary is uploaded instead of installing Docker).
    #[arg(long, env = "MACHINE_DOCKER_INSTALL_URL", default_value = "")]
    pub engine_install_url: String,
    /// Configure Machine to join a Swarm cluster.
    #[arg(long)]
    pub swarm: bool,
    /// Configure Machine to be a Swarm master.
    #[arg(long)]
    pub swarm_master: bool,
    /// Discovery service to use with Swarm.
    #[arg(long, default_value = "")]
    pub swarm_discovery: String,
    /// Define a default scheduling strategy for Swarm.
    #[arg(long, default_value = "spread")]
    pub swarm_strategy: String,
    /// Define arbitrary flags for the Swarm master.
    #[arg(long)]
    pub swarm_opt: Vec<String>,
    /// Define arbitrary flags for the Swarm join.
    #[arg(long)]
    pub swarm_join_opt: Vec<String>,
    /// ip/socket to listen on for the Swarm master.
    #[arg(long, default_value = provision::host::SWARM_HOST)]
    pub swarm_host: String,
    /// addr to advertise for the Swarm master (default: detect and use the machine IP).
    #[arg(long, default_value = "")]
    pub swarm_addr: String,
    /// Ignored (the swarm binary runs directly, not as an image).
    #[arg(long, env = "MACHINE_SWARM_IMAGE", default_value = "swarm:latest")]
    pub swarm_image: String,
    /// Enable Swarm experimental features.
    #[arg(long)]
    pub swarm_experimental: bool,
    /// Extra SANs for the TLS certificate (repeatable).
    #[arg(long)]
    pub tls_san: Vec<String>,
}

impl CreateFlags {
    pub fn into_args(self, tls: &TlsFlags) -> CreateArgs {
        let ca_override = match (&tls.tls_ca_cert, &tls.tls_ca_key, &tls.tls_client_cert, &tls.tls_client_key) {
            (Some(a), Some(b), Some(c), Some(d)) => {
                Some(CaPaths { ca_cert: a.clone(), ca_key: b.clone(), client_cert: c.clone(), client_key: d.clone() })
            }
            _ => None,
        };
        CreateArgs {
            names: self.name.map(|n| std::iter::once(n).chain(self.also).collect()).unwrap_or_default(),
            extra: self.extra,
            driver: self.driver,
            driver_flags: DriverFlags {
                generic_ip_address: self.generic_ip_address,
                generic_ssh_user: self.generic_ssh_user,
                generic_ssh_key: self.generic_ssh_key,
                generic_ssh_port: self.generic_ssh_port,
                generic_engine_port: self.generic_engine_port,
                url: self.url,
                local_bridge: self.local_bridge,
                local_subnet: self.local_subnet,
            },
            engine: EngineOptions {
                arbitrary_flags: self.engine_opt,
                env: self.engine_env,
                insecure_registry: self.engine_insecure_registry,
                labels: self.engine_label,
                storage_driver: self.engine_storage_driver,
                registry_mirror: self.engine_registry_mirror,
                install_url: self.engine_install_url,
                cluster_store: self.engine_cluster_store,
                ..Default::default()
            },
            swarm: SwarmOptions {
                is_swarm: self.swarm || self.swarm_master,
                address: self.swarm_addr,
                discovery: self.swarm_discovery,
                agent: self.swarm,
                master: self.swarm_master,
                host: self.swarm_host,
                image: self.swarm_image,
                strategy: self.swarm_strategy,
                arbitrary_flags: self.swarm_opt,
                arbitrary_join_flags: self.swarm_join_opt,
                is_experimental: self.swarm_experimental,
                ..Default::default()
            },
            tls_san: self.tls_san,
            ca_override,
        }
    }
}
