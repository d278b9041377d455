//! Which OS a host runs, from `/etc/os-release`. Unknown systems get the generic provisioner
//! instead of Docker Machine's "OS type not recognized".
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: String,
    pub version_id: String,
    pub pretty_name: String,
    pub fields: BTreeMap<String, String>,
}

/// Parses KEY=VALUE lines (quotes stripped, comments and malformed lines skipped).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut fields = BTreeMap::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some((k, v)) = l.split_once('=') else { continue };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        fields.insert(k.trim().to_string(), v.replace("\\\"", "\"").replace("\\$", "$").replace("\\\\", "\\"));
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    OsRelease {
        id: get("ID").to_lowercase(),
        id_like: get("ID_LIKE").to_lowercase(),
        version_id: get("VERSION_ID"),
        pretty_name: get("PRETTY_NAME"),
        fields,
    }
}

/// OS families the provisioner knows; they differ in how packages are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Debian,
    Ubuntu,
    RedHat,
    Fedora,
    Generic,
}

impl Family {
    pub fn detect(os: &OsRelease) -> Family {
        let like: Vec<&str> = os.id_like.split_whitespace().collect();
        match os.id.as_str() {
            "ubuntu" => Family::Ubuntu,
            "debian" | "raspbian" => Family::Debian,
            "fedora" => Family::Fedora,
            "rhel" | "centos" | "ol" | "rocky" | "almalinux" => Family::RedHat,
            _ if like.contains(&"ubuntu") || like.contains(&"debian") => Family::Debian,
            _ if like.contains(&"fedora") || like.contains(&"rhel") || like.contains(&"centos") => Family::RedHat,
            _ => Family::Generic,
        }
    }

    /// The provisioner's name as shown in "Provisioning with NAME...".
    pub fn name(&self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Ubuntu => "ubuntu",
            Family::RedHat => "redhat",
            Family::Fedora => "fedora",
            Family::Generic => "generic",
        }
    }

    /// A command installing `pkg` (waits for a held package lock instead of parsing
    /// English "Could not get lock" messages), or `None` when we do not know how.
    pub fn install_cmd(&self, pkg: &str) -> Option<String> {
        match self {
            Family::Debian | Family::Ubuntu => Some(format!(
                "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y {pkg} || (apt-get -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y {pkg})"
            )),
            Family::RedHat => Some(format!("yum install -y {pkg}")),
            Family::Fedora => Some(format!("dnf install -y {pkg}")),
            Family::Generic => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_detects() {
        let deb = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";
        let o = parse_os_release(deb);
        assert_eq!((o.id.as_str(), o.version_id.as_str()), ("debian", "12"));
        assert_eq!(o.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(Family::detect(&o), Family::Debian);
        let cases = [
            ("ID=ubuntu\nVERSION_ID=\"22.04\"", Family::Ubuntu),
            ("ID=\"centos\"\nVERSION_ID=\"7\"", Family::RedHat),
            ("ID=fedora", Family::Fedora),
            ("ID=\"ol\"", Family::RedHat),
            ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"", Family::Debian),
            ("ID=rocky\nID_LIKE=\"rhel centos fedora\"", Family::RedHat),
            ("ID=alpine", Family::Generic),
            ("", Family::Generic),
            ("garbage line\nID=a=b", Family::Generic),
        ];
        for (text, fam) in cases {
            assert_eq!(Family::detect(&parse_os_release(text)), fam, "{text}");
        }
        assert!(Family::Debian.install_cmd("iptables").unwrap().contains("Lock::Timeout"));
        assert!(Family::Generic.install_cmd("iptables").is_none());
    }
}
