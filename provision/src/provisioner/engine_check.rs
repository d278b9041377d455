//! Engine options are checked by the `swarm` binary that will run them, with its own parser
//! and validation (`swarm check-engine <engine flags>`), so the accepted set lives in one
//! place: `swarm engine`'s flags. `create` runs the check before anything is created or
//! uploaded; a binary built for another architecture than this machine's is checked on the
//! host instead, right after it is uploaded and before any configuration is written.
use super::arch;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum EngineCheckError {
    #[error("invalid engine option: {reason}. Fix or remove the --engine-opt (the flags the engine takes: `swarm engine --help`)")]
    Refused { reason: String },
    #[error("cannot run {binary} to check the engine options: {detail}")]
    Run { binary: String, detail: String },
}

/// The subcommand that checks engine flags.
pub const CHECK_CMD: &str = "check-engine";

/// True when `binary` is an ELF executable for this machine's architecture.
pub fn runs_here(binary: &Path) -> bool {
    arch::elf_arch(binary).ok().flatten().is_some_and(|a| a.runs_on.contains(&std::env::consts::ARCH))
}

/// The engine's reason from `swarm check-engine` output: clap's `error: …` line or the
/// `swarm: …` line, without those prefixes.
pub fn reason(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error:") || l.starts_with("swarm:"))
        .or_else(|| output.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("the engine refused its options");
    line.trim_start_matches("error:").trim_start_matches("swarm:").trim().to_string()
}

/// Runs `binary check-engine args…` here.
pub fn check_local(binary: &Path, args: &[String]) -> Result<(), EngineCheckError> {
    let o = Command::new(binary)
        .arg(CHECK_CMD)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EngineCheckError::Run { binary: binary.display().to_string(), detail: e.to_string() })?;
    if o.status.success() {
        return Ok(());
    }
    let text = format!("{}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    if text.contains(&format!("unrecognized subcommand '{CHECK_CMD}'")) {
        return Err(EngineCheckError::Run {
            binary: binary.display().to_string(),
            detail: "this swarm build has no check-engine command: use a newer build".into(),
        });
    }
    Err(EngineCheckError::Refused { reason: reason(&text) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let clap = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: swarm check-engine [OPTIONS]\n";
        assert_eq!(reason(clap), "unexpected argument '--bogus' found");
        assert_eq!(reason("swarm: invalid --storage-driver \"zfs\": only overlay2\n"), "invalid --storage-driver \"zfs\": only overlay2");
        assert_eq!(reason(""), "the engine refused its options");
        assert!(!runs_here(Path::new("/nonexistent")));
    }
}
