//! iptables rules of one bridge, as data ([`plan`]) plus a small executor that shells out to
//! `iptables -w` (iptables-nft here). Everything lives in chains named after the bridge, so two
//! engines (and dockerd) on one host never touch each other's rules:
//!
//! ```text
//! *filter
//! -N FLT-<br>
//! -I FORWARD 1 -m comment --comment flotilla:<br> -j FLT-<br>
//! -A FLT-<br> -i <br> -m comment --comment flotilla:<br> -j ACCEPT
//! -A FLT-<br> -o <br> -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment flotilla:<br> -j ACCEPT
//! *nat
//! -N FLT-<br>-NAT
//! -I POSTROUTING 1 -m comment --comment flotilla:<br> -j FLT-<br>-NAT
//! -A FLT-<br>-NAT -s <subnet> ! -o <br> -m comment --comment flotilla:<br> -j MASQUERADE
//! ```
//!
//! Applying is idempotent: chains are created if missing and flushed, jumps are added only when
//! `iptables -C` does not find them.
use tokio::process::Command;

/// One iptables rule: table, chain and the match/target arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: String,
    pub args: Vec<String>,
}

/// Everything one bridge needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Our chains, `(table, name)`.
    pub chains: Vec<(&'static str, String)>,
    /// Jumps from the built-in chains into ours (inserted first).
    pub jumps: Vec<Rule>,
    /// Rules appended to our (flushed) chains.
    pub rules: Vec<Rule>,
}

/// Filter chain of a bridge: `FLT-<bridge>`.
pub fn filter_chain(bridge: &str) -> String {
    format!("FLT-{bridge}")
}

/// NAT chain of a bridge: `FLT-<bridge>-NAT`.
pub fn nat_chain(bridge: &str) -> String {
    format!("FLT-{bridge}-NAT")
}

/// Comment put on every rule we add: `flotilla:<bridge>`.
pub fn comment(bridge: &str) -> String {
    format!("flotilla:{bridge}")
}

fn rule(table: &'static str, chain: &str, bridge: &str, head: &[&str], target: &[&str]) -> Rule {
    let mut args: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    args.extend(["-m".into(), "comment".into(), "--comment".into(), comment(bridge)]);
    args.extend(target.iter().map(|s| s.to_string()));
    Rule { table, chain: chain.to_string(), args }
}

/// The rules of bridge `bridge` for subnet `subnet` (CIDR).
pub fn plan(bridge: &str, subnet: &str) -> Plan {
    let (f, n) = (filter_chain(bridge), nat_chain(bridge));
    Plan {
        chains: vec![("filter", f.clone()), ("nat", n.clone())],
        jumps: vec![
            rule("filter", "FORWARD", bridge, &[], &["-j", &f]),
            rule("nat", "POSTROUTING", bridge, &[], &["-j", &n]),
        ],
        rules: vec![
            rule("filter", &f, bridge, &["-i", bridge], &["-j", "ACCEPT"]),
            rule("filter", &f, bridge, &["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"], &["-j", "ACCEPT"]),
            rule("nat", &n, bridge, &["-s", subnet, "!", "-o", bridge], &["-j", "MASQUERADE"]),
        ],
    }
}

/// Runs `iptables -w -t <table> <args>`; `Ok(false)` when it exits non-zero, with its stderr.
async fn run(table: &str, args: &[String]) -> Result<(bool, String), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(["-t", table])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running iptables: {e}"))?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string()))
}

async fn must(table: &str, args: Vec<String>) -> Result<(), String> {
    match run(table, &args).await? {
        (true, _) => Ok(()),
        (false, err) => Err(format!("iptables -t {table} {}: {err}", args.join(" "))),
    }
}

fn with(op: &str, chain: &str, extra: &[String]) -> Vec<String> {
    let mut v = vec![op.to_string(), chain.to_string()];
    v.extend(extra.iter().cloned());
    v
}

/// Creates/flushes our chains, fills them and hooks them in. Idempotent.
pub async fn apply(plan: &Plan) -> Result<(), String> {
    for (table, chain) in &plan.chains {
        let (ok, _) = run(table, &with("-N", chain, &[])).await?;
        if ok {
            tracing::debug!(table, chain, "created iptables chain");
        } else {
            must(table, with("-F", chain, &[])).await?;
        }
    }
    for r in &plan.rules {
        must(r.table, with("-A", &r.chain, &r.args)).await?;
    }
    for j in &plan.jumps {
        if !run(j.table, &with("-C", &j.chain, &j.args)).await?.0 {
            let mut args = vec!["-I".to_string(), j.chain.clone(), "1".to_string()];
            args.extend(j.args.iter().cloned());
            must(j.table, args).await?;
        }
    }
    Ok(())
}

/// Removes the jumps (every copy) and our chains. Idempotent: missing pieces are fine.
pub async fn remove(plan: &Plan) -> Result<(), String> {
    for j in &plan.jumps {
        for _ in 0..16 {
            if !run(j.table, &with("-D", &j.chain, &j.args)).await?.0 {
                break;
            }
        }
    }
    for (table, chain) in &plan.chains {
        if run(table, &with("-F", chain, &[])).await?.0 {
            must(table, with("-X", chain, &[])).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_everything_after_the_bridge() {
        let p = plan("flt0", "172.31.0.0/16");
        assert_eq!(p.chains, vec![("filter", "FLT-flt0".to_string()), ("nat", "FLT-flt0-NAT".to_string())]);
        assert_eq!(p.jumps[0].chain, "FORWARD");
        assert_eq!(p.jumps[0].args.join(" "), "-m comment --comment flotilla:flt0 -j FLT-flt0");
        assert_eq!(p.jumps[1].chain, "POSTROUTING");
        let nat = p.rules.iter().find(|r| r.table == "nat").unwrap();
        assert_eq!(nat.chain, "FLT-flt0-NAT");
        assert_eq!(
            nat.args.join(" "),
            "-s 172.31.0.0/16 ! -o flt0 -m comment --comment flotilla:flt0 -j MASQUERADE"
        );
        assert!(p.rules.iter().all(|r| r.args.contains(&"flotilla:flt0".to_string())));
    }

    #[test]
    fn chain_names_fit_iptables_limit_for_any_interface_name() {
        let longest = "a".repeat(15); // IFNAMSIZ - 1
        assert!(nat_chain(&longest).len() <= 28);
        assert!(filter_chain(&longest).len() <= 28);
    }
}
