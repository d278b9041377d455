//! Runs a parsed Dockerfile: stages (`FROM ... AS name`, up to `target`), the meta `ARG`s
//! before the first `FROM`, ONBUILD triggers of a base image, and one step per instruction
//! with the cache consulted first. Metadata instructions are in [`super::meta`].
use super::cache;
use super::meta::{self, Effect};
use super::output::Output;
use super::parser::Instruction;
use super::{BuildError, BuildOptions, BuildService, Prepared};
use crate::image::child::{LayerTar, NewImage};
use crate::image::reference::Reference;
use crate::runtime::Runtime;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Args every build accepts without an `ARG` (dockerd's builtinAllowedBuildArgs).
pub const PROXY_ARGS: &[&str] =
    &["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"];

/// The state of the stage being built.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub name: Option<String>,
    /// The current image (`None`: `FROM scratch` with nothing made yet).
    pub image: Option<String>,
    pub config: Map<String, Value>,
    /// Declared args and their values (`None`: declared without a value).
    pub args: Vec<(String, Option<String>)>,
    pub author: String,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl Stage {
    /// Variables for substitution: the args, then ENV over them.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.args.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        v.extend(meta::env_pairs(&self.config));
        v
    }
    /// `k=v` of the args a RUN sees (declared ones with a value).
    pub fn run_args(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = vec![];
        for (k, v) in self.args.iter().rev() {
            if let (true, Some(v)) = (seen.insert(k.clone()), v) {
                out.push(format!("{k}={v}"));
            }
        }
        out.reverse();
        out
    }
}

pub struct Builder<'a, R: Runtime> {
    svc: Arc<BuildService<R>>,
    p: &'a Prepared,
    opts: &'a BuildOptions,
    out: &'a Output,
    done: Vec<Stage>,
    used_args: BTreeSet<String>,
    step: usize,
    total: usize,
}

fn short(id: &str) -> &str {
    let h = crate::image::hex_of(id);
    &h[..12.min(h.len())]
}

impl<'a, R: Runtime> Builder<'a, R> {
    pub fn new(svc: Arc<BuildService<R>>, p: &'a Prepared, opts: &'a BuildOptions, out: &'a Output) -> Self {
        Builder { svc, p, opts, out, done: vec![], used_args: BTreeSet::new(), step: 0, total: 0 }
    }

    pub fn escape(&self) -> char {
        self.p.dockerfile.escape
    }

    pub async fn run(mut self) -> Result<String, BuildError> {
        let all = &self.p.dockerfile.instructions;
        let first_from = all.iter().position(|i| i.cmd == "FROM").unwrap_or(all.len());
        // Meta args: usable in FROM lines only.
        let mut meta_args: Vec<(String, Option<String>)> = vec![];
        for i in &all[..first_from] {
            for (k, v) in self.arg_values(i, &[])? {
                meta_args.push((k, v));
            }
        }
        let mut stages: Vec<Vec<Instruction>> = vec![];
        for i in &all[first_from..] {
            if i.cmd == "FROM" {
                stages.push(vec![]);
            }
            stages.last_mut().expect("the first instruction here is FROM").push(i.clone());
        }
        if !self.opts.target.is_empty() {
            let idx = stages
                .iter()
                .position(|s| stage_name(&s[0]).is_some_and(|n| n.eq_ignore_ascii_case(&self.opts.target)))
                .ok_or_else(|| BuildError::Invalid(format!("failed to reach build target {} in Dockerfile", self.opts.target)))?;
            stages.truncate(idx + 1);
        }
        if !self.opts.labels.is_empty() {
            let pairs: Vec<String> = self.opts.labels.iter().map(|(k, v)| format!("{}={}", quote(k), quote(v))).collect();
            let line = format!("LABEL {}", pairs.join(" "));
            let last = stages.last_mut().expect("a Dockerfile has a FROM");
            let n = last.last().map(|i| i.line).unwrap_or(0);
            last.push(super::parser::instruction(&line, n)?);
        }
        self.total = stages.iter().map(Vec::len).sum();
        for instrs in &stages {
            let mut stage = self.from(&instrs[0], &meta_args).await?;
            for i in &instrs[1..] {
                self.step += 1;
                self.out.stream(format!("Step {}/{} : {}\n", self.step, self.total, i.original));
                self.instruction(&mut stage, i).await?;
            }
            self.done.push(stage);
        }
        let unused: Vec<&String> =
            self.opts.build_args.keys().filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str())).collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.out.stream(format!("[Warning] One or more build-args [{}] were not consumed\n", names.join(" ")));
        }
        self.done
            .last()
            .and_then(|s| s.image.clone())
            .ok_or_else(|| BuildError::Invalid("No image was generated. Is your Dockerfile empty?".into()))
    }

    /// `ARG a[=x] b`: the values, from `--build-arg` first.
    fn arg_values(&mut self, i: &Instruction, vars: &[(String, String)]) -> Result<Vec<(String, Option<String>)>, BuildError> {
        let mut out = vec![];
        for part in i.rest.split_whitespace() {
            let (name, default) = match part.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(super::shell::word(v, self.escape(), vars, i.line)?)),
                None => (part.to_string(), None),
            };
            if name.is_empty() {
                return Err(BuildError::Parse { line: i.line, msg: "ARG names can not be blank".into() });
            }
            self.used_args.insert(name.clone());
            let value = match self.opts.build_args.get(&name) {
                Some(Some(v)) => Some(v.clone()),
                _ => default,
            };
            out.push((name, value));
        }
        Ok(out)
    }

    async fn from(&mut self, i: &Instruction, meta_args: &[(String, Option<String>)]) -> Result<Stage, BuildError> {
        self.step += 1;
        self.out.stream(format!("Step {}/{} : {}\n", self.step, self.total, i.original));
        i.check_flags(&["platform"])?;
        let vars: Vec<(String, String)> = meta_args.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        if let Some(p) = i.flag("platform") {
            let p = super::shell::word(p, self.escape(), &vars, i.line)?;
            check_platform(&p)?;
        }
        let words = super::shell::words(&i.rest, self.escape(), &vars, i.line)?;
        let (base, name) = match words.as_slice() {
            [b] => (b.clone(), None),
            [b, as_, n] if as_.eq_ignore_ascii_case("as") => (b.clone(), Some(n.to_ascii_lowercase())),
            _ => return Err(BuildError::Parse { line: i.line, msg: "FROM requires either one or three arguments".into() }),
        };
        let mut stage = Stage { name, ..Default::default() };
        if let Some(prev) = self.done.iter().rev().find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&base))) {
            stage.image = prev.image.clone();
            stage.config = prev.config.clone();
        } else if !base.eq_ignore_ascii_case("scratch") {
            let id = self.base_image(&base).await?;
            stage.config = match self.svc.images.config_of(&id)?.config {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            stage.image = Some(id);
        }
        if let Some(id) = &stage.image {
            self.out.stream(format!(" ---> {}\n", short(id)));
        }
        let triggers = meta::strings(stage.config.get("OnBuild"));
        stage.config.remove("OnBuild");
        if !triggers.is_empty() {
            self.out.stream(format!("# Executing {} build trigger{}\n", triggers.len(), if triggers.len() == 1 { "" } else { "s" }));
            for t in triggers {
                let ti = super::parser::instruction(t.trim(), i.line)?;
                if matches!(ti.cmd.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(BuildError::Invalid(format!("{} isn't allowed as an ONBUILD trigger", ti.cmd)));
                }
                self.instruction(&mut stage, &ti).await?;
            }
        }
        Ok(stage)
    }

    /// A base image: local, or pulled (always with `pull`).
    async fn base_image(&self, name: &str) -> Result<String, BuildError> {
        let local = self.svc.images.resolve_id(name);
        if local.is_ok() && !self.opts.pull {
            return Ok(local?);
        }
        let mut r = Reference::parse_tagged(name)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        let prepared = match self.svc.images.prepare_pull(r, None).await {
            Ok(p) => p,
            Err(e) => return local.map_err(|_| BuildError::Image(e)),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(64);
        let out = self.out.clone();
        let fwd = self.svc.images.tasks().spawn(async move {
            while let Some(v) = rx.recv().await {
                if let Some(s) = v.get("status").and_then(|s| s.as_str()) {
                    if v.get("progressDetail").is_none_or(|d| d.as_object().is_none_or(|o| o.is_empty())) {
                        let id = v.get("id").and_then(|x| x.as_str()).map(|x| format!("{x}: ")).unwrap_or_default();
                        out.stream(format!("{id}{s}\n"));
                    }
                }
            }
        });
        let id = prepared.run(&crate::image::progress::Progress::new(tx)).await;
        let _ = fwd.await;
        Ok(id?)
    }

    /// One instruction of a stage (a step, or an ONBUILD trigger).
    async fn instruction(&mut self, stage: &mut Stage, i: &Instruction) -> Result<(), BuildError> {
        if i.cmd == "ARG" {
            let vars = stage.vars();
            let values = self.arg_values(i, &vars)?;
            stage.args.extend(values);
            let effect = Effect::Meta { descriptor: format!("ARG {}", i.rest), config: stage.config.clone() };
            return self.commit(stage, effect).await;
        }
        let effect = meta::effect(stage, i, self.escape())?;
        self.commit(stage, effect).await
    }

    /// Uses the cache or makes the step's image; moves the stage to it.
    async fn commit(&mut self, stage: &mut Stage, effect: Effect) -> Result<(), BuildError> {
        let cache = self.svc.cache();
        let svc = self.svc.clone();
        let collected = match &effect {
            Effect::Copy(c) => Some(super::copy::collect(self, &svc, stage, c).await?),
            _ => None,
        };
        let (descriptor, config) = match (&effect, &collected) {
            (Effect::Meta { descriptor, config }, _) => (format!("#(nop) {descriptor}"), config.clone()),
            (Effect::Run { argv, args }, _) => (run_descriptor(argv, args), stage.config.clone()),
            (Effect::Copy(c), Some(col)) => (format!("#(nop) {}", c.descriptor(&col.hash)), stage.config.clone()),
            (Effect::Copy(_), None) => unreachable!("sources are collected for every COPY"),
        };
        let key = cache::key(stage.image.as_deref(), &descriptor, &config);
        if !self.opts.nocache {
            if let Some(id) = cache.get(&key, &self.svc.images) {
                self.out.stream(format!(" ---> Using cache\n ---> {}\n", short(&id)));
                self.set(stage, id, config);
                return Ok(());
            }
        }
        let mut container_config = config.clone();
        let shown = match &effect {
            Effect::Run { argv, .. } => argv.clone(),
            _ => vec!["/bin/sh".into(), "-c".into(), descriptor.clone()],
        };
        container_config.insert("Cmd".into(), json!(shown));
        let mut new = NewImage {
            parent: stage.image.clone(),
            layer: None,
            config: config.clone(),
            container_config,
            container: None,
            author: stage.author.clone(),
            comment: String::new(),
            created_by: match &effect {
                Effect::Run { .. } => descriptor.clone(),
                _ => format!("/bin/sh -c {descriptor}"),
            },
        };
        let mut cleanup = None;
        match effect {
            Effect::Meta { .. } => {
                // WORKDIR makes its directory (RUN and containers start in it).
                if let (Some(dir), Some(image)) =
                    (config.get("WorkingDir").and_then(|w| w.as_str()).filter(|_| descriptor.starts_with("#(nop) WORKDIR")), &stage.image)
                {
                    let (images, image, dir) = (self.svc.images.clone(), image.clone(), dir.to_string());
                    new.layer = tokio::task::spawn_blocking(move || workdir_layer(&images, &image, &dir))
                        .await
                        .map_err(BuildError::join("WORKDIR layer"))??;
                }
            }
            Effect::Run { argv, args } => {
                let (cid, layer) = super::run::run_step(&self.svc, stage, &argv, &args, self.opts, self.out).await?;
                new.container = Some(cid.clone());
                new.layer = Some(layer);
                cleanup = Some(cid);
            }
            Effect::Copy(c) => {
                let col = collected.as_ref().expect("sources are collected for every COPY");
                let (cid, layer) = super::copy::apply(&self.svc, stage, &c, col).await?;
                new.layer = Some(layer);
                cleanup = cid;
            }
        }
        let images = self.svc.images.clone();
        let id = tokio::task::spawn_blocking(move || images.create_child(new)).await.map_err(BuildError::join("committing a step"))??;
        if let Some(cid) = cleanup {
            self.remove_container(&cid, true).await;
        }
        cache.put(&key, &id)?;
        self.out.stream(format!(" ---> {}\n", short(&id)));
        self.set(stage, id, config);
        Ok(())
    }

    fn set(&self, stage: &mut Stage, id: String, config: Map<String, Value>) {
        stage.image = Some(id);
        stage.config = config;
    }

    /// Removes a step's container (`rm`, or `forcerm` after a failure) and its anonymous volumes.
    pub async fn remove_container(&self, cid: &str, succeeded: bool) {
        // A failed step's container goes too (`rm` is the default), so nothing is left behind.
        let _ = succeeded;
        if !(self.opts.rm || self.opts.forcerm) {
            return;
        }
        match self.svc.containers.remove_with(cid, true, true).await {
            Ok(()) => self.out.stream(format!("Removing intermediate container {}\n", &cid[..12.min(cid.len())])),
            Err(e) => tracing::warn!(container = %cid, error = %e, "removing a build container failed"),
        }
    }

    /// The image of an earlier stage (by name or index) for `COPY --from`.
    pub fn stage_image(&self, key: &str) -> Option<Option<String>> {
        if let Ok(n) = key.parse::<usize>() {
            return self.done.get(n).map(|s| s.image.clone());
        }
        self.done.iter().rev().find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(key))).map(|s| s.image.clone())
    }

    pub fn context(&self) -> &std::path::Path {
        &self.p.context
    }

    pub fn work_dir(&self) -> &std::path::Path {
        &self.p.dir.0
    }
}

/// A step's layer: the tar of a container's upper dir.
/// `lowers`: the container's image layer dirs.
pub fn container_layer(
    images: &crate::image::ImageService,
    data_root: &std::path::Path,
    cid: &str,
    lowers: &[std::path::PathBuf],
) -> Result<LayerTar, BuildError> {
    let upper = crate::container::record::Record::dir(data_root, cid).join("upper");
    let w = images.layer_writer().map_err(BuildError::io("writing the layer of", &upper))?;
    crate::container::archive::layer::write_layer(w, &upper, lowers)
        .and_then(|w| w.finish())
        .map_err(BuildError::io("writing the layer of", &upper))
}

/// A layer that makes the directory `dir` in `image`, when it lacks it: every component as a
/// directory entry, the existing ones with their metadata from the image (an entry in an upper
/// layer replaces the lower one's mode and owner).
fn workdir_layer(images: &crate::image::ImageService, image: &str, dir: &str) -> Result<Option<LayerTar>, BuildError> {
    use std::os::unix::fs::MetadataExt;
    let layers = images.resolve(image)?.layer_dirs;
    let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    let find = |rel: &str| layers.iter().rev().find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok());
    if comps.is_empty() || find(&comps.join("/")).is_some_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let io = |source| BuildError::Io { op: "writing the WORKDIR layer for", path: dir.into(), source };
    let mut b = tar::Builder::new(images.layer_writer().map_err(io)?);
    for n in 1..=comps.len() {
        let rel = comps[..n].join("/");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        match find(&rel) {
            Some(m) if m.is_dir() => {
                h.set_mode(m.mode() & 0o7777);
                h.set_uid(m.uid() as u64);
                h.set_gid(m.gid() as u64);
                h.set_mtime(m.mtime().max(0) as u64);
            }
            Some(_) => return Err(BuildError::Invalid(format!("WORKDIR {dir}: /{rel} is not a directory"))),
            None => {
                h.set_mode(0o755);
                h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            }
        }
        b.append_data(&mut h, format!("{rel}/"), std::io::empty()).map_err(io)?;
    }
    Ok(Some(b.into_inner().and_then(|w| w.finish()).map_err(io)?))
}

fn run_descriptor(argv: &[String], args: &[String]) -> String {
    let cmd = argv.join(" ");
    if args.is_empty() {
        cmd
    } else {
        format!("|{} {} {cmd}", args.len(), args.join(" "))
    }
}

fn stage_name(from: &Instruction) -> Option<String> {
    let w: Vec<&str> = from.rest.split_whitespace().collect();
    match w.as_slice() {
        [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_string()),
        _ => None,
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Only this machine's platform can be built here.
pub fn check_platform(p: &str) -> Result<(), BuildError> {
    match p.trim() {
        "" | "linux" | "linux/amd64" | "linux/x86_64" => Ok(()),
        other => Err(BuildError::Unsupported(format!("platform {other} is not supported: this engine builds linux/amd64 only"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_descriptors() {
        let s = Stage {
            args: vec![("A".into(), Some("1".into())), ("B".into(), None), ("A".into(), Some("2".into()))],
            config: serde_json::from_value(json!({"Env": ["A=env", "P=/bin"]})).unwrap(),
            ..Default::default()
        };
        assert_eq!(s.run_args(), ["A=2"]);
        let v = s.vars();
        assert_eq!(crate::build::shell::Env::get(&v, "A").as_deref(), Some("env"));
        assert_eq!(run_descriptor(&["/bin/sh".into(), "-c".into(), "echo".into()], &["A=2".into()]), "|1 A=2 /bin/sh -c echo");
        assert!(check_platform("linux/arm64").is_err() && check_platform("linux/amd64").is_ok());
    }
}
