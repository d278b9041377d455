//! User-defined bridge networks: create/ls/inspect/rm/prune, name and alias resolution that
//! follows connects, disconnects and restarts, isolation, `container:` mode, legacy links,
//! `--dns`/`--add-host`/`--hostname`/MAC, and that nothing is left once everything is removed.
mod common;
use common::*;

/// Deletes this engine's user-network bridges (`<bridge>-…`) if a test fails before removing
/// its networks (the engine's teardown only knows its default bridge).
struct Bridges(String);

impl Drop for Bridges {
    fn drop(&mut self) {
        let out = testground::cmd::run_args("ip", &["-o", "link", "show", "type", "bridge"]).stdout;
        for l in out.lines() {
            let name = l.split(':').nth(1).unwrap_or("").trim().split('@').next().unwrap_or("");
            if name.starts_with(&format!("{}-", self.0)) {
                testground::cmd::run_args("ip", &["link", "del", name]);
            }
        }
    }
}

fn engine_and_guard() -> (Engine, Bridges) {
    let e = engine_with_busybox();
    let g = Bridges(e.bridge().to_string());
    (e, g)
}

/// A /24 for user network `n` (0..) of this engine, unique among parallel engines.
fn user_subnet(e: &Engine, n: u32) -> (String, String) {
    let p = e.subnet_prefix();
    let mut it = p.split('.');
    let (_, b, c) = (it.next(), it.next().unwrap_or("160").parse::<u32>().unwrap_or(160), it.next().unwrap_or("0"));
    let base = format!("10.{}.{c}.", b + 8 * (n + 1));
    (format!("{base}0/24"), base)
}

/// Exit status of `nslookup name` inside a fresh container on `net`.
fn resolves(e: &Engine, net: &str, name: &str) -> bool {
    e.docker(&["run", "--rm", "--network", net, "busybox", "nslookup", name]).success()
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let net = e.unique("appnet");
    // No --subnet: one is picked from the default pools.
    e.docker_ok(&["network", "create", &net]);
    let web = e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &net,
        "--network-alias",
        "www",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let short = web.trim()[..12].to_string();
    let script = "wget -q -O - http://web/hostname && wget -q -O - http://www/hostname && ping -c 1 -W 2 www >/dev/null && echo pinged";
    let out = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), vec![short.clone(), short.clone(), "pinged".to_string()]);
    // The short id and `name.network` resolve too; resolv.conf points at the embedded resolver.
    assert!(resolves(&e, &net, &short));
    assert!(resolves(&e, &net, &format!("web.{net}")));
    let conf = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "cat", "/etc/resolv.conf"]);
    assert!(conf.contains("nameserver 127.0.0.11"), "{conf}");
    // Inspect: the network lists the container, the container its aliases.
    let containers = e.docker_ok(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", &net]);
    assert_eq!(containers.trim(), "web");
    let aliases = inspect(&e, "web", &format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}"));
    assert_eq!(aliases, format!(r#"["www","{short}"]"#));

    // After a disconnect the name no longer resolves; a connect brings it (and a new alias) back.
    e.docker_ok(&["network", "disconnect", &net, "web"]);
    assert!(!resolves(&e, &net, "web"));
    assert!(!resolves(&e, &net, "www"));
    let o = e.docker(&["network", "disconnect", &net, "web"]);
    assert!(!o.success() && o.stderr.contains("is not connected"), "{o}");
    e.docker_ok(&["network", "connect", "--alias", "w2", &net, "web"]);
    let out = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O", "-", "http://w2/hostname"]);
    assert_eq!(out.trim(), short);
    let o = e.docker(&["network", "connect", &net, "web"]);
    assert!(!o.success() && o.stderr.contains("already exists"), "{o}");

    // Across a restart (new address) the name follows.
    e.docker_ok(&["kill", "web"]);
    assert!(wait_status(&e, "web", "exited"));
    assert!(!resolves(&e, &net, "web"));
    e.docker_ok(&["start", "web"]);
    let out = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O", "-", "http://web/hostname"]);
    assert_eq!(out.trim(), short);

    // A stopped container can be connected; the network is set up at its next start.
    e.docker_ok(&["create", "--name", "late", "busybox", "sleep", "1000"]);
    e.docker_ok(&["network", "connect", &net, "late"]);
    e.docker_ok(&["start", "late"]);
    assert!(resolves(&e, &net, "late"));
    let nets = inspect(&e, "late", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}");
    assert_eq!(sorted_lines(&nets.replace(' ', "\n")), sorted_lines(&format!("bridge\n{net}")));

    // A running container of the default bridge that joins the network resolves names from then on.
    let solo = e.docker_ok(&["run", "-d", "--name", "solo", "busybox", "sleep", "1000"]).trim().to_string();
    e.docker_ok(&["network", "connect", &net, "solo"]);
    let conf = std::fs::read_to_string(e.data_root().join("containers").join(&solo).join("resolv.conf")).unwrap();
    assert!(conf.contains("nameserver 127.0.0.11"), "{conf}");
    assert!(resolves(&e, &net, "solo"));
    e.docker_ok(&["rm", "-f", "solo"]);

    // `network rm` is refused while containers are attached.
    let o = e.docker(&["network", "rm", &net]);
    assert!(!o.success() && o.stderr.contains("has active endpoints"), "{o}");
    e.docker_ok(&["rm", "-f", "web", "late"]);
    e.docker_ok(&["network", "rm", &net]);
}

#[test]
fn different_user_networks_are_isolated() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let (a, b, i) = (e.unique("na"), e.unique("nb"), e.unique("ni"));
    let ((sa, _), (sb, pb), (si, _)) = (user_subnet(&e, 0), user_subnet(&e, 1), user_subnet(&e, 2));
    e.docker_ok(&["network", "create", "--subnet", &sa, &a]);
    e.docker_ok(&["network", "create", "--subnet", &sb, &b]);
    e.docker_ok(&["network", "create", "--internal", "--subnet", &si, &i]);
    e.docker_ok(&["run", "-d", "--name", "ina", "--network", &a, "busybox", "sleep", "1000"]);
    e.docker_ok(&["run", "-d", "--name", "inb", "--network", &b, "--ip", &format!("{pb}77"), "busybox", "sleep", "1000"]);
    assert_eq!(inspect(&e, "inb", &net_ip(&b)), format!("{pb}77"));
    let ip_a = inspect(&e, "ina", &net_ip(&a));
    // Not by address, not by name.
    let o = e.docker(&["run", "--rm", "--network", &b, "busybox", "ping", "-c", "1", "-W", "1", &ip_a]);
    assert!(!o.success(), "{o}");
    assert!(!resolves(&e, &b, "ina"));
    assert!(!e.docker(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", &ip_a]).success(), "default bridge reached a user network");
    // Both still reach the host side (their gateways) and their own network.
    let gw_b = e.docker_ok(&["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", &b]);
    e.docker_ok(&["run", "--rm", "--network", &b, "busybox", "ping", "-c", "1", "-W", "2", gw_b.trim()]);
    e.docker_ok(&["run", "--rm", "--network", &b, "busybox", "ping", "-c", "1", "-W", "2", "inb"]);
    // An internal network has no way out: no default route, nothing beyond its bridge.
    let out = e.docker_ok(&["run", "--rm", "--network", &i, "busybox", "ip", "route"]);
    assert!(!out.contains("default"), "{out}");
    assert!(!e.docker(&["run", "--rm", "--network", &i, "busybox", "ping", "-c", "1", "-W", "1", &e.gateway()]).success());
    // A container on two networks reaches both.
    e.docker_ok(&["network", "connect", &a, "inb"]);
    e.docker_ok(&["run", "--rm", "--network", &a, "busybox", "ping", "-c", "1", "-W", "2", "inb"]);
    e.docker_ok(&["rm", "-f", "ina", "inb"]);
    for n in [&a, &b, &i] {
        e.docker_ok(&["network", "rm", n]);
    }
}

#[test]
fn network_create_options_ls_inspect_rm_prune() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let (s0, p0) = user_subnet(&e, 0);
    let net = e.unique("opts");
    let br = format!("{}x", e.bridge());
    let id = e.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &s0,
        "--gateway",
        &format!("{p0}254"),
        "--ip-range",
        &format!("{p0}128/25"),
        "--label",
        "team=blue",
        "-o",
        &format!("com.docker.network.bridge.name={br}"),
        &net,
    ]);
    let id = id.trim().to_string();
    assert!(is_hex64(&id), "{id}");
    let f = "{{.Driver}} {{.Scope}} {{.Internal}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}} {{.Labels.team}}";
    assert_eq!(e.docker_ok(&["network", "inspect", "-f", f, &net]).trim(), format!("bridge local false {s0} {p0}254 {p0}128/25 blue"));
    let link = testground::cmd::run_args("ip", &["-4", "-o", "addr", "show", "dev", &br]);
    assert!(link.stdout.contains(&format!("inet {p0}254/24")), "{link}");
    // Dynamic addresses come from the ip-range.
    e.docker_ok(&["run", "-d", "--name", "r1", "--network", &net, "busybox", "sleep", "1000"]);
    let ip = inspect(&e, "r1", &net_ip(&net));
    let last: u32 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(last >= 128, "{ip}");
    // ls and its filters.
    let names = |args: &[&str]| {
        let mut a = vec!["network", "ls", "--format", "{{.Name}}"];
        a.extend_from_slice(args);
        sorted_lines(&e.docker_ok(&a))
    };
    assert_eq!(names(&[]), sorted_lines(&format!("bridge\nhost\nnone\n{net}")));
    assert_eq!(names(&["--filter", "label=team=blue"]), vec![net.clone()]);
    assert_eq!(names(&["--filter", "type=custom"]), vec![net.clone()]);
    assert_eq!(names(&["--filter", "type=builtin"]), sorted_lines("bridge\nhost\nnone"));
    assert_eq!(names(&["--filter", "driver=null"]), vec!["none".to_string()]);
    assert_eq!(names(&["--filter", &format!("id={}", &id[..12])]), vec![net.clone()]);
    assert!(names(&["--filter", "dangling=true"]).is_empty());
    // Errors, with Docker's words.
    let o = e.docker(&["network", "create", &net]);
    assert!(!o.success() && o.stderr.contains("already exists"), "{o}");
    let o = e.docker(&["network", "create", "--subnet", &s0, &e.unique("overlap")]);
    assert!(!o.success() && o.stderr.contains("Pool overlaps"), "{o}");
    for pre in ["bridge", "host", "none"] {
        let o = e.docker(&["network", "rm", pre]);
        assert!(!o.success() && o.stderr.contains("pre-defined network"), "{o}");
    }
    let o = e.docker(&["run", "--rm", "--network", "nonexistent-net", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("not found"), "{o}");
    let o = e.docker(&["run", "--rm", "--ip", "10.99.0.5", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("user defined networks"), "{o}");
    let o = e.docker(&["run", "--rm", "--network", &net, "--ip", &format!("{p0}254"), "busybox", "true"]);
    assert!(!o.success(), "the gateway address was handed out: {o}");
    // prune removes only unused networks.
    let spare = e.unique("spare");
    e.docker_ok(&["network", "create", "--subnet", &user_subnet(&e, 1).0, &spare]);
    assert_eq!(names(&["--filter", "dangling=true"]), vec![spare.clone()]);
    let out = e.docker_ok(&["network", "prune", "-f"]);
    assert!(out.contains(&spare) && !out.contains(&net), "{out}");
    e.docker_ok(&["rm", "-f", "r1"]);
    e.docker_ok(&["network", "rm", &net]);
    assert!(!testground::cmd::run_args("ip", &["link", "show", &br]).success(), "bridge {br} left behind");
    assert_eq!(names(&[]), sorted_lines("bridge\nhost\nnone"));
}

#[test]
fn container_network_mode_shares_the_other_containers_interfaces() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let (s0, _) = user_subnet(&e, 0);
    let net = e.unique("cn");
    e.docker_ok(&["network", "create", "--subnet", &s0, &net]);
    e.docker_ok(&["run", "-d", "--name", "web", "--network", &net, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let ip = inspect(&e, "web", &net_ip(&net));
    let hostname = inspect(&e, "web", "{{.Config.Hostname}}");
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; hostname; wget -q -O - http://127.0.0.1/hostname",
    ]);
    assert!(out.contains(&format!("inet {ip}/24")), "{out}");
    assert_eq!(lines(&out)[1..], [hostname.clone(), hostname.clone()]);
    // By id too, and Docker's refusals.
    let web_id = inspect(&e, "web", "{{.Id}}");
    e.docker_ok(&["run", "--rm", "--network", &format!("container:{}", &web_id[..12]), "busybox", "true"]);
    let o = e.docker(&["run", "--rm", "--network", "container:web", "-p", "80:80", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("conflicting options"), "{o}");
    let o = e.docker(&["run", "--rm", "--network", "container:nosuch", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("No such container"), "{o}");
    e.docker_ok(&["create", "--name", "side", "--network", "container:web", "busybox", "sleep", "1000"]);
    e.docker_ok(&["kill", "web"]);
    assert!(wait_status(&e, "web", "exited"));
    let o = e.docker(&["start", "side"]);
    assert!(!o.success() && o.stderr.contains("non running container"), "{o}");
    e.docker_ok(&["rm", "-f", "web", "side"]);
    e.docker_ok(&["network", "rm", &net]);
}

#[test]
fn links_dns_options_add_host_hostname_and_mac() {
    require_root!();
    let (e, _g) = engine_with_busybox_guarded();
    e.docker_ok(&["run", "-d", "--name", "db", "-e", "SECRET=s3", "--expose", "5432", "busybox", "sleep", "1000"]);
    let db_ip = inspect(&e, "db", "{{.NetworkSettings.IPAddress}}");
    let script = "env | grep ^DB_ | sort; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname";
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--name",
        "app",
        "--link",
        "db:db",
        "--add-host",
        "extra.test:10.9.8.7",
        "--add-host",
        "gw.test:host-gateway",
        "--dns",
        "10.1.1.1",
        "--dns-search",
        "corp.test",
        "--dns-option",
        "timeout:2",
        "--hostname",
        "apphost",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let parts: Vec<&str> = out.split("---\n").collect();
    let env = lines(parts[0]);
    for want in [
        format!("DB_PORT=tcp://{db_ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={db_ip}"),
        "DB_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_NAME=/app/db".to_string(),
        "DB_ENV_SECRET=s3".to_string(),
    ] {
        assert!(env.contains(&want), "{want} missing: {env:?}");
    }
    let hosts = parts[1];
    assert!(hosts.lines().any(|l| l.starts_with(&format!("{db_ip}\tdb ")) && l.ends_with(" db")), "{hosts}");
    assert!(hosts.contains("10.9.8.7\textra.test") && hosts.contains(&format!("{}\tgw.test", e.gateway())), "{hosts}");
    assert!(hosts.contains("\tapphost"), "{hosts}");
    assert_eq!(lines(parts[2]), vec!["nameserver 10.1.1.1", "search corp.test", "options timeout:2"]);
    assert_eq!(parts[3].trim(), "apphost");
    // A link to a stopped container is refused.
    e.docker_ok(&["kill", "db"]);
    assert!(wait_status(&e, "db", "exited"));
    let o = e.docker(&["run", "--rm", "--link", "db:db", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("non running container"), "{o}");

    // --mac-address (the docker 28 CLI sends it only to API >= 1.44; this is what 1.41 clients send).
    let body =
        br#"{"Image":"busybox","Cmd":["sh","-c","cat /sys/class/net/eth0/address"],"MacAddress":"02:42:12:34:56:78","HostConfig":{}}"#;
    let r = e.api("POST", "/v1.41/containers/create?name=macc", Some(("application/json", body))).unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    e.docker_ok(&["start", "macc"]);
    assert!(wait_status(&e, "macc", "exited"));
    assert_eq!(e.docker_ok(&["logs", "macc"]).trim(), "02:42:12:34:56:78");
}

fn engine_with_busybox_guarded() -> (Engine, Bridges) {
    engine_and_guard()
}

#[test]
fn nothing_is_left_behind_after_removing_everything() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let (s0, _) = user_subnet(&e, 0);
    let net = e.unique("gone");
    e.docker_ok(&["network", "create", "--subnet", &s0, &net]);
    let user_bridge = e.docker_ok(&["network", "inspect", "-f", "{{.Id}}", &net]);
    let user_bridge = format!("{}-{}", e.bridge(), &user_bridge.trim()[..6]);
    assert!(testground::cmd::run_args("ip", &["link", "show", &user_bridge]).success(), "bridge named {user_bridge} expected");
    e.docker_ok(&["run", "-d", "--name", "ca", "--network", &net, "-p", "0:80", "busybox", "httpd", "-f", "-p", "80"]);
    e.docker_ok(&["run", "-d", "--name", "cb", "-p", "0:81", "busybox", "sleep", "1000"]);
    e.docker_ok(&["network", "connect", &net, "cb"]);
    e.docker_ok(&["run", "-d", "--name", "cc", "--network", "none", "busybox", "sleep", "1000"]);
    e.docker_ok(&["run", "--rm", "--network", &net, "-p", "0:82", "busybox", "true"]);
    let before = testground::cmd::run_args("iptables-save", &[]).stdout;
    assert!(before.contains("DNAT"), "{before}");
    e.docker_ok(&["rm", "-f", "ca", "cb", "cc"]);
    e.docker_ok(&["network", "rm", &net]);

    // ip link: no veth on our bridge, no user bridge.
    // (Veths go with their netns, within milliseconds, in the background.)
    let on_bridge = || testground::cmd::run_args("ip", &["-o", "link", "show", "master", e.bridge()]).stdout;
    assert!(wait_until(std::time::Duration::from_secs(5), || on_bridge().trim().is_empty()), "{}", on_bridge());
    let links = testground::cmd::run_args("ip", &["-o", "link"]).stdout;
    assert!(!links.contains(&format!("{}-", e.bridge())), "{links}");
    // iptables-save: only the default bridge's own rules remain (no port, no user network).
    let clean = || {
        let save = testground::cmd::run_args("iptables-save", &[]).stdout;
        let ours: Vec<String> = save.lines().filter(|l| l.contains(&format!("flotilla:{}", e.bridge()))).map(String::from).collect();
        let left: Vec<String> =
            ours.into_iter().filter(|l| l.contains("DNAT --to") || l.contains(&user_bridge) || l.contains(&s0)).collect();
        left
    };
    // (Removals reach iptables in the background, within milliseconds.)
    assert!(wait_until(std::time::Duration::from_secs(5), || clean().is_empty()), "{:#?}", clean());
    // IPAM state, sandboxes, netns mounts: empty.
    let dir = e.exec_root().join("network");
    let mut ipams = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(entry.path().join("ipam.json")) {
            ipams += 1;
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["allocations"], serde_json::json!({}), "{s}");
        }
    }
    assert_eq!(ipams, 1, "only the default network's state should remain");
    assert_eq!(std::fs::read_dir(e.exec_root().join("network").join("sandboxes")).map(|d| d.count()).unwrap_or(0), 0);
    assert_eq!(std::fs::read_dir(e.exec_root().join("netns")).map(|d| d.count()).unwrap_or(0), 0);
    // Nothing listens on a port for us any more.
    let ss = testground::cmd::run_args("ss", &["-ltnp"]).stdout;
    let pid = format!("pid={},", e.pid().unwrap());
    assert!(!ss.lines().any(|l| l.contains(&pid) && !l.contains(".sock")), "{ss}");
}

/// Inspect template for a container's address on network `net` (names with `-` need `index`).
fn net_ip(net: &str) -> String {
    format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}")
}

/// Deletes a link by name when dropped (a test's own leftover).
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        testground::cmd::run_args("ip", &["link", "del", &self.0]);
    }
}

fn veths() -> std::collections::BTreeSet<String> {
    link_names(&["-o", "link", "show", "type", "veth"])
}

/// The veths enslaved to `bridge`.
fn veths_on(bridge: &str) -> std::collections::BTreeSet<String> {
    link_names(&["-o", "link", "show", "master", bridge, "type", "veth"])
}

fn link_names(args: &[&str]) -> std::collections::BTreeSet<String> {
    let out = testground::cmd::run_args("ip", args).stdout;
    out.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().split('@').next().unwrap_or("").to_string()).collect()
}

/// `network connect` of a running container configures its new interface (address, up, the
/// network's route) at once, also when a link left behind (say, by a crash) holds the name of
/// its host-side veth: that link is replaced.
#[test]
fn connect_of_a_running_container_replaces_a_leftover_link() {
    require_root!();
    let (e, _g) = engine_and_guard();
    let (subnet, base) = user_subnet(&e, 2);
    let net = e.unique("lv");
    // Its own bridge name, so the veths counted are this network's only (other tests run in
    // parallel and make veths of their own).
    let br = e.unique("lv").replace('-', "");
    e.docker_ok(&["network", "create", "--subnet", &subnet, "-o", &format!("com.docker.network.bridge.name={br}"), &net]);
    let c = e.unique("lvc");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    assert!(veths_on(&br).is_empty());
    e.docker_ok(&["network", "connect", &net, &c]);
    let added: Vec<String> = veths_on(&br).into_iter().collect();
    assert_eq!(added.len(), 1, "{added:?}");
    e.docker_ok(&["network", "disconnect", &net, &c]);
    assert!(wait_until(std::time::Duration::from_secs(5), || !veths().contains(&added[0])));
    let _leftover = Link(added[0].clone());
    assert!(testground::cmd::run_args("ip", &["link", "add", &added[0], "type", "bridge"]).success());
    e.docker_ok(&["network", "connect", &net, &c]);
    let ip = inspect(&e, &c, &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"));
    assert!(ip.starts_with(&base), "{ip}");
    let inside = e.docker_ok(&["exec", &c, "sh", "-c", "ip -o -4 addr show eth1; ip -o link show eth1; ip route"]);
    assert!(inside.contains(&format!("{ip}/24")) && inside.contains("LOWER_UP"), "{inside}");
    assert!(inside.contains(&format!("{base}0/24 dev eth1")), "{inside}");
    let link = testground::cmd::run_args("ip", &["-d", "-o", "link", "show", &added[0]]).stdout;
    assert!(link.contains("veth") && !link.contains("bridge forward_delay"), "{link}");
    e.docker_ok(&["rm", "-f", &c]);
    e.docker_ok(&["network", "rm", &net]);
}
