//! `--security-opt` (`HostConfig.SecurityOpt`): checked at create, read again at start, with
//! dockerd's syntax (`key=value`, the old `key:value`) and its error words. This kernel has no
//! AppArmor and no SELinux: a profile or label for them is refused, not ignored.
use super::ContainerError;
use crate::runtime::seccomp::SeccompProfile;

/// What the security options ask of the container.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub seccomp: SeccompProfile,
}

fn invalid(n: u8, opt: &str) -> ContainerError {
    ContainerError::InvalidParam(format!("invalid --security-opt {n}: {opt:?}"))
}

/// Parses every option; the last `seccomp=` wins, as in dockerd.
pub fn parse(opts: &[String]) -> Result<SecurityOpts, ContainerError> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        // `disable` alone is the old spelling of `label=disable`: no labels, as here anyway.
        // `no-new-privileges` and `systempaths` are the run options' (`runopts`), checked there.
        if opt == "disable" || opt == "no-new-privileges" {
            continue;
        }
        let (key, value) = opt.split_once('=').or_else(|| opt.split_once(':')).ok_or_else(|| {
            if opt == "no-new-privileges" {
                not_yet(opt)
            } else {
                invalid(1, opt)
            }
        })?;
        match key {
            "seccomp" => out.seccomp = SeccompProfile::parse(value).map_err(|e| ContainerError::InvalidParam(e.to_string()))?,
            // No AppArmor: `unconfined` is what every container gets; a profile cannot be applied.
            "apparmor" if value == "unconfined" => {}
            "apparmor" => return Err(ContainerError::InvalidParam(format!("{}: cannot apply --security-opt {opt}", apparmor_note()))),
            "label" if value == "disable" => {}
            "label" => {
                return Err(ContainerError::InvalidParam(format!(
                    "SELinux is not available on this host: cannot apply --security-opt {opt}"
                )))
            }
            "no-new-privileges" | "systempaths" => {}
            "writable-cgroups" => return Err(not_yet(opt)),
            _ => return Err(invalid(2, opt)),
        }
    }
    Ok(out)
}

/// Why containers have no AppArmor profile (`docker info` says it too).
pub fn apparmor_note() -> &'static str {
    let on_host = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y");
    if on_host {
        "AppArmor profiles are not supported by this engine"
    } else {
        "AppArmor is not available on this host (the kernel has no AppArmor)"
    }
}

fn not_yet(opt: &str) -> ContainerError {
    ContainerError::InvalidParam(format!("--security-opt {opt} is not supported by this engine yet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<SecurityOpts, ContainerError> {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// The refusal of `opts`: always a bad parameter (400), in dockerd's words.
    fn refusal(opts: &[&str]) -> String {
        match p(opts) {
            Err(ContainerError::InvalidParam(m)) => m,
            other => panic!("{opts:?} not refused as a bad parameter: {other:?}"),
        }
    }

    #[test]
    fn seccomp_options() {
        assert_eq!(p(&[]).unwrap().seccomp, SeccompProfile::Default);
        assert_eq!(p(&["seccomp=unconfined"]).unwrap().seccomp, SeccompProfile::Unconfined);
        assert_eq!(p(&["seccomp:unconfined"]).unwrap().seccomp, SeccompProfile::Unconfined);
        assert_eq!(p(&["seccomp=unconfined", "seccomp=builtin"]).unwrap().seccomp, SeccompProfile::Default);
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_eq!(p(&[&format!("seccomp={json}")]).unwrap().seccomp, SeccompProfile::Custom(json.into()));
        assert!(refusal(&["seccomp={bad"]).starts_with("Decoding seccomp profile failed"));
    }

    #[test]
    fn refused_options() {
        assert_eq!(refusal(&["foo"]), r#"invalid --security-opt 1: "foo""#);
        assert_eq!(refusal(&["foo=bar"]), r#"invalid --security-opt 2: "foo=bar""#);
        assert!(refusal(&["apparmor=docker-default"]).contains("AppArmor"));
        assert!(refusal(&["label=type:svirt_apache_t"]).contains("SELinux is not available"));
        assert!(p(&["apparmor=unconfined", "label=disable", "disable"]).is_ok());
        // Privilege options are the run options' to check (runopts).
        assert!(p(&["no-new-privileges", "no-new-privileges=true", "systempaths=unconfined"]).is_ok());
    }
}
