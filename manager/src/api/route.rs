//! The route table, as data: every request is classified once (pure, tested below) into how the
//! manager answers it: locally, by aggregating every node, by scheduling, by proxying to one
//! node (plain, re-inspecting after, or hijacked), or not at all (404, like classic Swarm).
use hyper::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local(Local),
    Aggregate(Aggregate),
    /// Applied on several nodes.
    Fanout(Fanout),
    Schedule(Schedule),
    Proxy {
        to: Owner,
        mode: Mode,
    },
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Ping,
    Version,
    Info,
    Events,
    Metrics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    Containers,
    Images,
    Networks,
    Network(String),
    Volumes,
    Volume(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fanout {
    /// `images/create?fromImage=` (or `fromSrc=`: import).
    ImageCreate,
    ImageLoad,
    ImageTag(String),
    ImageRemove(String),
    NetworkCreate,
    NetworkRemove(String),
    VolumeCreate,
    VolumeRemove(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Create,
    Build,
}

/// Which node gets a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The node holding the container; `rest` is the path after the ID (`/logs`, `` …).
    Container {
        id: String,
        rest: String,
    },
    Exec {
        id: String,
        rest: String,
    },
    /// The first node holding the image.
    Image {
        name: String,
        rest: String,
    },
    /// `images/get?names=…`: a node holding them all.
    ImagesGet,
    /// `commit?container=`: the container's node.
    CommitSource,
    /// `networks/{id}/connect|disconnect`: the node of the container in the body.
    NetworkMember {
        id: String,
        rest: String,
    },
    /// The scheduler's pick for an empty request (search, auth).
    AnyNode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stream through as is.
    Plain,
    /// Then re-inspect the container.
    Refresh,
    /// Then forget the container.
    Remove,
    /// Raw stream both ways (attach, exec start).
    Hijack,
    /// Record the exec ID's node.
    ExecCreate,
    /// Add the `Node` object.
    Inspect,
    /// Then re-list the node's images.
    RefreshImages,
}

const CONTAINER_OPS: [&str; 20] = [
    "json", "start", "kill", "pause", "unpause", "restart", "stop", "update", "rename", "wait", "logs", "top", "stats", "changes",
    "export", "archive", "resize", "copy", "attach", "exec",
];

fn proxy(to: Owner, mode: Mode) -> Route {
    Route::Proxy { to, mode }
}

/// Classifies a request by method and path (without the `/vX.Y` prefix).
pub fn route(method: &Method, path: &str) -> Route {
    let mut segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    // `node/name` container references: `/containers/node-1/web/json`, `DELETE /containers/node-1/web`.
    let merged;
    if segs.first() == Some(&"containers") && segs.len() >= 3 && !matches!(segs[1], "json" | "ps" | "create" | "prune") {
        let op_at_2 = CONTAINER_OPS.contains(&segs[2]);
        if (!op_at_2 && segs.len() >= 4) || (m == "DELETE" && segs.len() == 3) {
            merged = format!("{}/{}", segs[1], segs[2]);
            segs.splice(1..3, [merged.as_str()]);
        }
    }
    let rest_after = |n: usize| -> String { segs[n..].iter().map(|s| format!("/{s}")).collect() };
    match (m, segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Route::Local(Local::Ping),
        ("GET", ["version"]) => Route::Local(Local::Version),
        ("GET", ["info"]) => Route::Local(Local::Info),
        ("GET", ["events"]) => Route::Local(Local::Events),
        ("GET", ["metrics"]) => Route::Local(Local::Metrics),

        ("GET", ["containers", "json" | "ps"]) => Route::Aggregate(Aggregate::Containers),
        ("POST", ["containers", "create"]) => Route::Schedule(Schedule::Create),
        ("POST", ["containers", "prune"]) => Route::Unsupported,
        ("DELETE", ["containers", id]) => proxy(Owner::Container { id: id.to_string(), rest: String::new() }, Mode::Remove),
        (_, ["containers", id, op, ..]) => {
            let to = Owner::Container { id: id.to_string(), rest: rest_after(2) };
            let mode = match (m, *op, segs.len()) {
                ("GET", "json", 3) => Mode::Inspect,
                ("POST", "start" | "kill" | "pause" | "unpause" | "restart" | "stop" | "update" | "rename" | "wait", 3) => Mode::Refresh,
                ("GET", "logs" | "top" | "stats" | "changes" | "export", 3) => Mode::Plain,
                ("GET" | "HEAD" | "PUT", "archive", 3) => Mode::Plain,
                ("POST", "resize" | "copy", 3) => Mode::Plain,
                ("POST", "attach", 3) => Mode::Hijack,
                ("GET", "attach", 4) if segs[3] == "ws" => Mode::Hijack,
                ("POST", "exec", 3) => Mode::ExecCreate,
                _ => return Route::Unsupported,
            };
            proxy(to, mode)
        }
        ("POST", ["exec", id, "start"]) => proxy(Owner::Exec { id: id.to_string(), rest: "/start".into() }, Mode::Hijack),
        ("GET", ["exec", id, "json"]) => proxy(Owner::Exec { id: id.to_string(), rest: "/json".into() }, Mode::Plain),
        ("POST", ["exec", id, "resize"]) => proxy(Owner::Exec { id: id.to_string(), rest: "/resize".into() }, Mode::Plain),
        ("POST", ["commit"]) => proxy(Owner::CommitSource, Mode::RefreshImages),

        ("GET", ["images", "json"]) => Route::Aggregate(Aggregate::Images),
        ("POST", ["images", "create"]) => Route::Fanout(Fanout::ImageCreate),
        ("POST", ["images", "load"]) => Route::Fanout(Fanout::ImageLoad),
        ("GET", ["images", "get"]) => proxy(Owner::ImagesGet, Mode::Plain),
        ("GET", ["images", "search"]) => proxy(Owner::AnyNode, Mode::Plain),
        ("POST", ["images", "prune"]) => Route::Unsupported,
        (_, ["images", ..]) if segs.len() >= 2 => {
            // Image names may hold slashes: the operation is the last segment.
            let last = *segs.last().unwrap_or(&"");
            let name_of = |drop: usize| segs[1..segs.len() - drop].join("/");
            match (m, last) {
                ("POST", "tag") if segs.len() >= 3 => Route::Fanout(Fanout::ImageTag(name_of(1))),
                ("POST", "push") if segs.len() >= 3 => proxy(Owner::Image { name: name_of(1), rest: "/push".into() }, Mode::Plain),
                ("GET", "json" | "history" | "get") if segs.len() >= 3 => {
                    proxy(Owner::Image { name: name_of(1), rest: format!("/{last}") }, Mode::Plain)
                }
                ("DELETE", _) => Route::Fanout(Fanout::ImageRemove(name_of(0))),
                _ => Route::Unsupported,
            }
        }
        ("POST", ["auth"]) => proxy(Owner::AnyNode, Mode::Plain),
        ("POST", ["build"]) => Route::Schedule(Schedule::Build),

        ("GET", ["networks"]) => Route::Aggregate(Aggregate::Networks),
        ("POST", ["networks", "create"]) => Route::Fanout(Fanout::NetworkCreate),
        ("POST", ["networks", "prune"]) => Route::Unsupported,
        ("GET", ["networks", id @ ..]) if !id.is_empty() => Route::Aggregate(Aggregate::Network(id.join("/"))),
        ("DELETE", ["networks", id @ ..]) if !id.is_empty() => Route::Fanout(Fanout::NetworkRemove(id.join("/"))),
        ("POST", ["networks", id @ .., op @ ("connect" | "disconnect")]) if !id.is_empty() => {
            proxy(Owner::NetworkMember { id: id.join("/"), rest: format!("/{op}") }, Mode::Plain)
        }

        ("GET", ["volumes"]) => Route::Aggregate(Aggregate::Volumes),
        ("POST", ["volumes", "create"]) => Route::Fanout(Fanout::VolumeCreate),
        ("POST", ["volumes", "prune"]) => Route::Unsupported,
        ("GET", ["volumes", name @ ..]) if !name.is_empty() => Route::Aggregate(Aggregate::Volume(name.join("/"))),
        ("DELETE", ["volumes", name @ ..]) if !name.is_empty() => Route::Fanout(Fanout::VolumeRemove(name.join("/"))),
        _ => Route::Unsupported,
    }
}

/// Splits `/vX.Y/rest` into (`Some("X.Y")`, `/rest`).
pub fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let ok = ver.split('.').count() == 2 && ver.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            return (Some(ver), tail);
        }
    }
    (None, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    fn r(m: &str, p: &str) -> Route {
        route(&Method::from_bytes(m.as_bytes()).unwrap(), p)
    }
    fn c(id: &str, rest: &str, mode: Mode) -> Route {
        Route::Proxy { to: Owner::Container { id: id.into(), rest: rest.into() }, mode }
    }

    #[test]
    fn local_and_aggregates() {
        assert_eq!(r("HEAD", "/_ping"), Route::Local(Local::Ping));
        assert_eq!(r("GET", "/info"), Route::Local(Local::Info));
        assert_eq!(r("GET", "/containers/json"), Route::Aggregate(Aggregate::Containers));
        assert_eq!(r("GET", "/images/json"), Route::Aggregate(Aggregate::Images));
        assert_eq!(r("GET", "/networks/node-1/br"), Route::Aggregate(Aggregate::Network("node-1/br".into())));
        assert_eq!(r("POST", "/containers/create"), Route::Schedule(Schedule::Create));
    }

    #[test]
    fn container_routes() {
        assert_eq!(r("GET", "/containers/web/json"), c("web", "/json", Mode::Inspect));
        assert_eq!(r("POST", "/containers/web/stop"), c("web", "/stop", Mode::Refresh));
        assert_eq!(r("GET", "/containers/web/logs"), c("web", "/logs", Mode::Plain));
        assert_eq!(r("POST", "/containers/web/attach"), c("web", "/attach", Mode::Hijack));
        assert_eq!(r("GET", "/containers/web/attach/ws"), c("web", "/attach/ws", Mode::Hijack));
        assert_eq!(r("POST", "/containers/web/exec"), c("web", "/exec", Mode::ExecCreate));
        assert_eq!(r("DELETE", "/containers/web"), c("web", "", Mode::Remove));
        assert_eq!(r("GET", "/containers/node-1/web/json"), c("node-1/web", "/json", Mode::Inspect));
        assert_eq!(r("DELETE", "/containers/node-1/web"), c("node-1/web", "", Mode::Remove));
        assert_eq!(r("GET", "/containers/node-1/web/attach/ws"), c("node-1/web", "/attach/ws", Mode::Hijack));
        assert_eq!(r("POST", "/containers/web/checkpoints"), Route::Unsupported);
        assert_eq!(
            r("POST", "/exec/abc/start"),
            Route::Proxy { to: Owner::Exec { id: "abc".into(), rest: "/start".into() }, mode: Mode::Hijack }
        );
    }

    #[test]
    fn image_names_with_slashes() {
        assert_eq!(r("POST", "/images/localhost:5000/a/b/tag"), Route::Fanout(Fanout::ImageTag("localhost:5000/a/b".into())));
        assert_eq!(r("DELETE", "/images/localhost:5000/a"), Route::Fanout(Fanout::ImageRemove("localhost:5000/a".into())));
        assert_eq!(
            r("GET", "/images/busybox/json"),
            Route::Proxy { to: Owner::Image { name: "busybox".into(), rest: "/json".into() }, mode: Mode::Plain }
        );
        assert_eq!(r("POST", "/images/create"), Route::Fanout(Fanout::ImageCreate));
    }

    #[test]
    fn unsupported_like_classic() {
        for (m, p) in [
            ("GET", "/swarm"),
            ("GET", "/services"),
            ("GET", "/nodes"),
            ("GET", "/system/df"),
            ("POST", "/containers/prune"),
            ("GET", "/plugins"),
        ] {
            assert_eq!(r(m, p), Route::Unsupported, "{m} {p}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(split_version("/v1.41/info"), (Some("1.41"), "/info"));
        assert_eq!(split_version("/info"), (None, "/info"));
        assert_eq!(split_version("/volumes"), (None, "/volumes"));
    }
}
