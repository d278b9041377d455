//! Images made by the engine: `docker commit` of a container's changes and `docker build`
//! with the classic builder (stages, cache, bad input), driven by the docker CLI.
mod common;
use common::*;

#[test]
fn commit_with_changes_and_pause_makes_a_runnable_image() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("src");
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo made > /made.txt; rm /bin/vi; mkdir -p /data && echo d > /data/f; touch /ready; sleep 300",
    ]);
    assert!(wait_until(std::time::Duration::from_secs(20), || e.docker(&["exec", &name, "test", "-e", "/ready"]).success()));
    let repo = e.unique("committed");
    let out = e.docker_ok(&[
        "commit",
        "--pause",
        "-a",
        "Flo Tilla",
        "-m",
        "a message",
        "--change",
        r#"CMD ["cat","/made.txt"]"#,
        "--change",
        "ENV GREETING=hi THERE=now",
        "--change",
        "LABEL team=build",
        "--change",
        "EXPOSE 8080",
        "--change",
        "WORKDIR /data",
        &name,
        &format!("{repo}:v1"),
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && is_hex64(&id[7..]), "{out}");
    // The container kept running (it was only frozen while its changes were read).
    assert_eq!(inspect(&e, &name, "{{.State.Status}}"), "running");
    let image = format!("{repo}:v1");
    assert_eq!(e.docker_ok(&["run", "--rm", &image]), "made\n");
    let env = e.docker_ok(&["run", "--rm", &image, "sh", "-c", "echo $GREETING $THERE; pwd; cat f; test -e /bin/vi || echo vi-gone"]);
    assert_eq!(env, "hi now\n/data\nd\nvi-gone\n");
    assert_eq!(inspect(&e, &image, "{{.Config.Labels.team}}"), "build");
    assert_eq!(inspect(&e, &image, "{{json .Config.ExposedPorts}}"), r#"{"8080/tcp":{}}"#);
    assert_eq!(inspect(&e, &image, "{{.Author}} / {{.Comment}}"), "Flo Tilla / a message");
    assert_eq!(inspect(&e, &image, "{{.Parent}}"), testground::image::busybox_image_id());
    assert_eq!(inspect(&e, &image, "{{len .RootFS.Layers}}"), "2");
    // The runtime's files (/etc/hosts, /proc...) are not part of the image's layer.
    let hist = e.docker_ok(&["history", "--no-trunc", "--format", "{{.Comment}}", &image]);
    assert_eq!(lines(&hist)[0], "a message");
    // An unknown change is refused with its name.
    let o = e.docker(&["commit", "--change", "RUN echo no", &name]);
    assert!(!o.success() && o.stderr.contains("RUN"), "{o}");
    // Without --pause on a stopped container, and with no name: a dangling image.
    e.docker_ok(&["rm", "-f", &name]);
    let stopped = e.unique("stopped");
    e.docker_ok(&["run", "--name", &stopped, "busybox", "sh", "-c", "echo second > /second"]);
    let id2 = e.docker_ok(&["commit", "--pause=false", &stopped]);
    let id2 = id2.trim();
    assert_eq!(e.docker_ok(&["run", "--rm", id2, "cat", "/second"]), "second\n");
    let o = e.docker(&["run", "--rm", id2, "cat", "/made.txt"]);
    assert!(!o.success(), "the first commit's files must not leak: {o}");
    e.docker_ok(&["rm", &stopped]);
    e.docker_ok(&["rmi", &image, id2]);
}

/// A build context on disk (removed on drop).
struct Ctx(tempfile::TempDir);

impl Ctx {
    fn new(files: &[(&str, &str)]) -> Ctx {
        let d = tempfile::tempdir().unwrap();
        let c = Ctx(d);
        for (p, data) in files {
            c.write(p, data);
        }
        c
    }
    fn write(&self, p: &str, data: &str) {
        let path = self.0.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    fn dir(&self) -> String {
        self.0.path().display().to_string()
    }
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS builder
ARG GREETING=hello
ENV OUT=/out \
    NAME=world
WORKDIR $OUT
COPY src/ ./src/
RUN cat src/*.txt > all.txt && echo "${GREETING}, ${NAME:-nobody}" > greeting.txt
RUN test ! -e src/secret.txt

FROM busybox
LABEL stage=final
COPY --from=builder /out/all.txt /out/greeting.txt /app/
WORKDIR /app
RUN echo "runner:x:1234:1234::/app:/bin/sh" >> /etc/passwd && chown runner /app
USER runner
HEALTHCHECK --interval=30s --timeout=3s CMD test -e /app/all.txt
ONBUILD RUN echo triggered > /tmp/onbuild
EXPOSE 8080
CMD ["cat", "greeting.txt", "all.txt"]
"#;

#[test]
fn multi_stage_build_then_cache_hits_then_a_changed_file_busts_the_cache() {
    require_root!();
    let e = engine_with_busybox();
    let ctx = Ctx::new(&[
        ("Dockerfile", MULTI_STAGE),
        ("src/a.txt", "alpha\n"),
        ("src/b.txt", "beta\n"),
        ("src/secret.txt", "do not ship\n"),
        (".dockerignore", "src/secret.txt\n*.log\n"),
        ("debug.log", "noise"),
    ]);
    let tag = e.unique("app");
    let o = e.docker(&["build", "--build-arg", "GREETING=hi", "-t", &tag, &ctx.dir()]);
    e.expect_ok(&o);
    for needle in [
        "Step 1/17 : FROM ${BASE} AS builder",
        "Step 6/17 : RUN cat src/*.txt",
        "Successfully built ",
        &format!("Successfully tagged {tag}:latest"),
    ] {
        assert!(o.stdout.contains(needle), "{needle:?} missing:\n{o}");
    }
    assert!(!o.stdout.contains("Using cache"), "{o}");
    let run = e.docker_ok(&["run", "--rm", &tag]);
    assert_eq!(run, "hi, world\nalpha\nbeta\n");
    assert_eq!(e.docker_ok(&["run", "--rm", &tag, "sh", "-c", "id -u; pwd"]), "1234\n/app\n");
    assert_eq!(
        inspect(&e, &tag, "{{.Config.User}} {{.Config.Labels.stage}} {{json .Config.Healthcheck.Test}}"),
        r#"runner final ["CMD-SHELL","test -e /app/all.txt"]"#
    );
    assert_eq!(inspect(&e, &tag, "{{json .Config.OnBuild}}"), r#"["RUN echo triggered > /tmp/onbuild"]"#);
    // The intermediate images are not listed (as with dockerd, the last image of the builder
    // stage is, as a dangling one); `-a` shows them.
    let listed = sorted_lines(&e.docker_ok(&["images", "--format", "{{.Repository}}"]));
    assert_eq!(listed.iter().filter(|r| *r != "<none>").collect::<Vec<_>>(), [tag.as_str(), "busybox"]);
    assert!(listed.len() <= 3, "{listed:?}");
    assert!(lines(&e.docker_ok(&["images", "-a", "-q"])).len() > 10);

    // Again: every step from the cache, the same image.
    let id = inspect(&e, &tag, "{{.Id}}");
    let o = e.docker(&["build", "--build-arg", "GREETING=hi", "-t", &tag, &ctx.dir()]);
    e.expect_ok(&o);
    assert_eq!(o.stdout.matches("Using cache").count(), 15, "{o}");
    assert_eq!(inspect(&e, &tag, "{{.Id}}"), id);

    // One changed file: the builder stage's COPY and all after it run again.
    ctx.write("src/b.txt", "BETA\n");
    let o = e.docker(&["build", "--build-arg", "GREETING=hi", "-t", &tag, &ctx.dir()]);
    e.expect_ok(&o);
    let before_copy = o.stdout.split("COPY src/").next().unwrap();
    assert_eq!(before_copy.matches("Using cache").count(), 3, "{o}");
    assert!(!o.stdout.split("COPY src/").nth(1).unwrap().split("FROM busybox").next().unwrap().contains("Using cache"), "{o}");
    assert_ne!(inspect(&e, &tag, "{{.Id}}"), id);
    assert_eq!(e.docker_ok(&["run", "--rm", &tag]), "hi, world\nalpha\nBETA\n");

    // An image built FROM it runs the ONBUILD trigger.
    let child = Ctx::new(&[("Dockerfile", &format!("FROM {tag}\nUSER root\nRUN cat /tmp/onbuild\n"))]);
    let ctag = e.unique("child");
    let o = e.docker(&["build", "-t", &ctag, &child.dir()]);
    e.expect_ok(&o);
    assert!(o.stdout.contains("# Executing 1 build trigger"), "{o}");
    assert_eq!(e.docker_ok(&["run", "--rm", &ctag, "cat", "/tmp/onbuild"]), "triggered\n");
    // No build container is left behind.
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    // Removing the images removes their untagged steps too: the child's 3 (with the ONBUILD
    // trigger) and the final stage's after FROM busybox, up to the LABEL step, which the first
    // build's (now dangling) image still has as a parent.
    let before = lines(&e.docker_ok(&["images", "-aq"])).len();
    e.docker_ok(&["rmi", &ctag, &tag]);
    assert_eq!(lines(&e.docker_ok(&["images", "-aq"])).len(), before - 11);
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "still"]), "still\n");
}

/// `POST /build` of a raw context tar; returns (status, body).
fn post_build(e: &Engine, query: &str, tar: &[u8]) -> (u16, String) {
    let r = e.api("POST", &format!("/v1.41/build?{query}"), Some(("application/x-tar", tar))).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn hostile_contexts_and_bad_dockerfiles_are_refused_with_nothing_left_behind() {
    require_root!();
    let e = engine_with_busybox();
    // Context tars that try to write outside the build's directory.
    for kind in Hostile::ALL {
        let canary = Canary::new(&format!("b{}", kind as u8));
        if kind == Hostile::Hardlink {
            std::fs::write(&canary.0, "host file\n").unwrap();
        }
        let tar = testground::image::hostile_layer(kind, &canary.0).unwrap();
        let (status, body) = post_build(&e, "t=hostile", &tar);
        assert_eq!(status, 400, "{kind:?}: {body}");
        assert!(body.contains("invalid build context"), "{kind:?}: {body}");
        if kind == Hostile::Hardlink {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(std::fs::metadata(&canary.0).unwrap().nlink(), 1, "{kind:?}");
        } else {
            assert!(!canary.0.exists(), "{kind:?}: {} was written", canary.0.display());
        }
    }
    let build_tmp = e.data_root().join("build/tmp");
    assert!(std::fs::read_dir(&build_tmp).map(|d| d.count()).unwrap_or(0) == 0, "build directories left behind");

    // A body that is no tar is the Dockerfile itself (`docker build - < Dockerfile`).
    let (status, body) = post_build(&e, "t=plain-dockerfile", b"FROM busybox\nRUN echo from-stdin > /s\n");
    assert!(status == 200 && body.contains("Successfully tagged plain-dockerfile:latest"), "{status} {body}");
    assert_eq!(e.docker_ok(&["run", "--rm", "plain-dockerfile", "cat", "/s"]), "from-stdin\n");
    e.docker_ok(&["rmi", "plain-dockerfile"]);

    // Dockerfiles: missing, empty, too large, an unknown instruction (named with its line).
    let ctx = Ctx::new(&[("empty.Dockerfile", "\n# nothing\n"), ("bad.Dockerfile", "FROM busybox\nRUN true\nFROBNICATE now\n")]);
    ctx.write("big.Dockerfile", &format!("FROM busybox\n#{}\n", "x".repeat(1 << 20)));
    // (The CLI checks that -f exists itself: a missing one is asked for through the API.)
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    t.append_data(&mut h, "a.txt", &b"a\n"[..]).unwrap();
    let (status, body) = post_build(&e, "dockerfile=nope.Dockerfile", &t.into_inner().unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Cannot locate specified Dockerfile: nope.Dockerfile"), "{body}");
    for (file, want) in [
        ("empty.Dockerfile", "cannot be empty"),
        ("big.Dockerfile", "too large"),
        ("bad.Dockerfile", "Dockerfile parse error line 3: unknown instruction: FROBNICATE"),
    ] {
        let o = e.docker(&["build", "-f", &format!("{}/{file}", ctx.dir()), &ctx.dir()]);
        assert!(!o.success() && o.stderr.contains(want), "{file}: {o}");
    }

    // COPY of a source outside the context.
    let ctx = Ctx::new(&[("Dockerfile", "FROM busybox\nCOPY ../../etc/passwd /stolen\n")]);
    let o = e.docker(&["build", "-t", "outside", &ctx.dir()]);
    assert!(!o.success() && o.stderr.contains("forbidden path outside the build context: ../../etc/passwd"), "{o}");

    // A failing RUN: its exit code, and no container left.
    let ctx = Ctx::new(&[("Dockerfile", "FROM busybox\nRUN echo before\nRUN echo failing; exit 3\nRUN echo never\n")]);
    let o = e.docker(&["build", "-t", "failing", &ctx.dir()]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3"), "{o}");
    assert!(o.stdout.contains("failing") && !o.stdout.contains("never"), "{o}");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    let listed = e.docker_ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!listed.contains("failing") && !listed.contains("outside") && !listed.contains("hostile"), "{listed}");
    // Query options this engine does not do are refused by name.
    let o = e.docker(&["build", "--squash", &ctx.dir()]);
    assert!(!o.success() && o.stderr.contains("squash"), "{o}");
    let o = e.docker(&["build", "--platform", "linux/arm64", &ctx.dir()]);
    assert!(!o.success() && o.stderr.contains("linux/arm64"), "{o}");
}

#[test]
fn compose_up_build_and_build_prune() {
    require_root!();
    let e = engine_with_busybox();
    let image = e.unique("composed");
    let ctx = Ctx::new(&[
        ("app/Dockerfile", "FROM busybox\nARG MSG=unset\nWORKDIR /w/x\nRUN echo \"$MSG\" > /msg && pwd >> /msg\nCMD [\"head\", \"-1\", \"/msg\"]\n"),
        ("docker-compose.yml", &format!(
            "version: \"2.4\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        MSG: built-by-compose\n    image: {image}:latest\n"
        )),
    ]);
    let project = e.unique("proj").replace('-', "");
    let compose = |args: &[&str]| {
        let mut c = std::process::Command::new("/usr/local/bin/docker-compose");
        c.current_dir(ctx.0.path()).args(["--ansi", "never", "-p", &project]).args(args);
        for (k, v) in e.docker_env() {
            c.env(k, v);
        }
        testground::cmd::run(&mut c, None, std::time::Duration::from_secs(120))
    };
    let o = compose(&["up", "--build"]);
    assert!(o.success(), "{o}\n{}", e.log_tail(30));
    assert!(o.combined().contains("built-by-compose"), "{o}");
    assert_eq!(e.docker_ok(&["run", "--rm", &image]), "built-by-compose\n");
    let o = compose(&["down", "--rmi", "all"]);
    assert!(o.success(), "{o}");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");

    // `down --rmi all` removed the image and its steps.
    assert!(!e.docker_ok(&["images", "-a", "--format", "{{.Repository}}"]).contains(&image));

    // A build's cache is used until it is pruned; then every step runs again.
    let dir = format!("{}/app", ctx.dir());
    let build = || {
        let o = e.docker(&["build", "--build-arg", "MSG=again", "-t", &image, &dir]);
        e.expect_ok(&o);
        o.stdout
    };
    build();
    assert_eq!(build().matches("Using cache").count(), 4);
    // `system df` counts the cache's step records.
    let df = e.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    let count: usize = df.lines().find_map(|l| l.strip_prefix("Build Cache ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    assert!(count >= 4, "{df}");
    let pruned = e.api("POST", "/v1.41/build/prune", None).unwrap();
    assert_eq!(pruned.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&pruned.body).unwrap();
    assert!(v["CachesDeleted"].as_array().is_some_and(|a| a.len() >= 3), "{v}");
    assert!(!build().contains("Using cache"));
    assert_eq!(e.docker_ok(&["run", "--rm", &image]), "again\n");
    // WORKDIR made the directory the RUN ran in.
    assert_eq!(e.docker_ok(&["run", "--rm", &image, "sh", "-c", "pwd; cat /msg"]), "/w/x\nagain\n/w/x\n");
    // `-q` prints only the image id.
    let o = e.docker(&["build", "-q", "--build-arg", "MSG=quiet", &dir]);
    e.expect_ok(&o);
    let id = o.stdout.trim();
    assert!(id.starts_with("sha256:") && !o.stdout.contains("Step"), "{o}");
    assert_eq!(e.docker_ok(&["run", "--rm", id]), "quiet\n");
    e.docker_ok(&["rmi", id, &image]);
}

#[test]
fn add_of_a_url_and_distribution_inspect_reach_the_registry() {
    require_root!();
    let reg = Registry::start();
    let digest = reg.push_busybox("dist/busybox", "v1");
    let e = engine_with_busybox();
    // ADD of a URL fetches it (the registry's `/v2/` answers `{}`); COPY of one is refused.
    let ctx = Ctx::new(&[(
        "Dockerfile",
        &format!("FROM busybox\nADD http://{}/v2/ /fetched/\nADD http://{}/v2/ /named.json\n", reg.addr(), reg.addr()),
    )]);
    let o = e.docker(&["build", "-t", "fetched", &ctx.dir()]);
    e.expect_ok(&o);
    assert_eq!(e.docker_ok(&["run", "--rm", "fetched", "sh", "-c", "cat /fetched/v2 /named.json; stat -c %a /named.json"]), "{}{}600\n");
    let ctx = Ctx::new(&[("Dockerfile", &format!("FROM busybox\nCOPY http://{}/v2/ /x\n", reg.addr()))]);
    let o = e.docker(&["build", &ctx.dir()]);
    assert!(!o.success() && o.stderr.contains("source can't be a URL for COPY"), "{o}");
    e.docker_ok(&["rmi", "fetched", "busybox"]);
    // FROM an image that is not here pulls it (as `--pull` always does).
    let from = format!("{}/dist/busybox:v1", reg.addr());
    let ctx = Ctx::new(&[("Dockerfile", &format!("FROM {from}\nRUN echo pulled-and-ran > /p\n"))]);
    let o = e.docker(&["build", "--pull", "-t", "pulled", &ctx.dir()]);
    e.expect_ok(&o);
    assert!(o.stdout.contains("Pulling from dist/busybox") && o.stdout.contains("Downloaded newer image"), "{o}");
    assert_eq!(e.docker_ok(&["run", "--rm", "pulled", "cat", "/p"]), "pulled-and-ran\n");
    e.docker_ok(&["rmi", "pulled", &from]);
    let r = e.api("GET", &format!("/v1.41/distribution/{}/dist/busybox:v1/json", reg.addr()), None).unwrap();
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], digest.as_str(), "{v}");
    assert!(v["Descriptor"]["size"].as_u64().is_some_and(|s| s > 0), "{v}");
    assert_eq!(v["Platforms"][0]["os"], "linux", "{v}");
    // Nothing was pulled.
    assert_eq!(e.docker_ok(&["images", "-q"]).trim(), "");
    let r = e.api("GET", &format!("/v1.41/distribution/{}/dist/nosuch:v1/json", reg.addr()), None).unwrap();
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn build_options_target_labels_network_hosts_and_nocache() {
    require_root!();
    let e = engine_with_busybox();
    let ctx = Ctx::new(&[(
        "Dockerfile",
        "FROM busybox AS first\nRUN echo first > /f\n\
         FROM busybox AS second\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nCOPY --from=first /f /from-first\n\
         RUN cat /etc/hosts > /hosts; ls /sys/class/net > /nets\nSTOPSIGNAL SIGTERM\nVOLUME /data\n\
         FROM busybox AS third\nRUN exit 9\n",
    )]);
    let tag = e.unique("opts");
    let args = [
        "build",
        "--target",
        "second",
        "--label",
        "built.by=test",
        "--network",
        "none",
        "--add-host",
        "h.test:10.1.2.3",
        "-t",
        &tag,
        &ctx.dir(),
    ];
    let o = e.docker(&args);
    e.expect_ok(&o);
    assert!(!o.stdout.contains("exit 9"), "the stage after the target must not be built:\n{o}");
    let out = e.docker_ok(&["run", "--rm", "--network", "none", &tag, "sh", "-c", "cat /from-first /nets; grep h.test /hosts"]);
    assert_eq!(lines(&out)[..2], ["first", "lo"], "{out}");
    assert!(out.contains("10.1.2.3"), "{out}");
    assert_eq!(
        inspect(&e, &tag, "{{index .Config.Labels \"built.by\"}} {{.Config.StopSignal}} {{json .Config.Volumes}} {{json .Config.Shell}}"),
        r#"test SIGTERM {"/data":{}} ["/bin/sh","-e","-c"]"#
    );
    // --no-cache runs every step again; an unknown target is an error.
    let mut nocache = args.to_vec();
    nocache.insert(1, "--no-cache");
    let o = e.docker(&nocache);
    e.expect_ok(&o);
    assert!(!o.stdout.contains("Using cache"), "{o}");
    let o = e.docker(&["build", "--target", "nosuch", &ctx.dir()]);
    assert!(!o.success() && o.stderr.contains("failed to reach build target nosuch"), "{o}");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}
