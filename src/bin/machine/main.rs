//! `machine`: Docker Machine for Flotilla hosts. Parses the command line (clap) and calls
//! into `provision::commands`; exit code 3 for pre-create check failures, 1 for other errors.
mod cli;

use clap::{CommandFactory, Parser};
use cli::{Cli, Cmd};
use provision::commands::{self as cmds, CommandError, Ctx};
use provision::store::Store;
use std::time::Duration;

fn init_tracing(debug: bool) {
    let level = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().with_target(false).init();
}

/// The binary's name as run (`machine`, `docker-machine`).
fn prog_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "machine".into())
}

fn run(cli: Cli, cmd: Cmd) -> Result<(), CommandError> {
    let root = cli.storage_path.clone().unwrap_or_else(provision::store::default_root);
    let mut ctx = Ctx::new(Store::new(root));
    if let Some(b) = &cli.swarm_binary {
        ctx.swarm_binary = b.clone();
    }
    ctx.prog = std::env::args().next().unwrap_or_else(|| "machine".into());
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cmd {
        Cmd::Active { timeout } => cmds::ls::active(&ctx, Duration::from_secs(timeout)),
        Cmd::Config { name, swarm } => cmds::env::config(&ctx, name.as_deref(), swarm),
        Cmd::Create(c) => {
            let r = cmds::create::create(&ctx, &c.into_args(&cli.tls));
            if let Err(CommandError::NoMachineName) = r {
                // Docker Machine shows create's help above the error.
                let mut cmd = Cli::command().bin_name(prog_name());
                cmd.build();
                if let Some(create) = cmd.find_subcommand_mut("create") {
                    let _ = create.print_help();
                }
            }
            r
        }
        Cmd::Env { name, swarm, shell, unset, no_proxy } => {
            cmds::env::env(&ctx, &cmds::env::EnvArgs { name, swarm, shell, unset, no_proxy, command_line })
        }
        Cmd::Inspect { name, format } => cmds::info::inspect(&ctx, name.as_deref(), format.as_deref()),
        Cmd::Ip { names } => cmds::info::ip(&ctx, &names),
        Cmd::Kill { names } => cmds::lifecycle::kill(&ctx, &names),
        Cmd::Ls { quiet, filter, timeout, format } => {
            cmds::ls::ls(&ctx, &cmds::ls::LsArgs { quiet, filters: filter, timeout: Duration::from_secs(timeout), format })
        }
        Cmd::Provision { names } => cmds::maintain::provision(&ctx, &names),
        Cmd::RegenerateCerts { names, force, client_certs, reset_host_key } => {
            cmds::maintain::regenerate_certs(&ctx, &names, force, client_certs, reset_host_key)
        }
        Cmd::Restart { names } => cmds::lifecycle::restart(&ctx, &names),
        Cmd::Rm { names, force, yes } => cmds::lifecycle::rm(&ctx, &names, force, yes),
        Cmd::Ssh { args } => cmds::sshcmd::ssh(&ctx, &args, cli.native_ssh),
        Cmd::Scp { src, dst, recursive, delta, quiet } => {
            cmds::sshcmd::scp(&ctx, &cmds::sshcmd::ScpArgs { src, dst, recursive, delta, quiet })
        }
        Cmd::Start { names } => cmds::lifecycle::start(&ctx, &names),
        Cmd::Status { name } => cmds::info::status(&ctx, name.as_deref()),
        Cmd::Stop { names } => cmds::lifecycle::stop(&ctx, &names),
        Cmd::Upgrade { names } => cmds::maintain::upgrade(&ctx, &names),
        Cmd::Url { name } => cmds::info::url(&ctx, name.as_deref()),
        Cmd::Version { name } => cmds::info::version(&ctx, name.as_deref()),
    }
}

fn main() {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSubcommand => {
                    let bad = match e.get(clap::error::ContextKind::InvalidSubcommand) {
                        Some(clap::error::ContextValue::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let p = prog_name();
                    eprintln!("{p}: '{bad}' is not a {p} command. See '{p} --help'.");
                    std::process::exit(1);
                }
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                _ => {
                    let _ = e.print();
                    std::process::exit(1);
                }
            }
        }
    };
    if cli.version {
        println!("{} version {}, build flotilla", prog_name(), env!("CARGO_PKG_VERSION"));
        return;
    }
    // No command: the help, and success (as Docker Machine).
    let Some(cmd) = cli.cmd.take() else {
        let _ = Cli::command().bin_name(prog_name()).print_help();
        return;
    };
    init_tracing(cli.debug);
    if let Err(e) = run(cli, cmd) {
        let text = e.to_string();
        if !text.is_empty() {
            eprintln!("{text}");
        }
        std::process::exit(e.exit_code());
    }
}
