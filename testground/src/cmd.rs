//! Running commands with a timeout and captured output.
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or timed-out) command gave.
#[derive(Debug, Clone)]
pub struct Output {
    pub cmdline: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    /// Exit code; `128 + signal` when killed by a signal; -1 when it timed out.
    pub fn code(&self) -> i32 {
        match self.status {
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            None => -1,
        }
    }
    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = if self.timed_out { "TIMED OUT".to_string() } else { format!("exit {}", self.code()) };
        write!(f, "$ {}\n[{st} after {:.2?}]\n--- stdout ---\n{}\n--- stderr ---\n{}", self.cmdline, self.elapsed, self.stdout, self.stderr)
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;|&<>".contains(c)) {
            s.push_str(&format!(" '{}'", a.replace('\'', r"'\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` in its own process group with `stdin` fed (or /dev/null), killing the whole group
/// after `timeout`.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let cmdline = describe(cmd);
    let start = Instant::now();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                cmdline,
                status: None,
                stdout: String::new(),
                stderr: format!("spawn failed: {e}"),
                timed_out: false,
                elapsed: start.elapsed(),
            }
        }
    };
    let writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut w = child.stdin.take();
        std::thread::spawn(move || {
            if let Some(w) = w.as_mut() {
                let _ = w.write_all(&data);
            }
        })
    });
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let pgid = child.id() as i32;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                // SAFETY: plain kill(2) of the process group we created.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Output { cmdline, status, stdout, stderr, timed_out, elapsed: start.elapsed() }
}

/// Runs a program with arguments (no stdin), 60 s timeout.
pub fn run_args(program: &str, args: &[&str]) -> Output {
    run(Command::new(program).args(args), None, Duration::from_secs(60))
}

/// SIGTERM to `c`, SIGKILL after `grace`; the exit status if it exited in time.
pub fn terminate(mut c: std::process::Child, grace: Duration) -> Option<ExitStatus> {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        match c.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_code() {
        let o = run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]), None, Duration::from_secs(10));
        assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code()), ("out\n", "err\n", 3));
        let o = run(&mut Command::new("cat"), Some(b"piped"), Duration::from_secs(10));
        assert_eq!(o.stdout, "piped");
    }

    #[test]
    fn kills_on_timeout() {
        let o = run(Command::new("sh").args(["-c", "sleep 30 & sleep 30"]), None, Duration::from_millis(200));
        assert!(o.timed_out && o.elapsed < Duration::from_secs(10), "{o}");
    }
}
