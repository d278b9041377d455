//! The Dockerfile parser: parser directives (`# escape=`, `# syntax=`), comments, line
//! continuations, and one [`Instruction`] per logical line with its line number, flags
//! (`--from=x`) and either JSON (exec) or plain (shell) arguments. Variables are not expanded
//! here (see [`super::shell`]); that happens per step with the stage's environment.
use super::BuildError;

/// Dockerfiles larger than this are refused.
pub const MAX_DOCKERFILE: usize = 1 << 20;

/// Every instruction the classic builder knows.
pub const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Instructions whose arguments may be a JSON array.
const JSON_FORMS: &[&str] = &["RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"];
/// Instructions that take `--flag=value` options.
const WITH_FLAGS: &[&str] = &["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper case (`COPY`).
    pub cmd: String,
    /// `--name=value` options, in order.
    pub flags: Vec<(String, String)>,
    /// The arguments after the flags, as written (continuations joined).
    pub rest: String,
    /// The arguments when written as a JSON array of strings.
    pub json: Option<Vec<String>>,
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The whole instruction as written (for `Step n/m : ...`).
    pub original: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Refuses flags other than `allowed`.
    pub fn check_flags(&self, allowed: &[&str]) -> Result<(), BuildError> {
        match self.flags.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(BuildError::Parse { line: self.line, msg: format!("unknown flag: {k}") }),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<String>,
}

/// Parses a Dockerfile; `name` is how errors call it.
pub fn parse(bytes: &[u8], name: &str) -> Result<Dockerfile, BuildError> {
    if bytes.len() > MAX_DOCKERFILE {
        return Err(BuildError::Invalid(format!("{name} is too large: {} bytes (the limit is 1 MiB)", bytes.len())));
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut df = Dockerfile { escape: '\\', ..Default::default() };
    let mut i = 0;
    // Directives: only at the very top, as `# key=value` comments.
    let mut seen = vec![];
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else { break };
        if seen.contains(&k) {
            return Err(BuildError::Parse { line: i + 1, msg: format!("only one {k} parser directive can be used") });
        }
        match k.as_str() {
            "escape" => {
                df.escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(BuildError::Parse { line: i + 1, msg: format!("invalid escape token '{v}' does not match ` or \\") }),
                }
            }
            "syntax" => df.warnings.push(format!("# syntax={v} is ignored: this engine's classic builder parses the Dockerfile itself")),
            _ => break, // any other comment ends the directives
        }
        seen.push(k);
        i += 1;
    }
    while i < lines.len() {
        let start = i;
        let line = lines[i];
        i += 1;
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut cur = t.to_string();
        loop {
            let trimmed = cur.trim_end();
            if let Some(body) = trimmed.strip_suffix(df.escape) {
                logical.push_str(body);
                // Comments and empty lines inside a continuation are skipped.
                while i < lines.len() && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#')) {
                    i += 1;
                }
                if i >= lines.len() {
                    break;
                }
                cur = lines[i].to_string();
                i += 1;
            } else {
                logical.push_str(&cur);
                break;
            }
        }
        df.instructions.push(instruction(logical.trim(), start + 1)?);
    }
    if df.instructions.is_empty() {
        return Err(BuildError::Invalid(format!("the Dockerfile ({name}) cannot be empty")));
    }
    if df.instructions[0].cmd != "FROM" && df.instructions.iter().take_while(|i| i.cmd != "FROM").any(|i| i.cmd != "ARG") {
        let first = df.instructions.iter().find(|i| i.cmd != "ARG" && i.cmd != "FROM").map(|i| i.line).unwrap_or(1);
        return Err(BuildError::Parse {
            line: first,
            msg: "no build stage in current context: the first instruction must be FROM (or ARG)".into(),
        });
    }
    Ok(df)
}

fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// Parses one logical line.
pub fn instruction(logical: &str, line: usize) -> Result<Instruction, BuildError> {
    let (word, rest) = logical.split_once(char::is_whitespace).unwrap_or((logical, ""));
    let cmd = word.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&cmd.as_str()) {
        return Err(BuildError::Parse { line, msg: format!("unknown instruction: {word}") });
    }
    let mut rest = rest.trim_start();
    let mut flags = vec![];
    if WITH_FLAGS.contains(&cmd.as_str()) {
        while let Some(f) = rest.strip_prefix("--") {
            let (tok, after) = f.split_once(char::is_whitespace).unwrap_or((f, ""));
            let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
            if k.is_empty() {
                break;
            }
            flags.push((k.to_string(), v.to_string()));
            rest = after.trim_start();
        }
    }
    let json =
        if JSON_FORMS.contains(&cmd.as_str()) && rest.starts_with('[') { serde_json::from_str::<Vec<String>>(rest).ok() } else { None };
    if rest.is_empty() && !matches!(cmd.as_str(), "RUN" | "CMD" | "ENTRYPOINT") {
        return Err(BuildError::Parse { line, msg: format!("{cmd} requires at least one argument") });
    }
    Ok(Instruction { cmd, flags, rest: rest.to_string(), json, line, original: logical.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_continuations_comments_and_flags() {
        let df = parse(
            b"# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox AS base\n# a comment\nRUN echo a `\n  # inside\n  b\n\ncopy --from=base --chown=1:2 [\"a b\", \"/c\"]\nCMD [\"sh\"]\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.warnings.len(), 1);
        let cmds: Vec<&str> = df.instructions.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(cmds, ["FROM", "RUN", "COPY", "CMD"]);
        assert_eq!(df.instructions[1].rest, "echo a   b");
        assert_eq!(df.instructions[1].line, 5);
        let copy = &df.instructions[2];
        assert_eq!((copy.flag("from"), copy.flag("chown"), copy.line), (Some("base"), Some("1:2"), 9));
        assert_eq!(copy.json.as_deref(), Some(&["a b".to_string(), "/c".to_string()][..]));
        assert_eq!(df.instructions[3].json.as_deref(), Some(&["sh".to_string()][..]));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(b"FROM busybox\n\nFOO bar\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile parse error line 3: unknown instruction: FOO");
        assert!(parse(b"\n# only a comment\n", "Dockerfile").unwrap_err().to_string().contains("cannot be empty"));
        assert!(parse(&vec![b'#'; MAX_DOCKERFILE + 1], "Dockerfile").unwrap_err().to_string().contains("too large"));
        assert!(parse(b"RUN true\n", "Dockerfile").unwrap_err().to_string().contains("line 1"));
        assert!(parse(b"ARG V=1\nFROM busybox:$V\n", "Dockerfile").is_ok());
        assert!(parse(b"FROM busybox\nENV\n", "Dockerfile").unwrap_err().to_string().contains("line 2: ENV requires"));
    }
}
