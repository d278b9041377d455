//! Network routes: thin handlers over `NetworkService` (and `ContainerService` for connect and
//! disconnect, which change containers).
use super::{ApiError, AppState, DockerJson, Params};
use crate::network::{CreateNetwork, Network, PruneFilters};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// A network as `docker network inspect`/`ls` show it.
fn network_json(st: &AppState, n: &Network, with_containers: bool) -> Value {
    let mut ipam_config = vec![];
    if !n.subnet.is_empty() {
        let mut c = json!({"Subnet": n.subnet, "Gateway": n.gateway.to_string()});
        if let Some(r) = &n.ip_range {
            c["IPRange"] = json!(r);
        }
        ipam_config.push(c);
    }
    let mut options = serde_json::to_value(&n.options).unwrap_or_else(|_| json!({}));
    if n.is_default() {
        options = json!({
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": n.options.get("com.docker.network.bridge.enable_ip_masquerade").map_or("true", |v| v.as_str()),
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": n.bridge,
            "com.docker.network.driver.mtu": n.options.get("com.docker.network.driver.mtu").map_or("1500", |v| v.as_str()),
        });
    }
    let mut containers = serde_json::Map::new();
    if with_containers {
        for (id, name, ep) in st.network.containers_of(&n.id) {
            // A container whose start was made ahead is not started yet: not here (as dockerd).
            if st.containers.made_ahead(&id) {
                continue;
            }
            containers.insert(
                id,
                json!({
                    "Name": name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, ep.prefix_len),
                    "IPv6Address": "",
                }),
            );
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": scope(&n.driver),
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam_config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// `global` for overlay networks (shared through the cluster store), else `local`.
fn scope(driver: &str) -> &'static str {
    if driver == crate::network::overlay::DRIVER {
        "global"
    } else {
        "local"
    }
}

fn predefined(n: &Network) -> bool {
    n.is_default() || n.driver == "host" || n.driver == "null"
}

fn matches(st: &AppState, n: &Network, f: &HashMap<String, Vec<String>>) -> Result<bool, ApiError> {
    for (key, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
            "id" => vals.iter().any(|v| n.id.contains(v.as_str())),
            "driver" => vals.contains(&n.driver),
            "scope" => vals.iter().any(|v| v == scope(&n.driver)),
            "label" => vals.iter().all(|v| crate::network::has_label(&n.labels, v)),
            "type" => vals.iter().any(|v| match v.as_str() {
                "custom" => !predefined(n),
                "builtin" => predefined(n),
                _ => false,
            }),
            "dangling" => {
                let dangling = !predefined(n) && st.network.containers_of(&n.id).is_empty();
                vals.iter().any(|v| matches!(v.as_str(), "true" | "1") == dangling)
            }
            other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(st): State<AppState>, p: Params) -> Result<Json<Vec<Value>>, ApiError> {
    let f = p.filters()?;
    for (k, vals) in &f {
        if k == "type" {
            if let Some(v) = vals.iter().find(|v| *v != "custom" && *v != "builtin") {
                return Err(ApiError::bad_request(format!("invalid filter: 'type'='{v}'")));
            }
        }
    }
    let mut out = vec![];
    for n in st.network.networks() {
        if matches(&st, &n, &f)? {
            out.push(network_json(&st, &n, false));
        }
    }
    Ok(Json(out))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let n = st.network.network(&id)?;
    Ok(Json(network_json(&st, &n, true)))
}

async fn create(
    State(st): State<AppState>,
    DockerJson(req): DockerJson<NetworkCreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if req.ingress == Some(true) {
        return Err(ApiError::bad_request("ingress networks (--ingress) belong to swarm mode and are not supported by this engine"));
    }
    if req.config_only == Some(true) || req.config_from.as_ref().is_some_and(|c| c.network.as_deref().is_some_and(|n| !n.is_empty())) {
        return Err(ApiError::bad_request("configuration-only networks (--config-only, --config-from) are not supported by this engine"));
    }
    if req.enable_ipv4 == Some(false) {
        return Err(ApiError::bad_request("networks without IPv4 (EnableIPv4 false) are not supported by this engine"));
    }
    // A bridge network is local and an overlay one global, as `network inspect` shows them.
    let scope = scope(req.driver.as_deref().unwrap_or_default());
    if let Some(s) = req.scope.as_deref().filter(|s| !s.is_empty() && *s != scope) {
        return Err(ApiError::bad_request(format!(
            "network scope {s:?} is not supported for this driver by this engine: its networks are {scope:?}"
        )));
    }
    if let Some(ipam) = &req.ipam {
        if let Some(d) = ipam.driver.as_deref().filter(|d| !d.is_empty() && *d != "default") {
            return Err(ApiError::bad_request(format!("IPAM driver {d:?} is not supported by this engine: only \"default\" is")));
        }
        if let Some((k, _)) = ipam.options.iter().flatten().next() {
            return Err(ApiError::bad_request(format!("IPAM option {k:?} is not supported by the default IPAM driver of this engine")));
        }
        if ipam.config.iter().flatten().any(|c| c.auxiliary_addresses.as_ref().is_some_and(|a| !a.is_empty())) {
            return Err(ApiError::bad_request("auxiliary addresses (--aux-address) are not supported by this engine"));
        }
    }
    let configs = req.ipam.as_ref().and_then(|i| i.config.clone()).unwrap_or_default();
    let v4: Vec<_> = configs.iter().filter(|c| !c.subnet.as_deref().unwrap_or("").contains(':')).collect();
    if v4.len() > 1 {
        return Err(ApiError::bad_request("only one IPv4 subnet per network is supported by this engine"));
    }
    let c = v4.first();
    let none_if_empty = |s: Option<&String>| s.filter(|x| !x.is_empty()).cloned();
    let ipv6 = req.enable_ipv6 == Some(true) || configs.iter().any(|c| c.subnet.as_deref().unwrap_or("").contains(':'));
    let net = st
        .network
        .create_network(CreateNetwork {
            name: req.name.clone(),
            driver: req.driver.clone().unwrap_or_default(),
            subnet: c.and_then(|c| none_if_empty(c.subnet.as_ref())),
            gateway: c.and_then(|c| none_if_empty(c.gateway.as_ref())),
            ip_range: c.and_then(|c| none_if_empty(c.ip_range.as_ref())),
            internal: req.internal.unwrap_or(false),
            ipv6,
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            options: req.options.clone().unwrap_or_default().into_iter().collect(),
            attachable: req.attachable.unwrap_or(false),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": net.id, "Warning": ""}))))
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.network.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Go-style durations (`24h`, `1h30m`, `90s`) or a unix timestamp, as of `now`.
fn parse_until(v: &str, now: i64) -> Result<i64, ApiError> {
    if let Ok(ts) = v.parse::<i64>() {
        return Ok(ts);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    let bad = || ApiError::bad_request(format!("invalid filter 'until={v}'"));
    let (mut total, mut num) = (0f64, String::new());
    for c in v.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(now - total as i64)
}

async fn prune(State(st): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let f = p.filters()?;
    let mut pf = PruneFilters::default();
    for (k, vals) in f {
        match k.as_str() {
            "label" => pf.labels = vals,
            "label!" => pf.labels_not = vals,
            "until" => {
                if let Some(v) = vals.first() {
                    pf.until = Some(parse_until(v, chrono::Utc::now().timestamp())?);
                }
            }
            other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        }
    }
    let deleted = st.network.prune_networks(&pf).await?;
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

async fn connect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    DockerJson(req): DockerJson<NetworkConnectRequest>,
) -> Result<StatusCode, ApiError> {
    st.containers.network_connect(&id, &req.container, req.endpoint_config.as_ref()).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    DockerJson(req): DockerJson<NetworkDisconnectRequest>,
) -> Result<StatusCode, ApiError> {
    st.containers.network_disconnect(&id, &req.container, req.force.unwrap_or(false)).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_values() {
        assert_eq!(parse_until("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_until("1h30m", 10_000).unwrap(), 10_000 - 5400);
        assert_eq!(parse_until("10s", 100).unwrap(), 90);
        assert!(parse_until("10x", 0).is_err());
        assert!(parse_until("10", 0).is_ok());
    }
}
