//! placeholder
mod machine_support;
#[test]
fn placeholder() {}
