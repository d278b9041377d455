//! `POST /containers/create` through the scheduler: parse, check the name cluster-wide, choose
//! a node and reserve on it (under the placement lock), create there (pulling the image first
//! if the node lacks it), then retry as classic Swarm does.
use super::client::{encode_query, NodeError};
use super::engine::Engine;
use super::model;
use super::{Cluster, ClusterError};
use crate::scheduler::request::{Reschedule, LABEL_SWARM_ID};
use crate::scheduler::Request;
use hyper::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Why a create on one node failed.
#[derive(Debug, thiserror::Error)]
enum CreateError {
    /// The node lacks the image (a 404 while its image list has no such image), and pulling it
    /// there failed with this error.
    #[error("image not on the node and not pulled: {0}")]
    ImageMissing(NodeError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<CreateError> for NodeError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::ImageMissing(e) | CreateError::Node(e) => e,
        }
    }
}

impl CreateError {
    fn status(&self) -> Option<u16> {
        match self {
            CreateError::ImageMissing(e) | CreateError::Node(e) => e.status(),
        }
    }
}

fn random_hex64() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// `image` with `:latest` when it has neither tag nor digest.
fn with_tag(image: &str) -> String {
    if image.contains('@') || crate::scheduler::node::repo_of(image) != image {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// A container created through the scheduler.
pub(crate) struct Created {
    /// The node's answer.
    pub answer: model::Created,
    pub engine: Arc<Engine>,
    pub req: Request,
    /// The create body as sent (placement rules in labels, swarm ID set).
    pub body: Value,
}

impl Created {
    pub fn id(&self) -> &str {
        &self.answer.id
    }
}

impl Cluster {
    /// Schedules and creates a container; returns the node's answer. A container
    /// with `reschedule:on-node-failure` is recorded (in etcd with etcd discovery) before the
    /// create is acknowledged.
    pub async fn create(&self, name: Option<String>, body: Value, auth: Option<HeaderValue>) -> Result<model::Created, ClusterError> {
        let started = Instant::now();
        let r = self.create_scheduled(name, body, auth).await;
        let r = match r {
            Ok(c) if c.req.reschedule == Reschedule::OnNodeFailure => self.record_created(&c).await.map(|()| c.answer),
            Ok(c) => Ok(c.answer),
            Err(e) => Err(e),
        };
        self.metrics.observe_create(started.elapsed(), r.is_ok());
        r
    }

    /// Schedules and creates a container; no record is written.
    pub(crate) async fn create_scheduled(
        &self,
        name: Option<String>,
        mut body: Value,
        auth: Option<HeaderValue>,
    ) -> Result<Created, ClusterError> {
        let mut req = Request::from_config(name.as_deref(), &mut body)?;
        if req.image.is_empty() {
            return Err(ClusterError::InvalidParameter("No image was specified".into()));
        }
        // `Labels` is an object now (`from_config`); an ID that is not a string is none.
        if body.get("Labels").and_then(|l| l.get(LABEL_SWARM_ID)).and_then(Value::as_str).is_none_or(str::is_empty) {
            model::set_field(&mut body, "Labels", LABEL_SWARM_ID, json!(random_hex64()));
        }
        // `--net node/net`: the network of that node.
        if let Some((node, net)) = req.network_mode.split_once('/') {
            if self.engine_named(node).is_some() {
                let (node, net) = (node.to_string(), net.to_string());
                model::set_field(&mut body, "HostConfig", "NetworkMode", json!(net));
                req.network_mode = net;
                req.constraints.push(format!("node=={node}").parse().map_err(crate::scheduler::RequestError::from)?);
            }
        }
        if let Some(n) = &req.name {
            if let Some(id) = self.name_owner(n) {
                return Err(ClusterError::NameInUse { name: n.clone(), id });
            }
        }
        let mut retries = 0;
        let mut image_affinity = false;
        loop {
            // A manager that lost its lease accepts no create (another primary may exist).
            if !self.ha.is_primary() {
                return Err(ClusterError::NotPrimary);
            }
            let (engine, pending) = self.place(&req)?;
            let r = self.create_on(&engine, &pending, &req, &body, auth.clone()).await;
            engine.remove_pending(&pending);
            for id in engine.unclaimed_creates() {
                if let Err(e) = engine.refresh_container(self, &id).await {
                    tracing::warn!(node = %engine.addr, container = %id, error = %e, "could not inspect a container created meanwhile");
                }
            }
            match r {
                Ok(answer) => return Ok(Created { answer, engine, req, body }),
                Err(CreateError::ImageMissing(_)) if !image_affinity && !req.pinned_to_node() && self.image_somewhere(&req.image) => {
                    tracing::info!(image = %req.image, "retrying on a node that has the image");
                    image_affinity = true;
                    req.affinities.push(format!("image=={}", req.image).parse().map_err(crate::scheduler::RequestError::from)?);
                }
                Err(e) if retries < self.opts.create_retry && e.status() != Some(409) && e.status() != Some(400) => {
                    retries += 1;
                    tracing::info!(error = %e, retries, "create failed; retrying");
                }
                Err(e) => return Err(NodeError::from(e).into()),
            }
        }
    }

    /// Chooses a node and records the pending reservation (one lock, no await).
    fn place(&self, req: &Request) -> Result<(Arc<Engine>, String), ClusterError> {
        let _g = self.place.lock().unwrap_or_else(|p| p.into_inner());
        let t = Instant::now();
        let best = self.with_index(|idx| self.scheduler.pick_indexed(req, idx).map(|n| n.addr.clone()));
        self.metrics.observe_placement(t.elapsed());
        let addr = &best?;
        let engine = self.engine(addr).ok_or(crate::scheduler::SchedError::NoHealthyNode)?;
        let pending = format!("pending-{}", self.pending_seq.fetch_add(1, Ordering::Relaxed));
        engine.add_pending(&pending, req.pending_view(pending.clone()));
        Ok((engine, pending))
    }

    /// Whether `engine` lacks `image`, after reading its image list again.
    async fn image_absent_on(&self, engine: &Engine, image: &str) -> bool {
        if let Err(e) = engine.refresh_images(self).await {
            tracing::debug!(node = %engine.addr, error = %e, "cannot list images");
        }
        !engine.has_image(image)
    }

    fn image_somewhere(&self, image: &str) -> bool {
        self.validated().iter().any(|e| e.has_image(image))
    }

    /// Creates on `engine`, pulling the image once if the node lacks it, and records the result.
    /// On success the pending reservation is replaced by the container's record.
    async fn create_on(
        &self,
        engine: &Engine,
        pending: &str,
        req: &Request,
        body: &Value,
        auth: Option<HeaderValue>,
    ) -> Result<model::Created, CreateError> {
        let ncpu = engine.ncpu().max(1);
        // Swarm's CpuShares are CPUs; the node wants real shares.
        let shares = if req.cpus > 0 { (req.cpus * 1024 + ncpu - 1) / ncpu } else { 0 };
        let body = if shares > 0 {
            let mut body = body.clone();
            model::set_field(&mut body, "HostConfig", "CpuShares", json!(shares));
            std::borrow::Cow::Owned(body)
        } else {
            std::borrow::Cow::Borrowed(body)
        };
        let body = body.as_ref();
        let path = match &req.name {
            Some(n) => format!("/containers/create?{}", encode_query([("name", n.as_str())])),
            None => "/containers/create".to_string(),
        };
        let mut r = engine.client.post_json(&path, body, HeaderMap::new()).await;
        engine.note(self, &r);
        if let Err(NodeError::Status { status: 404, .. }) = &r {
            // A 404 is the image only when the node's own list (read again) lacks it; dockerd and
            // our engine word that answer differently, so the text decides nothing.
            if self.image_absent_on(engine, &req.image).await {
                self.pull_on(engine, &with_tag(&req.image), auth).await.map_err(CreateError::ImageMissing)?;
                r = engine.client.post_json(&path, body, HeaderMap::new()).await;
                engine.note(self, &r);
            }
        }
        let v = model::Created::read(&r?);
        if v.id.is_empty() {
            // Nothing could be found, inspected or removed by that ID: the create failed.
            return Err(NodeError::Decode { addr: engine.addr.clone(), detail: "the create answer has no container Id".into() }.into());
        }
        let id = v.id.clone();
        if engine.events_live() {
            // The node's events keep this record current from here on: no inspect needed. The
            // CPUs are those the shares sent reserve, as an inspect would read them back.
            let cpus = shares * ncpu / 1024;
            engine.created(pending, &id, Some(super::view::Container::from_create(&id, req, body, cpus)));
        } else {
            if let Err(e) = engine.refresh_container(self, &id).await {
                tracing::warn!(node = %engine.addr, container = %id, error = %e, "created, but could not inspect");
            }
            engine.created(pending, &id, None);
        }
        Ok(v)
    }

    /// Pulls `image` on one node and waits for the end of the progress stream.
    pub async fn pull_on(&self, engine: &Engine, image: &str, auth: Option<HeaderValue>) -> Result<(), NodeError> {
        let (repo, tag) = match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (image, "latest"),
        };
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("X-Registry-Auth", a);
        }
        let path = format!("/images/create?{}", encode_query([("fromImage", repo), ("tag", tag)]));
        let r = engine.client.send(hyper::Method::POST, &path, h, reqwest::Body::from(""), None).await;
        engine.note(self, &r);
        let resp = engine.client.check(r?).await?;
        let body = resp.bytes().await.map_err(|e| NodeError::Decode { addr: engine.addr.clone(), detail: e.to_string() })?;
        for line in body.split(|b| *b == b'\n') {
            if let Some(m) = serde_json::from_slice::<model::ProgressLine>(line).ok().as_ref().and_then(model::ProgressLine::error) {
                return Err(NodeError::Status { status: 404, message: m.to_string() });
            }
        }
        let _ = engine.refresh_images(self).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn helpers() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("localhost:5000/busybox"), "localhost:5000/busybox:latest");
        assert_eq!(with_tag("busybox:1"), "busybox:1");
        assert_eq!(encode_query([("name", "a b/c"), ("tag", "1")]), "name=a+b%2Fc&tag=1");
        assert_eq!(random_hex64().len(), 64);
    }

    /// Create events that come before the create's answer: the create's own is claimed by its
    /// record (naming it), any other is left to be inspected once no create is pending.
    #[tokio::test]
    async fn early_create_events_are_claimed_or_left_to_inspect() {
        let c = Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let addr = "10.0.0.1:2375";
        let e = Engine::new(addr, c.transport.client(addr), c.dirty.clone());
        assert!(!e.hold_create_event("x0", Some("/other")), "nothing pending: inspect now");
        let mut body = json!({"Image": "busybox"});
        let req = Request::from_config(None, &mut body).unwrap();
        e.add_pending("p1", req.pending_view("p1".into()));
        e.add_pending("p2", req.pending_view("p2".into()));
        assert!(e.hold_create_event("mine", Some("/sim_7")));
        assert!(e.hold_create_event("theirs", Some("/other")));
        e.created("p1", "mine", Some(super::super::view::Container::from_create("mine", &req, &body, 0)));
        assert_eq!(&*e.get("mine").unwrap().name, "sim_7", "named by its event");
        assert!(e.unclaimed_creates().is_empty(), "a create is still pending");
        e.remove_pending("p2");
        assert_eq!(e.unclaimed_creates(), ["theirs"]);
        assert!(e.unclaimed_creates().is_empty());
    }

    /// A container removed on its node before its create's answer came (its destroy event
    /// first): the answer adds no record, and its held create event is not inspected later.
    #[tokio::test]
    async fn a_destroy_event_before_the_create_answer_leaves_no_record() {
        let c = Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let addr = "10.0.0.1:2375";
        let e = Engine::new(addr, c.transport.client(addr), c.dirty.clone());
        let mut body = json!({"Image": "busybox"});
        let req = Request::from_config(None, &mut body).unwrap();
        e.add_pending("p1", req.pending_view("p1".into()));
        assert!(e.hold_create_event("gone", Some("/quick")));
        e.remove("gone");
        e.created("p1", "gone", Some(super::super::view::Container::from_create("gone", &req, &body, 0)));
        assert!(e.get("gone").is_none(), "no stale record");
        e.remove_pending("p1");
        assert!(e.unclaimed_creates().is_empty(), "nothing left to inspect");
        // Nothing pending: a destroy of an unknown container is remembered nowhere.
        e.remove("other");
        e.add_pending("p2", req.pending_view("p2".into()));
        e.created("p2", "other", Some(super::super::view::Container::from_create("other", &req, &body, 0)));
        assert!(e.get("other").is_some(), "created after that destroy: kept");
    }

    /// The periodic refresh reads the same image list again: the node's records stay as they are.
    #[test]
    fn the_same_image_list_changes_nothing() {
        let c = Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let addr = "10.0.0.1:2375";
        let e = Engine::new(addr, c.transport.client(addr), c.dirty.clone());
        let rows = vec![json!({"Id": "sha256:1", "RepoTags": ["busybox:latest"]})];
        e.set_images(rows.clone());
        let first = e.images();
        e.set_images(rows);
        assert!(Arc::ptr_eq(&first, &e.images()), "kept");
        e.set_images(vec![]);
        assert!(e.images().is_empty() && !e.has_image("busybox"));
    }
}
