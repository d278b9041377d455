//! The container service: the API's entry point for containers.
use crate::events::EventBus;
use crate::image::ImageService;
use crate::network::NetworkService;
use crate::{Classify, EngineConfig, ErrorKind};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("{0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Classify for ContainerError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NotFound(_) => ErrorKind::NotFound,
            ContainerError::Conflict(_) => ErrorKind::Conflict,
            ContainerError::InvalidParam(_) => ErrorKind::InvalidParameter,
            ContainerError::NotModified(_) => ErrorKind::NotModified,
            ContainerError::Image(e) => e.kind(),
            ContainerError::Runtime(e) => e.kind(),
            ContainerError::Network(e) => e.kind(),
            ContainerError::Io(_) => ErrorKind::Internal,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

pub struct ContainerService {
    cfg: Arc<EngineConfig>,
    #[allow(dead_code)]
    images: Arc<ImageService>,
    #[allow(dead_code)]
    network: Arc<NetworkService>,
    #[allow(dead_code)]
    events: EventBus,
    daemon_id: String,
}

impl ContainerService {
    pub async fn open(
        cfg: Arc<EngineConfig>,
        images: Arc<ImageService>,
        network: Arc<NetworkService>,
        events: EventBus,
    ) -> Result<Arc<Self>, ContainerError> {
        let id_path = cfg.data_root.join("engine-id");
        let daemon_id = match std::fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let id = crate::ids::new_id();
                crate::fsutil::write_atomic(&id_path, id.as_bytes())?;
                id
            }
        };
        Ok(Arc::new(ContainerService { cfg, images, network, events, daemon_id }))
    }

    pub fn daemon_id(&self) -> String {
        self.daemon_id.clone()
    }

    pub fn counts(&self) -> Counts {
        let _ = &self.cfg;
        Counts::default()
    }

    pub fn image_in_use(&self, _image_id: &str) -> bool {
        false
    }
}
