//! Volumes: `docker volume` commands, named and anonymous volumes, image content copied into
//! new volumes, bind mounts, `--mount`, `--tmpfs`, `--volumes-from`, `--read-only`, `rm -v`.
mod common;
use common::*;

#[test]
fn volume_commands_and_filters() {
    require_root!();
    let e = engine();
    let v1 = e.unique("vol");
    assert_eq!(e.docker_ok(&["volume", "create", "--label", "team=a", &v1]).trim(), v1);
    // Creating it again is fine (the existing volume is returned).
    e.docker_ok(&["volume", "create", &v1]);
    let anon = e.docker_ok(&["volume", "create"]).trim().to_string();
    assert!(is_hex64(&anon), "{anon}");
    let mp = inspect(&e, &v1, "{{.Mountpoint}}");
    if !e.is_dockerd() {
        assert_eq!(mp, e.data_root().join("volumes").join(&v1).join("_data").display().to_string());
    }
    assert_eq!(e.docker_ok(&["volume", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Labels}}", &v1]).trim(), "local local map[team:a]");
    assert_eq!(sorted_lines(&e.docker_ok(&["volume", "ls", "-q"])), {
        let mut v = vec![anon.clone(), v1.clone()];
        v.sort();
        v
    });
    assert_eq!(lines(&e.docker_ok(&["volume", "ls", "-q", "-f", "label=team=a"])), [v1.as_str()]);
    assert_eq!(lines(&e.docker_ok(&["volume", "ls", "-q", "-f", "name=vol-"])), [v1.as_str()]);
    assert_eq!(lines(&e.docker_ok(&["volume", "ls", "-q", "-f", "driver=local", "-f", "label=team"])), [v1.as_str()]);
    assert_eq!(sorted_lines(&e.docker_ok(&["volume", "ls", "-q", "-f", "dangling=true"])).len(), 2);
    let o = e.docker(&["volume", "ls", "-f", "bogus=1"]);
    assert!(!o.success() && o.stderr.contains("Invalid filter 'bogus'"), "{o}");
    // Names that are paths are refused; nothing appears outside the volumes dir.
    for bad in ["../escape", "a/b", "..", "x"] {
        let o = e.docker(&["volume", "create", bad]);
        assert!(!o.success(), "{bad}: {o}");
        assert!(o.stderr.contains("volume name"), "{bad}: {o}");
    }
    assert!(!e.data_root().join("escape").exists());
    let o = e.docker(&["volume", "create", "-d", "nfs", &e.unique("nfs")]);
    assert!(!o.success() && o.stderr.contains("plugin \"nfs\" not found"), "{o}");
    // inspect/rm of a missing volume: Docker's words.
    let o = e.docker(&["volume", "inspect", "nope-nope"]);
    assert!(!o.success() && o.stderr.contains("no such volume"), "{o}");
    let o = e.docker(&["volume", "rm", "nope-nope"]);
    assert!(!o.success() && o.stderr.contains("get nope-nope: no such volume"), "{o}");
    // rm and prune.
    e.docker_ok(&["volume", "rm", &anon]);
    let kept = e.unique("kept");
    e.docker_ok(&["volume", "create", "--label", "keep=1", &kept]);
    let out = e.docker_ok(&["volume", "prune", "-f", "--filter", "label=team=a"]);
    assert!(out.contains(&v1) && !out.contains(&kept), "{out}");
    assert_eq!(lines(&e.docker_ok(&["volume", "ls", "-q"])), [kept.as_str()]);
    e.docker_ok(&["volume", "prune", "-f"]);
    assert_eq!(e.docker_ok(&["volume", "ls", "-q"]).trim(), "");
    assert!(!e.data_root().join("volumes").join(&v1).exists());
}

#[test]
fn named_and_anonymous_volumes() {
    require_root!();
    let e = engine_with_busybox();
    let data = e.unique("data");
    // A named volume written by one container is read by the next; it is created on first use.
    e.docker_ok(&["run", "--rm", "-v", &format!("{data}:/d"), "busybox", "sh", "-c", "echo persisted > /d/f"]);
    assert_eq!(e.docker_ok(&["run", "--rm", "-v", &format!("{data}:/d:ro"), "busybox", "cat", "/d/f"]), "persisted\n");
    let o = e.docker(&["run", "--rm", "-v", &format!("{data}:/d:ro"), "busybox", "sh", "-c", "echo x > /d/g"]);
    assert!(!o.success() && o.stderr.contains("Read-only file system"), "{o}");
    // A new, empty volume gets the image's content at the mount path (not later: it is no longer empty).
    let etc = e.unique("etc");
    let out = e.docker_ok(&["run", "--rm", "-v", &format!("{etc}:/etc"), "busybox", "sh", "-c", "cat /etc/passwd; echo new > /etc/added"]);
    assert!(out.contains("root:x:0:0"), "{out}");
    let out = e.docker_ok(&["run", "--rm", "-v", &format!("{etc}:/etc"), "busybox", "cat", "/etc/added"]);
    assert_eq!(out, "new\n");
    // nocopy: nothing copied.
    let empty = e.unique("empty");
    let out = e.docker_ok(&["run", "--rm", "-v", &format!("{empty}:/etc:nocopy"), "busybox", "ls", "-A", "/etc"]);
    assert!(!out.contains("passwd"), "{out}");

    // In use (even by a stopped container): 409 with Docker's text; rm -v keeps named volumes.
    let id = e.docker_ok(&["create", "-v", &format!("{data}:/d"), "-v", "/anon", "busybox", "true"]).trim().to_string();
    let o = e.docker(&["volume", "rm", &data]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains(&format!("remove {data}: volume is in use - [{id}]")), "{o}");
    let mounts = inspect(&e, &id, "{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}");
    assert!(mounts.contains("volume:/d:true") && mounts.contains("volume:/anon:true"), "{mounts}");
    let anon = inspect(&e, &id, r#"{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}"#);
    assert!(is_hex64(&anon), "{anon}");
    let ps = e.docker_ok(&["ps", "-a", "--no-trunc", "--format", "{{.Mounts}}"]);
    assert!(ps.contains(&data), "{ps}");
    assert_eq!(e.docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &format!("volume={data}")]).trim(), id);
    assert_eq!(e.docker_ok(&["ps", "-aq", "--filter", "volume=/nowhere"]).trim(), "");
    e.docker_ok(&["rm", "-v", &id]);
    let vols = e.docker_ok(&["volume", "ls", "-q"]);
    assert!(vols.contains(&data) && !vols.contains(&anon), "{vols}");

    // Image VOLUMEs are anonymous volumes, with the image's content; `--rm` removes them.
    let img = e.unique("volimg");
    e.docker_ok(&["import", "-c", "VOLUME /data", "-c", r#"CMD ["sh"]"#, &testground::busybox_rootfs_tar().display().to_string(), &img]);
    let before = sorted_lines(&e.docker_ok(&["volume", "ls", "-q"]));
    e.docker_ok(&["run", "--rm", &img, "sh", "-c", "echo hi > /data/f"]);
    assert_eq!(sorted_lines(&e.docker_ok(&["volume", "ls", "-q"])), before);
    let c = e.unique("vc");
    e.docker_ok(&["run", "--name", &c, &img, "sh", "-c", "echo hi > /data/f"]);
    assert_eq!(sorted_lines(&e.docker_ok(&["volume", "ls", "-q"])).len(), before.len() + 1);
    assert_eq!(inspect(&e, &c, "{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    e.docker_ok(&["rm", "-v", &c]);
    assert_eq!(sorted_lines(&e.docker_ok(&["volume", "ls", "-q"])), before);
    // Invalid specifications are refused with Docker's text.
    let o = e.docker(&["create", "-v", "rel:rel", "busybox"]);
    assert!(!o.success() && o.stderr.contains("mount path must be absolute"), "{o}");
    let o = e.docker(&["create", "-v", &format!("{data}:/x:bogus"), "busybox"]);
    assert!(!o.success() && o.stderr.contains("invalid mode: bogus"), "{o}");
    let o = e.docker(&["create", "-v", &format!("{data}:/x"), "-v", &format!("{etc}:/x"), "busybox"]);
    assert!(!o.success() && o.stderr.contains("Duplicate mount point: /x"), "{o}");
}

#[test]
fn binds_mount_flag_volumes_from_and_read_only() {
    require_root!();
    let e = engine_with_busybox();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from host\n").unwrap();
    let h = host.path().display().to_string();
    // -v /host:/path (rw) and :ro.
    e.docker_ok(&["run", "--rm", "-v", &format!("{h}:/h"), "busybox", "sh", "-c", "cat /h/f; echo back > /h/g"]);
    assert_eq!(std::fs::read_to_string(host.path().join("g")).unwrap(), "back\n");
    let o = e.docker(&["run", "--rm", "-v", &format!("{h}:/h:ro"), "busybox", "sh", "-c", "cat /h/f; touch /h/x"]);
    assert_eq!(o.stdout, "from host\n", "{o}");
    assert!(!o.success() && !host.path().join("x").exists(), "{o}");
    // A missing host path is created for -v, refused for --mount.
    let missing = host.path().join("made");
    e.docker_ok(&["run", "--rm", "-v", &format!("{}:/m", missing.display()), "busybox", "true"]);
    assert!(missing.is_dir());
    let o = e.docker(&["create", "--mount", &format!("type=bind,source={h}/nope,target=/x"), "busybox"]);
    assert!(!o.success() && o.stderr.contains("bind source path does not exist"), "{o}");
    // --mount type=bind,readonly and type=volume.
    let mv = e.unique("mv");
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={h},target=/b,readonly"),
        "--mount",
        &format!("type=volume,source={mv},target=/v"),
        "busybox",
        "sh",
        "-c",
        "cat /b/f; touch /b/y 2>/dev/null || echo ro; echo ok > /v/x; cat /v/x",
    ]);
    assert_eq!(lines(&out), ["from host", "ro", "ok"]);
    // --read-only: the rootfs refuses writes, volumes and binds do not.
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        &format!("{mv}:/v"),
        "busybox",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo rootfs-ro; echo w > /v/w && echo vol-rw",
    ]);
    assert_eq!(lines(&out), ["rootfs-ro", "vol-rw"]);
    // --volumes-from (and its :ro).
    let src = e.unique("src");
    let shared = e.unique("shared");
    e.docker_ok(&[
        "run",
        "--name",
        &src,
        "-v",
        &format!("{shared}:/shared"),
        "-v",
        &format!("{h}:/h"),
        "busybox",
        "sh",
        "-c",
        "echo from > /shared/x",
    ]);
    assert_eq!(
        lines(&e.docker_ok(&["run", "--rm", "--volumes-from", &src, "busybox", "sh", "-c", "cat /shared/x /h/f"])),
        ["from", "from host"]
    );
    let o = e.docker(&["run", "--rm", "--volumes-from", &format!("{src}:ro"), "busybox", "sh", "-c", "touch /shared/y"]);
    assert!(!o.success() && o.stderr.contains("Read-only file system"), "{o}");
    let o = e.docker(&["create", "--volumes-from", "no-such-container", "busybox"]);
    assert!(!o.success() && o.stderr.contains("No such container: no-such-container"), "{o}");
    let binds = inspect(&e, &src, r#"{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}} {{.Propagation}}{{end}}{{end}}"#);
    assert_eq!(binds, format!("{h} rprivate"));
    e.docker_ok(&["rm", &src]);
}

/// Needs the runtime to mount `RunSpec.tmpfs` (see the volume helper's report).
#[test]
fn tmpfs_mounts() {
    require_root!();
    let e = engine_with_busybox();
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/run/t:size=1m",
        "--mount",
        "type=tmpfs,target=/t2",
        "busybox",
        "sh",
        "-c",
        "grep -E ' /(run/t|t2) ' /proc/mounts | cut -d' ' -f2,3 | sort",
    ]);
    assert_eq!(lines(&out), ["/run/t tmpfs", "/t2 tmpfs"]);
    let out = e.docker_ok(&["run", "--rm", "--tmpfs", "/run/t:size=1m", "busybox", "grep", " /run/t ", "/proc/mounts"]);
    assert!(out.contains("size=1024k") && out.contains("noexec"), "{out}");
    // A tmpfs below a volume is mounted after it.
    let v = e.unique("tv");
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{v}:/data"),
        "--tmpfs",
        "/data/tmp",
        "busybox",
        "sh",
        "-c",
        "grep ' /data' /proc/mounts | cut -d' ' -f2,3",
    ]);
    assert_eq!(lines(&out).last().map(String::as_str), Some("/data/tmp tmpfs"), "{out}");
}

#[test]
fn local_driver_options_mount_on_first_use() {
    require_root!();
    let e = engine_with_busybox();
    let v = e.unique("tv");
    e.docker_ok(&["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=10m,nosuid", &v]);
    assert_eq!(
        e.docker_ok(&["volume", "inspect", "-f", "{{.Options.type}} {{.Options.device}} {{.Options.o}}", &v]).trim(),
        "tmpfs tmpfs size=10m,nosuid"
    );
    let data = e.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", &v]).trim().to_string();
    // Mounted when a container first uses it: a 10 MB tmpfs.
    let df = e.docker_ok(&["run", "--rm", "-v", &format!("{v}:/data"), "busybox", "sh", "-c", "df -k /data | tail -1; echo hi > /data/f"]);
    let cols: Vec<&str> = df.split_whitespace().collect();
    assert_eq!((cols[0], cols[1]), ("tmpfs", "10240"), "{df}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(data.as_str()) && l.contains(" - tmpfs ") && l.contains("nosuid")),
        "{data} not a tmpfs"
    );
    // `volume rm` unmounts it and removes it.
    e.docker_ok(&["volume", "rm", &v]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.lines().any(|l| l.split(' ').nth(4) == Some(data.as_str())), "{data} still mounted");
    assert!(!std::path::Path::new(&data).exists());
    // Refusals in dockerd's words.
    let o = e.docker(&["volume", "create", "-o", "foo=bar", &e.unique("bad")]);
    assert!(!o.success() && o.stderr.contains("invalid option: \"foo\""), "{o}");
    let o = e.docker(&["volume", "create", "-o", "type=tmpfs", &e.unique("bad")]);
    assert!(!o.success() && o.stderr.contains("missing required option: \"device\""), "{o}");
}
