//! iptables rules of one engine, as data plus a small executor over the [`Iptables`] seam
//! (`iptables -w` and `iptables-restore`, see [`super::iptables`]). Everything lives in chains named after the engine's
//! default bridge (`<tag>`), so two engines (and dockerd) on one host never touch each other's
//! rules, and every rule carries `-m comment --comment flotilla:<tag>`:
//!
//! ```text
//! *filter
//! -I FORWARD 1     -j FLT-<tag>                          # hooked in once at start
//! -I INPUT 1       -j FLT-<tag>-IN
//! FLT-<tag>:       per network X: -o X RELATED,ESTABLISHED ACCEPT; -o X ctstate DNAT ACCEPT
//!                  (published ports, reachable from anywhere); internal X: -i X ! -o X DROP,
//!                  -o X ! -i X DROP; X != Y: -i X -o Y DROP (isolation); -i X [-o X] ACCEPT
//! FLT-<tag>-IN:    per network X: -i X -d 127.0.0.0/8 ! ctstate RELATED,ESTABLISHED,DNAT DROP
//!                  (route_localnet=1 on X, needed for published ports on the host's 127.0.0.1,
//!                  would otherwise let a container reach the host's loopback-only services)
//! *nat
//! -I POSTROUTING 1 -j FLT-<tag>-NAT
//! -I PREROUTING 1  -m addrtype --dst-type LOCAL -j FLT-<tag>-DNAT
//! -I OUTPUT 1      -m addrtype --dst-type LOCAL -j FLT-<tag>-DNAT   # also 127.0.0.1
//! FLT-<tag>-NAT:   -s <subnet> ! -o X MASQUERADE (not internal); -s <subnet> -o X ctstate DNAT
//!                  MASQUERADE (hairpin); -s 127.0.0.0/8 -o X MASQUERADE (host loopback, with
//!                  net.ipv4.conf.X.route_localnet=1)
//! FLT-<tag>-DNAT:  per published port: -p P [-d host_ip] --dport H DNAT --to-destination ip:port
//! ```
//!
//! The contents of our chains are rewritten as a whole with one `iptables-restore --noflush`
//! (declaring a chain there flushes it), so a change is atomic per table and a restart rebuilds
//! exactly what the state says.
pub use super::iptables::{Exit, Iptables, NatError, RealIptables};
use std::net::Ipv4Addr;

/// What the rules need to know about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRules {
    pub bridge: String,
    pub subnet: String,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: String,
    /// `None`: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One iptables rule: table, chain and the match/target arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: String,
    pub args: Vec<String>,
}

/// Our chains and the jumps into them (static for an engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Our chains, `(table, name)`.
    pub chains: Vec<(&'static str, String)>,
    /// Jumps from the built-in chains into ours (inserted first).
    pub jumps: Vec<Rule>,
}

/// Filter chain of an engine: `FLT-<tag>`.
pub fn filter_chain(tag: &str) -> String {
    format!("FLT-{tag}")
}

/// Input chain (host loopback guard): `FLT-<tag>-IN`.
pub fn input_chain(tag: &str) -> String {
    format!("FLT-{tag}-IN")
}

/// Masquerading chain: `FLT-<tag>-NAT`.
pub fn nat_chain(tag: &str) -> String {
    format!("FLT-{tag}-NAT")
}

/// Published ports: `FLT-<tag>-DNAT`.
pub fn dnat_chain(tag: &str) -> String {
    format!("FLT-{tag}-DNAT")
}

/// Comment put on every rule we add: `flotilla:<tag>`.
pub fn comment(tag: &str) -> String {
    format!("flotilla:{tag}")
}

fn args(tag: &str, head: &[&str], target: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    a.extend(["-m".into(), "comment".into(), "--comment".into(), comment(tag)]);
    a.extend(target.iter().map(|s| s.to_string()));
    a
}

/// Chains and jumps of the engine whose default bridge is `tag`.
pub fn plan(tag: &str) -> Plan {
    let (f, n, d, i) = (filter_chain(tag), nat_chain(tag), dnat_chain(tag), input_chain(tag));
    let local = ["-m", "addrtype", "--dst-type", "LOCAL"];
    Plan {
        chains: vec![("filter", f.clone()), ("nat", n.clone()), ("nat", d.clone()), ("filter", i.clone())],
        jumps: vec![
            Rule { table: "filter", chain: "FORWARD".into(), args: args(tag, &[], &["-j", &f]) },
            Rule { table: "filter", chain: "INPUT".into(), args: args(tag, &[], &["-j", &i]) },
            Rule { table: "nat", chain: "POSTROUTING".into(), args: args(tag, &[], &["-j", &n]) },
            Rule { table: "nat", chain: "PREROUTING".into(), args: args(tag, &local, &["-j", &d]) },
            Rule { table: "nat", chain: "OUTPUT".into(), args: args(tag, &local, &["-j", &d]) },
        ],
    }
}

/// Quotes an argument for iptables-restore when needed.
fn q(a: &str) -> String {
    if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c == '"') {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        a.to_string()
    }
}

fn line(out: &mut String, chain: &str, a: Vec<String>) {
    out.push_str("-A ");
    out.push_str(chain);
    for x in a {
        out.push(' ');
        out.push_str(&q(&x));
    }
    out.push('\n');
}

/// The `iptables-restore --noflush` input that sets the contents of all our chains.
pub fn render(tag: &str, nets: &[NetRules], ports: &[PortRule]) -> String {
    let (f, n, d, i) = (filter_chain(tag), nat_chain(tag), dnat_chain(tag), input_chain(tag));
    let mut o = format!("*filter\n:{f} - [0:0]\n:{i} - [0:0]\n");
    for x in nets {
        let guard = ["-i", x.bridge.as_str(), "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"];
        line(&mut o, &i, args(tag, &guard, &["-j", "DROP"]));
    }
    for x in nets.iter().filter(|x| !x.internal) {
        let b = x.bridge.as_str();
        line(&mut o, &f, args(tag, &["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"], &["-j", "ACCEPT"]));
        line(&mut o, &f, args(tag, &["-o", b, "-m", "conntrack", "--ctstate", "DNAT"], &["-j", "ACCEPT"]));
    }
    for x in nets.iter().filter(|x| x.internal) {
        let b = x.bridge.as_str();
        line(&mut o, &f, args(tag, &["-i", b, "!", "-o", b], &["-j", "DROP"]));
        line(&mut o, &f, args(tag, &["-o", b, "!", "-i", b], &["-j", "DROP"]));
    }
    for x in nets {
        for y in nets.iter().filter(|y| y.bridge != x.bridge) {
            line(&mut o, &f, args(tag, &["-i", &x.bridge, "-o", &y.bridge], &["-j", "DROP"]));
        }
    }
    for x in nets {
        let b = x.bridge.as_str();
        if !x.icc {
            line(&mut o, &f, args(tag, &["-i", b, "-o", b], &["-j", "DROP"]));
        }
        line(&mut o, &f, args(tag, &["-i", b], &["-j", "ACCEPT"]));
    }
    o.push_str(&format!("COMMIT\n*nat\n:{n} - [0:0]\n:{d} - [0:0]\n"));
    for x in nets {
        let (b, s) = (x.bridge.as_str(), x.subnet.as_str());
        if x.masquerade {
            line(&mut o, &n, args(tag, &["-s", s, "!", "-o", b], &["-j", "MASQUERADE"]));
        }
        line(&mut o, &n, args(tag, &["-s", s, "-o", b, "-m", "conntrack", "--ctstate", "DNAT"], &["-j", "MASQUERADE"]));
        line(&mut o, &n, args(tag, &["-s", "127.0.0.0/8", "-o", b], &["-j", "MASQUERADE"]));
    }
    for p in ports {
        let (hp, to) = (p.host_port.to_string(), format!("{}:{}", p.ip, p.port));
        let hip = p.host_ip.map(|i| i.to_string());
        let mut head = vec!["-p", p.proto.as_str()];
        if let Some(h) = &hip {
            head.extend(["-d", h.as_str()]);
        }
        head.extend(["-m", p.proto.as_str(), "--dport", hp.as_str()]);
        line(&mut o, &d, args(tag, &head, &["-j", "DNAT", "--to-destination", &to]));
    }
    o.push_str("COMMIT\n");
    o
}

/// Runs `iptables -w -t <table> <args>`: whether it succeeded, with its stderr.
async fn run(ipt: &dyn Iptables, table: &str, args: &[String]) -> Result<Exit, NatError> {
    ipt.run(table, args).await
}

async fn must(ipt: &dyn Iptables, table: &str, args: Vec<String>) -> Result<(), NatError> {
    match run(ipt, table, &args).await? {
        Exit { success: true, .. } => Ok(()),
        Exit { stderr, .. } => Err(NatError::Failed { command: format!("iptables -t {table} {}", args.join(" ")), stderr }),
    }
}

fn with(op: &str, chain: &str, extra: &[String]) -> Vec<String> {
    let mut v = vec![op.to_string(), chain.to_string()];
    v.extend(extra.iter().cloned());
    v
}

/// Creates our chains (when missing) and hooks them in. Idempotent; leaves chain contents alone.
pub async fn apply(ipt: &dyn Iptables, plan: &Plan) -> Result<(), NatError> {
    for (table, chain) in &plan.chains {
        if run(ipt, table, &with("-N", chain, &[])).await?.success {
            tracing::debug!(table, chain, "created iptables chain");
        }
    }
    for j in &plan.jumps {
        if !run(ipt, j.table, &with("-C", &j.chain, &j.args)).await?.success {
            let mut args = vec!["-I".to_string(), j.chain.clone(), "1".to_string()];
            args.extend(j.args.iter().cloned());
            must(ipt, j.table, args).await?;
        }
    }
    Ok(())
}

/// Replaces the contents of our chains with `rules` (see [`render`]) in one transaction.
pub async fn restore(ipt: &dyn Iptables, rules: &str) -> Result<(), NatError> {
    ipt.restore(rules).await
}

/// Removes the jumps (every copy) and our chains. Idempotent: missing pieces are fine.
pub async fn remove(ipt: &dyn Iptables, plan: &Plan) -> Result<(), NatError> {
    for j in &plan.jumps {
        for _ in 0..16 {
            if !run(ipt, j.table, &with("-D", &j.chain, &j.args)).await?.success {
                break;
            }
        }
    }
    for (table, chain) in &plan.chains {
        if run(ipt, table, &with("-F", chain, &[])).await?.success {
            must(ipt, table, with("-X", chain, &[])).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(b: &str, s: &str, internal: bool) -> NetRules {
        NetRules { bridge: b.into(), subnet: s.into(), internal, masquerade: !internal, icc: true }
    }

    #[test]
    fn plan_names_everything_after_the_tag() {
        let p = plan("flt0");
        assert_eq!(
            p.chains,
            vec![
                ("filter", "FLT-flt0".to_string()),
                ("nat", "FLT-flt0-NAT".to_string()),
                ("nat", "FLT-flt0-DNAT".to_string()),
                ("filter", "FLT-flt0-IN".to_string())
            ]
        );
        assert_eq!(p.jumps[0].chain, "FORWARD");
        assert_eq!(p.jumps[0].args.join(" "), "-m comment --comment flotilla:flt0 -j FLT-flt0");
        assert_eq!(
            (p.jumps[1].chain.as_str(), p.jumps[1].args.join(" ")),
            ("INPUT", "-m comment --comment flotilla:flt0 -j FLT-flt0-IN".into())
        );
        assert_eq!(p.jumps[3].args.join(" "), "-m addrtype --dst-type LOCAL -m comment --comment flotilla:flt0 -j FLT-flt0-DNAT");
        assert!(p.jumps.iter().all(|r| r.args.contains(&"flotilla:flt0".to_string())));
    }

    #[test]
    fn render_masquerades_isolates_and_publishes() {
        let nets = [net("flt0", "172.31.0.0/16", false), net("flt0-abc", "10.5.0.0/24", false), net("flt0-int", "10.6.0.0/24", true)];
        let ports = [PortRule { proto: "tcp".into(), host_ip: None, host_port: 8080, ip: "172.31.0.2".parse().unwrap(), port: 80 }];
        let r = render("flt0", &nets, &ports);
        assert!(r.starts_with("*filter\n:FLT-flt0 - [0:0]\n:FLT-flt0-IN - [0:0]\n"), "{r}");
        for b in ["flt0", "flt0-abc", "flt0-int"] {
            let guard = format!("-A FLT-flt0-IN -i {b} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment flotilla:flt0 -j DROP\n");
            assert!(r.contains(&guard), "{r}");
        }
        assert!(r.contains("-A FLT-flt0-NAT -s 172.31.0.0/16 ! -o flt0 -m comment --comment flotilla:flt0 -j MASQUERADE\n"), "{r}");
        assert!(!r.contains("-s 10.6.0.0/24 ! -o flt0-int"), "internal networks are not masqueraded:\n{r}");
        assert!(r.contains("-A FLT-flt0 -i flt0 -o flt0-abc -m comment --comment flotilla:flt0 -j DROP\n"));
        assert!(r.contains("-A FLT-flt0 -i flt0-abc -o flt0 -m comment --comment flotilla:flt0 -j DROP\n"));
        assert!(r.contains("-A FLT-flt0 -i flt0-int ! -o flt0-int -m comment --comment flotilla:flt0 -j DROP\n"));
        assert!(r.contains(
            "-A FLT-flt0-DNAT -p tcp -m tcp --dport 8080 -m comment --comment flotilla:flt0 -j DNAT --to-destination 172.31.0.2:80\n"
        ));
        // Isolation comes before the blanket accept of a bridge's own traffic.
        let drop = r.find("-i flt0 -o flt0-abc").unwrap();
        let accept = r.find("-A FLT-flt0 -i flt0 -m comment").unwrap();
        assert!(drop < accept);
        assert_eq!(r.matches("COMMIT\n").count(), 2);
        assert!(r.lines().filter(|l| l.starts_with("-A")).all(|l| l.contains("flotilla:flt0")));
    }

    #[test]
    fn render_with_host_ip() {
        let ports = [PortRule {
            proto: "udp".into(),
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 53,
            ip: "10.0.0.2".parse().unwrap(),
            port: 5353,
        }];
        let r = render("t", &[], &ports);
        assert!(r.contains("-A FLT-t-DNAT -p udp -d 127.0.0.1 -m udp --dport 53 "), "{r}");
    }

    #[test]
    fn chain_names_fit_iptables_limit_for_any_interface_name() {
        let longest = "a".repeat(15); // IFNAMSIZ - 1
        assert!(dnat_chain(&longest).len() <= 28);
        assert!(nat_chain(&longest).len() <= 28);
        assert!(filter_chain(&longest).len() <= 28);
        assert!(input_chain(&longest).len() <= 28);
    }
}
