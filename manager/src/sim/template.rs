//! A manager command template (`MANAGER_CMD` of `bench/manager`): a shell command line with
//! `{nodes}` (the discovery URL: `nodes://a,b,…` or `file:///path`) and `{addr}` (the
//! `host:port` the manager must serve on). Both must appear, nothing else may: a typo such as
//! `{node}` is an error, not a command run with a literal `{node}` in it. `${VAR}` is left to
//! the shell.

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 2] = ["nodes", "addr"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{var}: the command is empty")]
    Empty { var: String },
    #[error("{var}: unknown placeholder {{{name}}} in {template:?} (known: {{nodes}}, {{addr}})")]
    Unknown { var: String, name: String, template: String },
    #[error("{var}: no {{{name}}} in {template:?}; the command must take the nodes from {{nodes}} and listen on {{addr}}")]
    Missing { var: String, name: &'static str, template: String },
    #[error("{var}: unclosed '{{' in {template:?}")]
    Unclosed { var: String, template: String },
}

/// The placeholders of `template` in order, `${…}` excepted.
fn placeholders(var: &str, template: &str) -> Result<Vec<(usize, usize, String)>, TemplateError> {
    let b = template.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && (i == 0 || b[i - 1] != b'$') {
            let Some(len) = template[i + 1..].find('}') else {
                return Err(TemplateError::Unclosed { var: var.into(), template: template.into() });
            };
            out.push((i, i + len + 2, template[i + 1..i + 1 + len].to_string()));
            i += len + 2;
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// Checks `template` (named `var` in errors) without expanding it.
pub fn check(var: &str, template: &str) -> Result<(), TemplateError> {
    if template.trim().is_empty() {
        return Err(TemplateError::Empty { var: var.into() });
    }
    let found = placeholders(var, template)?;
    if let Some((_, _, name)) = found.iter().find(|(_, _, n)| !PLACEHOLDERS.contains(&n.as_str())) {
        return Err(TemplateError::Unknown { var: var.into(), name: name.clone(), template: template.into() });
    }
    for name in PLACEHOLDERS {
        if !found.iter().any(|(_, _, n)| n == name) {
            return Err(TemplateError::Missing { var: var.into(), name, template: template.into() });
        }
    }
    Ok(())
}

/// `template` with `{nodes}` and `{addr}` replaced.
pub fn expand(var: &str, template: &str, nodes: &str, addr: &str) -> Result<String, TemplateError> {
    check(var, template)?;
    let mut out = String::with_capacity(template.len() + nodes.len());
    let mut last = 0;
    for (start, end, name) in placeholders(var, template)? {
        out.push_str(&template[last..start]);
        out.push_str(if name == "nodes" { nodes } else { addr });
        last = end;
    }
    out.push_str(&template[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_both_placeholders_and_leaves_shell_variables() {
        let t = "${SWARM:-swarm} manage -H tcp://{addr} --strategy spread {nodes}";
        assert_eq!(
            expand("MANAGER_CMD", t, "file:///tmp/n", "127.0.0.1:4000").unwrap(),
            "${SWARM:-swarm} manage -H tcp://127.0.0.1:4000 --strategy spread file:///tmp/n"
        );
    }

    #[test]
    fn refuses_unknown_missing_and_unclosed_placeholders() {
        let e = check("MANAGER2_CMD", "swarm manage -H tcp://{addr} {node}").unwrap_err();
        assert!(matches!(&e, TemplateError::Unknown { name, .. } if name == "node"), "{e}");
        assert!(e.to_string().starts_with("MANAGER2_CMD: unknown placeholder {node}"), "{e}");
        let e = check("MANAGER_CMD", "swarm manage {nodes}").unwrap_err();
        assert!(matches!(e, TemplateError::Missing { name: "addr", .. }), "{e}");
        assert!(matches!(check("X", "swarm manage -H {addr {nodes}").unwrap_err(), TemplateError::Unknown { .. }));
        assert!(matches!(check("X", "swarm {addr} {nodes} {").unwrap_err(), TemplateError::Unclosed { .. }));
        assert!(matches!(check("X", "  ").unwrap_err(), TemplateError::Empty { .. }));
    }
}
