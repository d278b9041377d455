//! RunSpec -> OCI runtime spec (pure). OWNER: runtime/shim helper.
