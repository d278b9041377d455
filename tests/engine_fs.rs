//! A container's files from outside: `docker cp` both ways (created, running and stopped
//! containers, volumes, escapes refused), `docker export`, `docker diff`, `container prune`,
//! `system df`.
mod common;
use common::*;
use std::path::Path;

/// Files below `dir` as sorted `path=content` (symlinks as `path->target`).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!("{rel}->{}", std::fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(format!("{rel}={}", std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn cp_round_trips_a_directory() {
    require_root!();
    let e = engine_with_busybox();
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("payload");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("sub/deeper/b.txt"), "beta\n").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let want = tree(&src);
    let s = src.display().to_string();
    let vol = e.unique("cpvol");
    // Created (never started), running and stopped containers.
    let created = e.docker_ok(&["create", "-v", &format!("{vol}:/vol"), "busybox", "sleep", "1000"]).trim().to_string();
    e.docker_ok(&["cp", &s, &format!("{created}:/tmp/")]);
    e.docker_ok(&["cp", &s, &format!("{created}:/vol/")]);
    e.docker_ok(&["start", &created]);
    assert!(wait_status(&e, &created, "running"));
    let out = host.path().join("out1");
    std::fs::create_dir_all(&out).unwrap();
    e.docker_ok(&["cp", &format!("{created}:/tmp/payload"), &out.display().to_string()]);
    assert_eq!(tree(&out.join("payload")), want);
    // Into a running container's volume and out of it again.
    e.docker_ok(&["cp", &src.join("a.txt").display().to_string(), &format!("{created}:/vol/payload/copied.txt")]);
    e.docker_ok(&["stop", "-t", "0", &created]);
    let out2 = host.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    e.docker_ok(&["cp", &format!("{created}:/vol/payload/."), &out2.display().to_string()]);
    let mut want2 = want.clone();
    want2.push("copied.txt=alpha\n".into());
    want2.sort();
    assert_eq!(tree(&out2), want2);
    // What was copied into the stopped container's volume is in the volume.
    assert_eq!(e.docker_ok(&["run", "--rm", "-v", &format!("{vol}:/v"), "busybox", "cat", "/v/payload/a.txt"]), "alpha\n");
    // A single file to stdout as a tar, and errors.
    let o = e.sh(&format!("docker cp {created}:/tmp/payload/a.txt - | tar -xO"));
    assert_eq!(o.stdout, "alpha\n", "{o}");
    let o = e.docker(&["cp", &format!("{created}:/nonexistent"), "-"]);
    assert!(!o.success() && o.stderr.contains("Could not find the file /nonexistent in container"), "{o}");
    let o = e.docker(&["cp", &s, &format!("{created}:/no/such/dir/x")]);
    assert!(!o.success() && o.stderr.contains("Could not find the file"), "{o}");
    e.docker_ok(&["rm", "-f", &created]);
    // Nothing stays mounted below the data root.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&e.data_root().display().to_string()), "{mounts}");
}

#[test]
fn cp_stays_inside_the_container() {
    require_root!();
    let e = engine_with_busybox();
    let canary = Canary::new("cp");
    let c = canary.0.display().to_string();
    let ctr = e.unique("esc");
    // Symlinks that would point outside if resolved on the host.
    e.docker_ok(&[
        "run",
        "--name",
        &ctr,
        "busybox",
        "sh",
        "-c",
        &format!("ln -s {c} /abs; ln -s ../../../../../../../../{c} /rel; ln -s /etc /etclink; mkdir -p /tmp/d"),
    ]);
    let host = tempfile::tempdir().unwrap();
    let f = host.path().join("f");
    std::fs::write(&f, "payload\n").unwrap();
    let fs = f.display().to_string();
    for dst in ["/abs", "/rel", "/../../../../../../..", "/etclink/.."] {
        let _ = e.docker(&["cp", &fs, &format!("{ctr}:{dst}")]);
        assert!(!canary.0.exists(), "cp to {dst} reached the host");
    }
    // Through a symlink to a directory: lands in the container's /etc.
    e.docker_ok(&["cp", &fs, &format!("{ctr}:/etclink/")]);
    let o = e.sh(&format!("docker cp {ctr}:/etc/f - | tar -xO"));
    assert_eq!(o.stdout, "payload\n", "{o}");
    // Reading through links resolves inside the container: busybox's passwd, not the host's.
    let o = e.sh(&format!("docker cp -L {ctr}:/etclink/passwd - | tar -xO"));
    assert!(o.stdout.starts_with("root:x:0:0:root:/root:/bin/sh"), "{o}");
    let o = e.sh(&format!("docker cp {ctr}:/../../../../etc/passwd - | tar -xO"));
    assert!(o.stdout.starts_with("root:x:0:0:root:/root:/bin/sh"), "{o}");
    // A symlink is copied as a symlink without -L.
    let out = host.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    e.docker_ok(&["cp", &format!("{ctr}:/abs"), &out.display().to_string()]);
    assert_eq!(std::fs::read_link(out.join("abs")).unwrap(), canary.0);
    // An archive naming `..` is refused by the engine itself.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(2);
    h.set_mode(0o644);
    let name = format!("../../../../../../..{c}");
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    let body = b.into_inner().unwrap();
    let r = e.api("PUT", &format!("/v1.41/containers/{ctr}/archive?path=/tmp/d"), Some(("application/x-tar", &body))).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!canary.0.exists());
    // HEAD: the stat header.
    let r = e.api("HEAD", &format!("/v1.41/containers/{ctr}/archive?path=/etclink"), None).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("X-Docker-Container-Path-Stat").is_some());
}

#[test]
fn diff_export_prune_and_df() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("d");
    e.docker_ok(&["run", "--name", &c, "busybox", "sh", "-c", "mkdir /newdir; echo a > /newdir/x; rm /etc/group; echo m >> /etc/passwd"]);
    assert_eq!(lines(&e.docker_ok(&["diff", &c])), ["C /etc", "D /etc/group", "C /etc/passwd", "A /newdir", "A /newdir/x"]);
    let o = e.sh(&format!("docker export {c} | tar -t"));
    e.expect_ok(&o);
    let names = lines(&o.stdout);
    for want in ["bin/busybox", "newdir/", "newdir/x", "etc/passwd"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from export");
    }
    assert!(!names.iter().any(|n| n == "etc/group"));
    let o = e.sh(&format!("docker export {c} | tar -xO etc/passwd"));
    assert!(o.stdout.ends_with("m\n"), "{o}");

    // system df sees the container's writable layer and the volume.
    let v = e.unique("dfv");
    e.docker_ok(&["run", "--rm", "-v", &format!("{v}:/v"), "busybox", "sh", "-c", "head -c 3000 /dev/zero > /v/z"]);
    let df = e.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]);
    let df = lines(&df);
    assert_eq!(df[0], "Images 1 1", "{df:?}");
    assert_eq!(df[1], "Containers 1 0", "{df:?}");
    assert_eq!(df[2], "Local Volumes 1 0", "{df:?}");
    let r = e.api("GET", "/v1.41/system/df", None).unwrap().json().unwrap();
    assert!(r["LayersSize"].as_u64().unwrap() > 1_000_000, "{r}");
    assert!(r["Containers"][0]["SizeRw"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["Volumes"][0]["UsageData"]["Size"], 3000, "{r}");
    assert_eq!(r["Volumes"][0]["UsageData"]["RefCount"], 0, "{r}");

    // container prune: stopped ones only, label filters.
    let keep = e.unique("keep");
    e.docker_ok(&["create", "--name", &keep, "-l", "keep=1", "busybox"]);
    let running = e.unique("run");
    e.docker_ok(&["run", "-d", "--name", &running, "busybox", "sleep", "1000"]);
    let out = e.docker_ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.contains("Deleted Containers:") && out.contains("Total reclaimed space:"), "{out}");
    let names = sorted_lines(&e.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]));
    let mut want = vec![keep.clone(), running.clone()];
    want.sort();
    assert_eq!(names, want);
    let r = e.api("POST", "/v1.41/containers/prune?filters=%7B%22until%22%3A%7B%221h%22%3Atrue%7D%7D", None).unwrap().json().unwrap();
    assert_eq!(r["ContainersDeleted"], serde_json::Value::Null, "{r}");
    e.docker_ok(&["container", "prune", "-f"]);
    assert_eq!(lines(&e.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])), [running.as_str()]);
    e.docker_ok(&["rm", "-f", &running]);
}

#[test]
fn cp_out_keeps_owner_names_and_hard_links() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("cpl");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    e.docker_ok(&["exec", &c, "sh", "-c", "mkdir /d && echo x > /d/a && ln /d/a /d/b && chown 65534:65534 /d/a"]);
    let o = e.sh(&format!("docker cp {c}:/d - | tar -tvf - | sort -k6"));
    e.expect_ok(&o);
    let rows: Vec<Vec<&str>> = o.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    // `perm owner/group size date time name [link to target]`, owners by name as in the container.
    assert_eq!(rows.len(), 3, "{o}");
    assert_eq!((rows[0][1], rows[0][5]), ("root/root", "d/"), "{o}");
    // One name is the file, the other a hard link to it (which comes first is readdir's order).
    let (file, link) = if rows[1][0].starts_with('h') { (&rows[2], &rows[1]) } else { (&rows[1], &rows[2]) };
    assert!(file[0].starts_with('-') && link[0].starts_with('h'), "{o}");
    assert_eq!((file[1], link[1]), ("nobody/nogroup", "nobody/nogroup"), "{o}");
    assert_eq!(link[6..], ["link", "to", file[5]], "{o}");
    assert_eq!(sorted_lines(&format!("{}\n{}", file[5], link[5])), ["d/a", "d/b"]);
}

/// The files the engine mounts over (/etc/hosts, hostname, resolv.conf) are made before a
/// container's first start where the image has none: the image's /etc keeps its mode and owner
/// in the container, the mounts work, and none of it is a change (`docker diff`), on the first
/// start and on the next.
#[test]
fn etc_mount_targets_keep_the_image_etc_and_are_no_change() {
    require_root!();
    let e = engine_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN chmod 750 /etc && chown 1234:5678 /etc\n").unwrap();
    let tag = e.unique("etcimg");
    e.docker_ok(&["build", "-q", "-t", &tag, &ctx.path().display().to_string()]);
    let c = e.unique("etc");
    let script = "stat -c '%a %u %g' /etc; cat /etc/hostname; grep -c h1 /etc/hosts; grep -q nameserver /etc/resolv.conf && echo resolv";
    let want = ["750 1234 5678", "h1", "1", "resolv"];
    assert_eq!(lines(&e.docker_ok(&["run", "--name", &c, "--hostname", "h1", &tag, "sh", "-c", script])), want);
    assert_eq!(e.docker_ok(&["diff", &c]), "");
    assert_eq!(lines(&e.docker_ok(&["start", "-a", &c])), want);
    assert_eq!(e.docker_ok(&["diff", &c]), "");
    // Nor is it in a commit's layer (dockerd keeps it in the init layer).
    let committed = e.unique("etccommit");
    e.docker_ok(&["commit", &c, &committed]);
    assert_eq!(top_layer_entries(&e, &committed), Vec::<String>::new());
    e.docker_ok(&["rm", &c]);
    // A container that changes /etc itself has that change, and only it.
    let c2 = e.unique("etc2");
    e.docker_ok(&["run", "--name", &c2, &tag, "chmod", "700", "/etc"]);
    assert_eq!(e.docker_ok(&["diff", &c2]).trim(), "C /etc");
    e.docker_ok(&["commit", &c2, &committed]);
    assert_eq!(top_layer_entries(&e, &committed), ["etc/"]);
    e.docker_ok(&["rm", &c2]);
}

/// The entries of the top layer of `image`, read from `docker save`.
fn top_layer_entries(e: &Engine, image: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("img.tar");
    e.docker_ok(&["save", "-o", &file.display().to_string(), image]);
    let data = std::fs::read(&file).unwrap();
    let read = |name: &str| -> Vec<u8> {
        for entry in tar::Archive::new(&data[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some(name) {
                let mut v = vec![];
                std::io::Read::read_to_end(&mut entry, &mut v).unwrap();
                return v;
            }
        }
        panic!("no {name} in docker save's output");
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let top = manifest[0]["Layers"].as_array().and_then(|l| l.last()).and_then(|l| l.as_str()).unwrap().to_string();
    let layer = read(&top);
    tar::Archive::new(&layer[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
}

/// An upload whose archive ends (its end marker) before its body does (padding, then the
/// chunked body's end, sent later as a slow client would): the copy is answered only once the
/// whole body is read, and the connection stays usable, as `docker cp` needs (it is still
/// writing; a connection closed under it fails the command with "broken pipe").
#[test]
fn cp_upload_answers_after_the_whole_body() {
    use std::io::{BufRead, BufReader, Read, Write};
    require_root!();
    let e = engine_with_busybox();
    let ctr = e.docker_ok(&["create", "busybox", "true"]).trim().to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("up.txt").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"up\n"[..]).unwrap();
    let archive = b.into_inner().unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(e.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(
        s,
        "PUT /v1.41/containers/{ctr}/archive?path=/tmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        archive.len()
    )
    .unwrap();
    s.write_all(&archive).unwrap();
    s.write_all(b"\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Padding after the end marker, then the body's end.
    let pad = vec![0u8; 4096];
    write!(s, "{:x}\r\n", pad.len()).unwrap();
    s.write_all(&pad).unwrap();
    s.write_all(b"\r\n0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let read_response = |r: &mut BufReader<std::os::unix::net::UnixStream>| -> (String, Vec<u8>) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut len = 0;
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" || l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        (status, body)
    };
    let (status, _) = read_response(&mut r);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // The same connection answers the next request.
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut r);
    assert!(status.starts_with("HTTP/1.1 200") && body == b"OK", "{status} {body:?}");
    let out = e.sh(&format!("docker cp {ctr}:/tmp/up.txt - | tar -xO"));
    assert_eq!(out.stdout, "up\n", "{out}");
    e.docker_ok(&["rm", &ctr]);
}
