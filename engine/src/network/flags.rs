//! dockerd's networking daemon flags as they show on networks: `--mtu` and `--ip-masq` become
//! the default bridge's driver options (as `docker network inspect bridge` shows them in
//! dockerd), and a bridge network's `com.docker.network.driver.mtu` is the MTU of its links.
use super::store::Network;
use super::NetworkError;
use crate::config::NetFlags;

/// `com.docker.network.driver.mtu`.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// `com.docker.network.bridge.enable_ip_masquerade`.
pub const OPT_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// The kernel's MTU of a new veth or bridge.
const KERNEL_MTU: u32 = 1500;

/// Records the daemon's `--mtu` and `--ip-masq` in the default network's options.
pub(super) fn default_options(net: &mut Network, flags: &NetFlags) {
    net.options.insert(OPT_MTU.into(), flags.mtu.unwrap_or(KERNEL_MTU).to_string());
    net.options.insert(OPT_MASQ.into(), flags.ip_masq.to_string());
}

/// Checks `-o com.docker.network.driver.mtu` of a network being created.
pub(super) fn check_mtu_option(options: &std::collections::BTreeMap<String, String>) -> Result<(), NetworkError> {
    match options.get(OPT_MTU) {
        Some(m) if !m.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) => {
            Err(NetworkError::Invalid(format!("invalid {OPT_MTU} {m:?}: an MTU between 68 and 65535")))
        }
        _ => Ok(()),
    }
}

/// `com.docker.network.bridge.enable_icc`.
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";

/// A boolean option's value as Go's `strconv.ParseBool` (and so dockerd) reads it.
pub(super) fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Checks the `-o` driver options of a bridge network being created: the ones this engine acts
/// on, with values it can read; any other (`host_binding_ipv4`, `default_bridge`, a typo) is
/// refused by name rather than stored and ignored.
pub(super) fn check_bridge_options(options: &std::collections::BTreeMap<String, String>) -> Result<(), NetworkError> {
    const KNOWN: [&str; 4] = [super::manage::OPT_BRIDGE_NAME, OPT_ICC, OPT_MASQ, OPT_MTU];
    for (k, v) in options {
        if !KNOWN.contains(&k.as_str()) {
            return Err(NetworkError::Invalid(format!(
                "network option {k:?} is not supported by this engine's bridge driver (supported: {})",
                KNOWN.join(", ")
            )));
        }
        if (k == OPT_ICC || k == OPT_MASQ) && go_bool(v).is_none() {
            return Err(NetworkError::Invalid(format!("invalid {k} {v:?}: true or false")));
        }
    }
    check_mtu_option(options)
}

/// The MTU a bridge network's links get, when it is not the kernel's default.
pub(super) fn bridge_mtu(net: &Network) -> Option<u32> {
    (net.driver == "bridge").then(|| net.options.get(OPT_MTU).and_then(|m| m.parse().ok())).flatten().filter(|m| *m != KERNEL_MTU)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        let st = super::super::store::default_network(None, "flt0", "10.9.0.1/24".parse().unwrap()).unwrap();
        st.net
    }

    #[test]
    fn mtu_and_masquerade_of_the_default_bridge() {
        let mut n = net();
        default_options(&mut n, &NetFlags::default());
        assert_eq!(n.options[OPT_MTU], "1500");
        assert_eq!(bridge_mtu(&n), None);
        assert!(n.masquerade());
        default_options(&mut n, &NetFlags { mtu: Some(1400), ip_masq: false, ..NetFlags::default() });
        assert_eq!(bridge_mtu(&n), Some(1400));
        assert!(!n.masquerade());
    }

    #[test]
    fn bridge_options_are_known_ones_with_readable_values() {
        let o = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        assert!(check_bridge_options(&o(OPT_ICC, "false")).is_ok());
        assert!(check_bridge_options(&o(OPT_MASQ, "0")).is_ok());
        assert!(check_bridge_options(&o(super::super::manage::OPT_BRIDGE_NAME, "br-x")).is_ok());
        let e = check_bridge_options(&o("com.docker.network.bridge.host_binding_ipv4", "127.0.0.1")).unwrap_err().to_string();
        assert!(e.contains("host_binding_ipv4") && e.contains("not supported"), "{e}");
        let e = check_bridge_options(&o(OPT_ICC, "no")).unwrap_err().to_string();
        assert!(e.contains("enable_icc") && e.contains("\"no\""), "{e}");
        assert!(check_bridge_options(&o(OPT_MTU, "tiny")).is_err());
    }

    #[test]
    fn bad_mtu_options_are_refused() {
        let o = |v: &str| [(OPT_MTU.to_string(), v.to_string())].into_iter().collect();
        assert!(check_mtu_option(&o("1400")).is_ok());
        assert!(check_mtu_option(&o("abc")).is_err());
        assert!(check_mtu_option(&o("20")).is_err());
    }
}
