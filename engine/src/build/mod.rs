//! The classic builder (`POST /build`): a Dockerfile and a context tar become an image, one
//! step at a time. Each `RUN` runs in a real container of this engine and is committed as a
//! layer; `COPY`/`ADD` extract into a created (never started) container; the other
//! instructions only change the config. Every step's image is kept (with `parent` set) and
//! remembered in a cache keyed by parent, instruction and, for `COPY`/`ADD`, the files' hash.
//!
//! On disk: `<data-root>/build/cache/<key>` (one image id per cache key) and
//! `<data-root>/build/tmp/<build>/` (the unpacked context, removed when the build ends).
pub mod cache;
pub mod context;
pub mod copy;
pub mod ignore;
pub mod meta;
pub mod output;
pub mod parser;
pub mod run;
pub mod shell;
pub mod steps;

use crate::container::ContainerService;
use crate::image::reference::Reference;
use crate::image::ImageService;
use crate::runtime::Runtime;
use crate::{Classify, ErrorKind};
use output::Output;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile parse error line {line}: {msg}")]
    Parse { line: usize, msg: String },
    /// A word of the Dockerfile that the shell lexer rejects (quotes, `${...}`).
    #[error("Dockerfile parse error line {line}: {source}")]
    Shell { line: usize, source: shell::ShellError },
    #[error("{0}")]
    Invalid(String),
    /// A query option this engine does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// A `RUN` that failed.
    #[error("The command '{cmd}' returned a non-zero code: {code}")]
    RunFailed { cmd: String, code: i64 },
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("{0}")]
    Container(#[from] crate::container::ContainerError),
    /// `op` (what was being done) on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// A blocking step (`what`) panicked or was cancelled.
    #[error("{what}: {source}")]
    Join { what: &'static str, source: tokio::task::JoinError },
}

impl BuildError {
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
        move |source| BuildError::Io { op, path: path.to_path_buf(), source }
    }
    pub(crate) fn join(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> BuildError {
        move |source| BuildError::Join { what, source }
    }
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Parse { .. } | BuildError::Shell { .. } | BuildError::Invalid(_) | BuildError::Unsupported(_) => {
                ErrorKind::InvalidParameter
            }
            BuildError::RunFailed { .. } => ErrorKind::Internal,
            BuildError::Image(e) => e.kind(),
            BuildError::Container(e) => e.kind(),
            BuildError::Io { .. } | BuildError::Join { .. } => ErrorKind::Internal,
        }
    }
}

/// What `POST /build` asks for (the query, parsed).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    pub target: String,
    pub nocache: bool,
    pub pull: bool,
    /// Remove intermediate containers after a successful step (default) ...
    pub rm: bool,
    /// ... and also after a failed one.
    pub forcerm: bool,
    pub quiet: bool,
    pub labels: BTreeMap<String, String>,
    /// `--build-arg k=v` (`None`: take the value from nowhere, the arg stays unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// For `RUN` containers.
    pub run: RunOptions,
}

/// Host settings of the `RUN` containers.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<i64>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
}

/// The builder; cheap to make per request.
pub struct BuildService<R: Runtime> {
    pub(crate) images: Arc<ImageService>,
    pub(crate) containers: Arc<ContainerService<R>>,
    pub(crate) data_root: PathBuf,
    root: PathBuf,
}

/// The build's own directory, removed when dropped.
pub(crate) struct WorkDir(pub PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.0.display(), error = %e, "removing a build directory failed");
            }
        }
    }
}

impl<R: Runtime> BuildService<R> {
    pub fn new(images: Arc<ImageService>, containers: Arc<ContainerService<R>>, data_root: &Path) -> Self {
        BuildService { images, containers, data_root: data_root.to_path_buf(), root: data_root.join("build") }
    }

    pub(crate) fn cache(&self) -> cache::Cache {
        cache::Cache::new(self.root.join("cache"))
    }

    /// Unpacks the context (a spooled tar, removed afterwards) and parses the Dockerfile:
    /// everything that can be refused before the first step. Blocking.
    pub fn prepare(&self, context_tar: &Path, opts: &BuildOptions) -> Result<Prepared, BuildError> {
        let dir = WorkDir(self.root.join("tmp").join(crate::ids::new_id()));
        let ctx = dir.0.join("context");
        std::fs::create_dir_all(&ctx).map_err(BuildError::io("creating", &ctx))?;
        let res = if context::is_plain_dockerfile(context_tar)? {
            // A body that is no archive is the Dockerfile itself (`docker build - < Dockerfile`).
            std::fs::copy(context_tar, ctx.join("Dockerfile")).map(|_| ()).map_err(BuildError::io("copying", context_tar))
        } else {
            std::fs::File::open(context_tar)
                .map_err(BuildError::io("opening", context_tar))
                .and_then(|f| context::unpack_context(std::io::BufReader::new(f), &ctx))
        };
        let _ = std::fs::remove_file(context_tar);
        res?;
        let (name, bytes) = context::read_dockerfile(&ctx, &opts.dockerfile)?;
        let df = parser::parse(&bytes, &name)?;
        context::apply_dockerignore(&ctx)?;
        Ok(Prepared { dir, context: ctx, dockerfile: df })
    }

    /// Runs the build, reporting on `out`; returns the image id.
    pub async fn build(self: &Arc<Self>, p: Prepared, opts: BuildOptions, out: &Output) -> Result<String, BuildError> {
        for w in &p.dockerfile.warnings {
            out.stream(format!("[Warning] {w}\n"));
        }
        let id = steps::Builder::new(self.clone(), &p, &opts, out).run().await?;
        let short = &crate::image::hex_of(&id)[..12];
        out.aux_id(&id);
        if opts.quiet {
            out.final_stream(format!("{id}\n"));
        } else {
            out.stream(format!("Successfully built {short}\n"));
        }
        for t in &opts.tags {
            let img = self.images.clone();
            let (t2, id2) = (t.clone(), id.clone());
            tokio::task::spawn_blocking(move || img.set_ref(&t2, &id2)).await.map_err(BuildError::join("tagging"))??;
            if !opts.quiet {
                out.stream(format!("Successfully tagged {}\n", t.familiar()));
            }
        }
        Ok(id)
    }

    /// `POST /build/prune`: forgets the cache and removes the step images nothing uses.
    pub async fn prune(&self) -> Result<(Vec<String>, u64), BuildError> {
        let cache = self.cache();
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || cache.prune(&images)).await.map_err(BuildError::join("build cache prune"))?
    }
}

/// A build ready to run: its directory (with the unpacked context) and the parsed Dockerfile.
pub struct Prepared {
    pub(crate) dir: WorkDir,
    pub context: PathBuf,
    pub dockerfile: parser::Dockerfile,
}
