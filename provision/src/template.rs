//! A subset of Go's text/template for `inspect -f` and `ls --format`, over JSON values:
//! `{{.A.B}}`, `{{.}}`, `{{json .X}}`, `{{prettyjson .X}}`, `{{upper|lower|title .X}}`,
//! `{{join .List ","}}`, pipes (`{{.X | json}}`), `{{if .X}}…{{else}}…{{end}}`,
//! `{{range .List}}…{{end}}`. Values print as Go's `%v` does (`[a b]`, `map[k:v]`,
//! `<no value>` for missing keys).
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("Template parsing error: template: :1: {0}")]
    Parse(String),
    #[error("Template execution error: {0}")]
    Exec(String),
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Cmd>),
    If(Vec<Cmd>, Vec<Node>, Vec<Node>),
    Range(Vec<Cmd>, Vec<Node>),
}

/// One pipeline stage: a function name (or none) and arguments.
#[derive(Debug, Clone)]
struct Cmd {
    func: Option<String>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
}

#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

const FUNCS: &[&str] = &["json", "prettyjson", "upper", "lower", "title", "join", "len", "print", "println"];

fn tokenize(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut lit = String::from("\"");
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => lit.push('\n'),
                            Some('t') => lit.push('\t'),
                            Some(o) => lit.push(o),
                            None => return Err(TemplateError::Parse("unterminated quoted string".into())),
                        },
                        Some('"') => break,
                        Some(o) => lit.push(o),
                        None => return Err(TemplateError::Parse("unterminated quoted string".into())),
                    }
                }
                out.push(lit);
            }
            ' ' | '\t' | '\n' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '|' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push("|".into());
            }
            o => cur.push(o),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn parse_arg(t: &str) -> Result<Arg, TemplateError> {
    if let Some(s) = t.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if t == "." {
        return Ok(Arg::Field(vec![]));
    }
    if let Some(p) = t.strip_prefix('.') {
        return Ok(Arg::Field(p.split('.').map(String::from).collect()));
    }
    Err(TemplateError::Parse(format!("function \"{t}\" not defined")))
}

fn parse_pipeline(src: &str) -> Result<Vec<Cmd>, TemplateError> {
    let toks = tokenize(src)?;
    let mut cmds = vec![];
    for stage in toks.split(|t| t == "|") {
        let Some(first) = stage.first() else { return Err(TemplateError::Parse("missing value for command".into())) };
        let (func, rest) = if FUNCS.contains(&first.as_str()) { (Some(first.clone()), &stage[1..]) } else { (None, stage) };
        let args = rest.iter().map(|t| parse_arg(t)).collect::<Result<Vec<_>, _>>()?;
        if func.is_none() && args.len() != 1 {
            return Err(TemplateError::Parse(format!("unexpected {:?} in command", stage.get(1).cloned().unwrap_or_default())));
        }
        cmds.push(Cmd { func, args });
    }
    Ok(cmds)
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut pos = 0;
        let (nodes, end) = parse_nodes(src, &mut pos)?;
        if let Some(e) = end {
            return Err(TemplateError::Parse(format!("unexpected {{{{{e}}}}}")));
        }
        Ok(Template { nodes })
    }

    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        exec_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Parses until `{{end}}`/`{{else}}` (returned) or the end of input.
fn parse_nodes(src: &str, pos: &mut usize) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = vec![];
    loop {
        let rest = &src[*pos..];
        let Some(open) = rest.find("{{") else {
            if !rest.is_empty() {
                nodes.push(Node::Text(rest.to_string()));
            }
            *pos = src.len();
            return Ok((nodes, None));
        };
        if open > 0 {
            nodes.push(Node::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| TemplateError::Parse("unclosed action".into()))?;
        let inner = after[..close].trim().trim_start_matches('-').trim_end_matches('-').trim();
        *pos += open + 2 + close + 2;
        let word = inner.split_whitespace().next().unwrap_or("");
        match word {
            "end" | "else" => return Ok((nodes, Some(word.to_string()))),
            "if" | "range" => {
                let pipe = parse_pipeline(inner[word.len()..].trim())?;
                let (body, end) = parse_nodes(src, pos)?;
                let (els, end) = if end.as_deref() == Some("else") { parse_nodes(src, pos)? } else { (vec![], end) };
                if end.as_deref() != Some("end") {
                    return Err(TemplateError::Parse(format!("unexpected EOF: missing {{{{end}}}} for {word}")));
                }
                nodes.push(if word == "if" { Node::If(pipe, body, els) } else { Node::Range(pipe, body) });
            }
            "" => return Err(TemplateError::Parse("missing value for command".into())),
            _ => nodes.push(Node::Action(parse_pipeline(inner)?)),
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn exec_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval(p, dot)?;
                out.push_str(&display(&v));
            }
            Node::If(p, a, b) => exec_nodes(if truthy(&eval(p, dot)?) { a } else { b }, dot, out)?,
            Node::Range(p, body) => match eval(p, dot)? {
                Value::Array(items) => {
                    for it in &items {
                        exec_nodes(body, it, out)?;
                    }
                }
                Value::Object(m) => {
                    for it in m.values() {
                        exec_nodes(body, it, out)?;
                    }
                }
                Value::Null => {}
                other => return Err(TemplateError::Exec(format!("range can't iterate over {}", display(&other)))),
            },
        }
    }
    Ok(())
}

fn field(dot: &Value, path: &[String]) -> Result<Value, TemplateError> {
    let mut v = dot;
    for (i, k) in path.iter().enumerate() {
        match v {
            Value::Object(m) => match m.get(k) {
                Some(x) => v = x,
                None => return Ok(Value::Null),
            },
            Value::Null if i > 0 => return Ok(Value::Null),
            _ => return Err(TemplateError::Exec(format!("template: :1: can't evaluate field {k} in type {}", type_name(v)))),
        }
    }
    Ok(v.clone())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn eval(p: &[Cmd], dot: &Value) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for c in p {
        let mut args: Vec<Value> = c
            .args
            .iter()
            .map(|a| match a {
                Arg::Field(path) => field(dot, path),
                Arg::Str(s) => Ok(Value::String(s.clone())),
            })
            .collect::<Result<_, _>>()?;
        if let Some(v) = prev.take() {
            args.push(v);
        }
        let v = match c.func.as_deref() {
            None => args.into_iter().next().unwrap_or(Value::Null),
            Some(f) => call(f, &args)?,
        };
        prev = Some(v);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn one<'a>(f: &str, args: &'a [Value]) -> Result<&'a Value, TemplateError> {
    args.first().ok_or_else(|| TemplateError::Exec(format!("wrong number of args for {f}: want 1 got 0")))
}

fn call(f: &str, args: &[Value]) -> Result<Value, TemplateError> {
    Ok(match f {
        "json" => Value::String(serde_json::to_string(one(f, args)?).unwrap_or_default()),
        "prettyjson" => Value::String(pretty(one(f, args)?)),
        "upper" => Value::String(display(one(f, args)?).to_uppercase()),
        "lower" => Value::String(display(one(f, args)?).to_lowercase()),
        "title" => {
            let s = display(one(f, args)?);
            let mut c = s.chars();
            Value::String(c.next().map(|x| x.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default())
        }
        "len" => Value::from(match one(f, args)? {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "join" => {
            let (list, sep) = match args {
                [Value::Array(a), Value::String(s)] => (a, s),
                _ => return Err(TemplateError::Exec("join needs a list and a separator".into())),
            };
            Value::String(list.iter().map(display).collect::<Vec<_>>().join(sep))
        }
        "print" => Value::String(args.iter().map(display).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(args.iter().map(display).collect::<Vec<_>>().join(" ") + "\n"),
        other => return Err(TemplateError::Exec(format!("function \"{other}\" not defined"))),
    })
}

/// Indented JSON with 4 spaces (Docker Machine's `prettyjson` and `inspect`).
pub fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8(buf).unwrap_or_default()
}

/// Go's `%v` of a decoded JSON value.
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(inner).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!("map[{}]", m.iter().map(|(k, v)| format!("{k}:{}", inner(v))).collect::<Vec<_>>().join(" ")),
    }
}

fn inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        o => display(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(v).unwrap()
    }

    #[test]
    fn fields_and_functions() {
        let v = json!({"Name": "m1", "Driver": {"IPAddress": "10.0.0.5", "SSHPort": 22}, "Labels": ["a=b", "c=d"], "Empty": [], "M": {"k": "v"}, "N": null});
        assert_eq!(run("{{.Name}} {{.Driver.IPAddress}}:{{.Driver.SSHPort}}", &v), "m1 10.0.0.5:22");
        assert_eq!(run("{{json .Driver}}", &v), r#"{"IPAddress":"10.0.0.5","SSHPort":22}"#);
        assert_eq!(run("{{.Driver | json}}", &v), r#"{"IPAddress":"10.0.0.5","SSHPort":22}"#);
        assert_eq!(run("{{prettyjson .M}}", &v), "{\n    \"k\": \"v\"\n}");
        assert_eq!(run("{{.Labels}} {{.Empty}} {{.M}} {{.Missing}} {{.N}}", &v), "[a=b c=d] [] map[k:v] <no value> <no value>");
        assert_eq!(run("{{join .Labels \",\"}}|{{upper .Name}}|{{len .Labels}}", &v), "a=b,c=d|M1|2");
        assert_eq!(run("{{if .Empty}}yes{{else}}no{{end}} {{range .Labels}}<{{.}}>{{end}}", &v), "no <a=b><c=d>");
        assert_eq!(run("{{ .Name }}", &v), "m1");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{if .X}}a").is_err());
        assert!(Template::parse("{{nosuch .X}}").is_err());
        let e = Template::parse("{{.Name.Sub}}").unwrap().execute(&json!({"Name": "x"})).unwrap_err();
        assert!(e.to_string().contains("can't evaluate field Sub"), "{e}");
    }
}
