//! TEMPORARY until the shim branch lands: lets the container service compile.
use crate::runtime::*;
use std::path::Path;

impl Runtime for ShimRuntime {
    async fn create(&self, _spec: &RunSpec) -> Result<(), RuntimeError> {
        Err(RuntimeError::Shim("runtime not merged yet".into()))
    }
    async fn start(&self, _id: &str, _sd: &Path) -> Result<u32, RuntimeError> {
        Err(RuntimeError::Shim("runtime not merged yet".into()))
    }
    async fn signal(&self, id: &str, _sd: &Path, _s: i32) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotRunning(id.into()))
    }
    async fn wait(&self, _id: &str, _sd: &Path) -> Result<Exit, RuntimeError> {
        Err(RuntimeError::Shim("runtime not merged yet".into()))
    }
    async fn attach(&self, _id: &str, _sd: &Path, _o: AttachOpts) -> Result<AttachStream, RuntimeError> {
        Err(RuntimeError::Shim("runtime not merged yet".into()))
    }
    async fn delete(&self, _id: &str, _sd: &Path) -> Result<(), RuntimeError> {
        Ok(())
    }
}
