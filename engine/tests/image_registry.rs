//! Pulls from a real `docker-registry` (Debian's distribution 2.8) on a free loopback port:
//! a busybox image pushed through the registry API, pulled through `ImageService`, checked
//! for dockerd's progress messages, the stored image and its unpacked layer.
use engine::image::progress::Progress;
use engine::image::reference::Reference;
use engine::image::ImageService;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The registry process, killed when the test ends (also on failure).
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    let reg = Registry { child, port, _dir: dir };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/v2/")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "registry did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reg
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// /bin/busybox plus a relative symlink per applet, as a tar.
fn busybox_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_path("bin/").unwrap();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    b.append(&dir, std::io::empty()).unwrap();
    let bin = std::fs::read("/bin/busybox").expect("busybox-static");
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/busybox").unwrap();
    h.set_mode(0o755);
    h.set_size(bin.len() as u64);
    h.set_cksum();
    b.append(&h, &bin[..]).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap().stdout;
    for applet in String::from_utf8_lossy(&list).lines().filter(|a| *a != "busybox" && !a.is_empty()) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path(format!("bin/{applet}")).unwrap();
        h.set_link_name("busybox").unwrap();
        h.set_mode(0o777);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }
    b.into_inner().unwrap()
}

async fn upload_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    let d = sha(data);
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") { loc } else { format!("{base}{loc}") };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r =
        c.put(format!("{loc}{sep}digest={d}")).header("Content-Type", "application/octet-stream").body(data.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    d
}

async fn put_manifest(c: &reqwest::Client, base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Pushes busybox as `it/busybox:latest` (schema 2) and `it/busybox:multi` (OCI index with an
/// arm64 decoy). Returns (manifest digest, diff id, layer digest, index digest).
async fn push_busybox(base: &str) -> (String, String, String, String) {
    let c = reqwest::Client::new();
    let tar = busybox_tar();
    let diff_id = sha(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let layer = upload_blob(&c, base, "it/busybox", &gz).await;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], "Labels": {"it": "yes"}},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "test"}],
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    }))
    .unwrap();
    let cfg = upload_blob(&c, base, "it/busybox", &config).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": cfg},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz.len(), "digest": layer}]
    }))
    .unwrap();
    put_manifest(&c, base, "it/busybox", "latest", "application/vnd.docker.distribution.manifest.v2+json", &manifest).await;
    let mdigest = sha(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": mdigest, "size": manifest.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": mdigest, "size": manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    }))
    .unwrap();
    put_manifest(&c, base, "it/busybox", "multi", "application/vnd.oci.image.index.v1+json", &index).await;
    (mdigest, diff_id, layer, sha(&index))
}

async fn pull(svc: &Arc<ImageService>, name: &str) -> (Result<String, String>, Vec<Value>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let r = Reference::parse_tagged(name).unwrap();
    let res = match svc.prepare_pull(r, None).await {
        Ok(p) => p.run(&Progress::new(tx)).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut msgs = Vec::new();
    while let Ok(m) = rx.try_recv() {
        msgs.push(m);
    }
    (res, msgs)
}

fn statuses(msgs: &[Value]) -> Vec<String> {
    msgs.iter().filter_map(|m| m["status"].as_str().map(String::from)).collect()
}

#[tokio::test]
async fn pull_from_real_registry() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reg = start_registry().await;
    let host = format!("127.0.0.1:{}", reg.port);
    let base = format!("http://{host}");
    let (mdigest, diff_id, layer, index_digest) = push_busybox(&base).await;
    let data = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(data.path(), &[], Default::default()).unwrap());
    let name = format!("{host}/it/busybox");

    // First pull: everything downloads.
    let (res, msgs) = pull(&svc, &name).await;
    let id = res.unwrap();
    let st = statuses(&msgs);
    let id12 = &layer[7..19];
    assert_eq!(msgs[0], json!({"status": "Pulling from it/busybox", "id": "latest"}));
    assert!(msgs.contains(&json!({"status": "Pulling fs layer", "progressDetail": {}, "id": id12})), "{msgs:?}");
    let dl = msgs.iter().find(|m| m["status"] == "Downloading").expect("Downloading message");
    assert_eq!(dl["id"], id12);
    assert!(dl["progressDetail"]["total"].as_u64().unwrap() > 0);
    assert!(dl["progress"].as_str().unwrap().starts_with('['));
    for s in ["Verifying Checksum", "Download complete", "Extracting", "Pull complete"] {
        assert!(st.iter().any(|x| x == s), "missing {s}: {st:?}");
    }
    let order = |s: &str| st.iter().position(|x| x == s).unwrap();
    assert!(order("Pulling fs layer") < order("Downloading"));
    assert!(order("Download complete") < order("Extracting"));
    assert!(order("Extracting") < order("Pull complete"));
    assert_eq!(st[st.len() - 2], format!("Digest: {mdigest}"));
    assert_eq!(st[st.len() - 1], format!("Status: Downloaded newer image for {name}:latest"));

    // Stored image and its unpacked layer.
    let img = svc.resolve(&name).unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.run_config.cmd, vec!["sh"]);
    assert_eq!(img.layer_dirs.len(), 1);
    assert!(img.layer_dirs[0].ends_with(format!("layers/{}/diff", &diff_id[7..])));
    let bb = img.layer_dirs[0].join("bin/busybox");
    assert_eq!(std::fs::metadata(&bb).unwrap().len(), std::fs::metadata("/bin/busybox").unwrap().len());
    assert_eq!(std::fs::read_link(img.layer_dirs[0].join("bin/sh")).unwrap(), std::path::Path::new("busybox"));
    let inspect = svc.inspect(&name).unwrap();
    assert_eq!(inspect["RepoTags"], json!([format!("{name}:latest")]));
    assert_eq!(inspect["RepoDigests"], json!([format!("{name}@{mdigest}")]));
    assert_eq!(inspect["RootFS"]["Layers"], json!([diff_id]));
    assert_eq!(inspect["GraphDriver"]["Name"], "overlay2");
    assert!(svc.blob_path(&layer).exists());

    // Second pull: nothing new.
    let (res, msgs) = pull(&svc, &name).await;
    assert_eq!(res.unwrap(), id);
    assert!(msgs.contains(&json!({"status": "Already exists", "progressDetail": {}, "id": id12})), "{msgs:?}");
    assert_eq!(statuses(&msgs).last().unwrap(), &format!("Status: Image is up to date for {name}:latest"));

    // An index picks linux/amd64; by digest works too.
    let (res, msgs) = pull(&svc, &format!("{name}:multi")).await;
    assert_eq!(res.unwrap(), id);
    assert!(statuses(&msgs).contains(&format!("Digest: {index_digest}")));
    let (res, msgs) = pull(&svc, &format!("{name}@{mdigest}")).await;
    assert_eq!(res.unwrap(), id);
    assert_eq!(msgs[0], json!({"status": "Pulling from it/busybox", "id": mdigest}));

    // A missing image: dockerd's text, before any progress.
    let (res, msgs) = pull(&svc, &format!("{host}/nope")).await;
    let err = res.unwrap_err();
    assert!(msgs.is_empty());
    assert!(
        err == format!("manifest for {host}/nope:latest not found: manifest unknown: manifest unknown")
            || err.starts_with(&format!("repository {host}/nope not found: name unknown")),
        "{err}"
    );
    let (res, _) = pull(&svc, &format!("{name}:nosuchtag")).await;
    assert_eq!(res.unwrap_err(), format!("manifest for {name}:nosuchtag not found: manifest unknown: manifest unknown"));

    // Nothing is running on this port: a clear connection error.
    let dead = format!("127.0.0.1:{}/x", free_port());
    let (res, _) = pull(&svc, &dead).await;
    assert!(res.unwrap_err().contains("/v2/"), "connection error should name the URL");

    // rmi removes the layer directory and the blobs.
    let recs = svc.delete(&id, true, true).unwrap();
    assert!(recs.iter().any(|r| r["Deleted"] == json!(id)), "{recs:?}");
    assert!(!img.layer_dirs[0].exists());
    assert!(!svc.blob_path(&layer).exists());
    drop(reg);
}

/// A registry that wants a bearer token from its token service (basic auth `u:p`).
#[tokio::test]
async fn pull_with_bearer_token_auth() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("secret.txt").unwrap();
        h.set_size(2);
        h.set_mode(0o600);
        h.set_cksum();
        b.append(&h, &b"ok"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let config =
        serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[sha(&tar)]}})).unwrap();
    let manifest = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":sha(&config),"size":config.len()},
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":sha(&tar),"size":tar.len()}]}))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let blobs: Arc<std::collections::HashMap<String, Vec<u8>>> =
        Arc::new([(sha(&tar), tar.clone()), (sha(&config), config.clone())].into_iter().collect());
    let realm = format!("http://127.0.0.1:{port}/token");
    let authed = |h: &HeaderMap| h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok123");
    let challenge = move || {
        (
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", format!("Bearer realm=\"{realm}\",service=\"mock\""))],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response()
    };
    let (c1, c2, c3) = (challenge.clone(), challenge.clone(), challenge);
    let m = manifest.clone();
    let app = axum::Router::new()
        .route(
            "/v2/",
            axum::routing::get(move |h: HeaderMap| async move {
                if authed(&h) {
                    "{}".into_response()
                } else {
                    c1()
                }
            }),
        )
        .route(
            "/token",
            axum::routing::get(|h: HeaderMap, q: axum::extract::RawQuery| async move {
                let q = q.0.unwrap_or_default();
                let basic = h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic dTpw");
                if basic && q.contains("scope=repository%3Apriv%2Fimg%3Apull") && q.contains("service=mock") {
                    axum::Json(json!({"token": "tok123"})).into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#).into_response()
                }
            }),
        )
        .route(
            "/v2/priv/img/manifests/{r}",
            axum::routing::get(move |h: HeaderMap| async move {
                if !authed(&h) {
                    return c2();
                }
                ([("Content-Type", "application/vnd.oci.image.manifest.v1+json")], m).into_response()
            }),
        )
        .route(
            "/v2/priv/img/blobs/{d}",
            axum::routing::get(move |h: HeaderMap, axum::extract::Path(d): axum::extract::Path<String>| async move {
                if !authed(&h) {
                    return c3();
                }
                blobs.get(&d).cloned().map(|b| b.into_response()).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
            }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let data = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(data.path(), &[], Default::default()).unwrap());
    let name = format!("127.0.0.1:{port}/priv/img:latest");

    // Without credentials the token service refuses.
    let r = Reference::parse_tagged(&name).unwrap();
    let err = svc.prepare_pull(r.clone(), None).await.err().expect("must fail without credentials").to_string();
    assert!(err.contains("bad credentials"), "{err}");

    // X-Registry-Auth as the docker CLI sends it: base64url of {"username","password"}.
    let header = engine::image::registry::base64_encode(br#"{"username":"u","password":"p"}"#).replace('+', "-").replace('/', "_");
    let creds = engine::image::registry::Credentials::from_header(&header);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let id = svc.prepare_pull(r, creds).await.unwrap().run(&Progress::new(tx)).await.unwrap();
    assert_eq!(id, sha(&config));
    let img = svc.resolve(&name).unwrap();
    assert_eq!(std::fs::read(img.layer_dirs[0].join("secret.txt")).unwrap(), b"ok");
    let mut last = Value::Null;
    while let Ok(m) = rx.try_recv() {
        last = m;
    }
    assert_eq!(last["status"], format!("Status: Downloaded newer image for {name}"));
    server.abort();
}
