//! SSH to a machine: the [`Ssh`] seam (exec with combined output and exit status, upload,
//! download), the real client on libssh2 ([`Ssh2Client`]), retries while a host boots, and a
//! recording fake for tests ([`FakeSsh`]). Files go over SFTP; on a host whose sshd has no
//! SFTP subsystem they go through a plain exec channel (`cat`), as Docker Machine never
//! needed SFTP.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hostkey::{HostKey, HostKeyError, KnownHosts, Verified};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("ssh: dial tcp {addr}: {detail}")]
    Dial { addr: String, detail: String },
    #[error("ssh: handshake failed: {0}")]
    Handshake(String),
    #[error("ssh: unable to authenticate as {user} ({detail}); attempted methods [none publickey], no supported methods remain")]
    Auth { user: String, detail: String },
    #[error("ssh: {0}")]
    Session(String),
    #[error("ssh command error:\ncommand : {command}\nerr     : exit status {status}\noutput  : {output}")]
    Command { command: String, status: i32, output: String },
    #[error("Too many retries waiting for SSH to be available.  Last error: {0}")]
    NeverUp(String),
    #[error("{path}: {source}")]
    Local { path: PathBuf, source: std::io::Error },
    #[error("ssh: {0}")]
    HostKey(#[from] HostKeyError),
}

impl SshError {
    /// True for errors that waiting may cure (host booting, sshd not yet listening).
    pub fn transient(&self) -> bool {
        matches!(self, SshError::Dial { .. } | SshError::Handshake(_))
    }
}

fn sess_err(e: ssh2::Error) -> SshError {
    SshError::Session(e.to_string())
}

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key; `None` = ssh-agent, then `~/.ssh/id_{ed25519,ecdsa,rsa}`.
    pub key: Option<PathBuf>,
    /// The machine's host key record (trust on first use, then pinned); `None` checks
    /// nothing (a host that is not a machine yet).
    pub known_hosts: Option<KnownHosts>,
}

impl SshTarget {
    /// `sudo ` for non-root users, empty for root.
    pub fn sudo(&self) -> &'static str {
        if self.user == "root" {
            ""
        } else {
            "sudo "
        }
    }
}

/// Output of one remote command: exit status and stdout+stderr interleaved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    pub status: i32,
    pub output: String,
}

/// One SSH connection to a machine.
pub trait Ssh: Send + Sync {
    /// Runs `cmd` through the login shell; stdout and stderr combined.
    fn exec(&self, cmd: &str) -> Result<ExecOutput, SshError>;
    /// Runs `cmd` through the login shell; stdout only. What the login shell's rc files
    /// print on stderr (a `pyenv rehash` failing, say) never reaches an answer that is parsed.
    fn exec_stdout(&self, cmd: &str) -> Result<ExecOutput, SshError>;
    /// Writes `data` to the remote file `path` (as the login user) with `mode`.
    fn upload(&self, data: &[u8], path: &str, mode: i32) -> Result<(), SshError>;
    /// Copies the local file `local` to the remote `path` (streamed) with `mode`.
    fn upload_file(&self, local: &Path, path: &str, mode: i32) -> Result<(), SshError>;
    /// Reads a remote file.
    fn download(&self, path: &str) -> Result<Vec<u8>, SshError>;
}

/// Runs `cmd`, failing with Docker Machine's `ssh command error` text unless it exits 0;
/// returns the output.
pub fn run(ssh: &dyn Ssh, cmd: &str) -> Result<String, SshError> {
    let o = ssh.exec(cmd)?;
    if o.status != 0 {
        return Err(SshError::Command { command: cmd.into(), status: o.status, output: o.output });
    }
    Ok(o.output)
}

/// Like [`run`], but returns stdout only: for answers that are parsed (`uname -m`,
/// `/etc/os-release`, `hostname`, checksums).
pub fn read(ssh: &dyn Ssh, cmd: &str) -> Result<String, SshError> {
    let o = ssh.exec_stdout(cmd)?;
    if o.status != 0 {
        return Err(SshError::Command { command: cmd.into(), status: o.status, output: o.output });
    }
    Ok(o.output)
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The real client (libssh2). The host key is checked against the machine's record
/// ([`SshTarget::known_hosts`]) right after the handshake, before anything is sent.
pub struct Ssh2Client {
    sess: Mutex<ssh2::Session>,
    /// Set once the host refused the SFTP subsystem: files then go through `cat`.
    no_sftp: std::sync::atomic::AtomicBool,
    /// What the host key check found on connecting.
    pub host_key: Verified,
}

const OP_TIMEOUT_MS: u32 = 10 * 60 * 1000;

impl Ssh2Client {
    /// Dials and shakes hands (no login), then checks the host key against the record.
    fn handshake(t: &SshTarget, timeout: Duration) -> Result<(ssh2::Session, Verified), SshError> {
        let addr_s = crate::driver::generic::join_host_port(&t.host, t.port);
        let dial = |detail: String| SshError::Dial { addr: addr_s.clone(), detail };
        let addr = addr_s.to_socket_addrs().map_err(|e| dial(e.to_string()))?.next().ok_or_else(|| dial("no address".into()))?;
        let recorded = match &t.known_hosts {
            Some(kh) => kh.load()?.map(|(_, k)| k),
            None => None,
        };
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| dial(e.to_string()))?;
        let mut sess = ssh2::Session::new().map_err(sess_err)?;
        if let Some(k) = &recorded {
            // Ask for the recorded key's type first, so a host with several keys shows the same one.
            let supported = sess.supported_algs(ssh2::MethodType::HostKey).unwrap_or_default();
            let mut prefs: Vec<&str> = k.algorithms().into_iter().filter(|a| supported.contains(a)).collect();
            let rest: Vec<&str> = supported.iter().copied().filter(|a| !prefs.contains(a)).collect();
            prefs.extend(rest);
            if let Err(e) = sess.method_pref(ssh2::MethodType::HostKey, &prefs.join(",")) {
                tracing::debug!(error = %e, "host key preference not set");
            }
        }
        sess.set_tcp_stream(tcp);
        sess.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
        sess.handshake().map_err(|e| SshError::Handshake(e.to_string()))?;
        let verified = match &t.known_hosts {
            Some(kh) => {
                let presented = sess
                    .host_key()
                    .and_then(|(blob, _)| HostKey::from_blob(blob))
                    .ok_or_else(|| HostKeyError::Missing { addr: addr_s.clone() })?;
                kh.verify(&t.host, t.port, &presented)?
            }
            None => Verified::Known,
        };
        Ok((sess, verified))
    }

    /// Checks the host key only (no login): what `machine ssh`/`scp` do before handing over
    /// to OpenSSH, which then checks the same record itself.
    pub fn check_host_key(t: &SshTarget, timeout: Duration) -> Result<Verified, SshError> {
        Ssh2Client::handshake(t, timeout).map(|(_, v)| v)
    }

    /// One connection attempt with a dial timeout.
    pub fn connect(t: &SshTarget, timeout: Duration) -> Result<Ssh2Client, SshError> {
        let (sess, host_key) = Ssh2Client::handshake(t, timeout)?;
        let auth = |detail: String| SshError::Auth { user: t.user.clone(), detail };
        match &t.key {
            Some(k) => {
                if !k.is_file() {
                    return Err(auth(format!("key {} does not exist", k.display())));
                }
                sess.userauth_pubkey_file(&t.user, None, k, None).map_err(|e| auth(e.to_string()))?;
            }
            None => {
                let mut last = String::from("no key");
                if std::env::var_os("SSH_AUTH_SOCK").is_some() {
                    match sess.userauth_agent(&t.user) {
                        Ok(()) => {}
                        Err(e) => last = e.to_string(),
                    }
                }
                if !sess.authenticated() {
                    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into());
                    for k in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                        let p = home.join(".ssh").join(k);
                        if p.is_file() {
                            match sess.userauth_pubkey_file(&t.user, None, &p, None) {
                                Ok(()) => break,
                                Err(e) => last = e.to_string(),
                            }
                        }
                    }
                }
                if !sess.authenticated() {
                    return Err(auth(last));
                }
            }
        }
        sess.set_timeout(OP_TIMEOUT_MS);
        sess.set_keepalive(true, 30);
        Ok(Ssh2Client { sess: Mutex::new(sess), no_sftp: Default::default(), host_key })
    }

    /// Connects and runs `exit 0`, retrying transient failures with back-off (0.2 s doubling
    /// to 3 s) until `wait` passes. Authentication failures are not retried.
    pub fn connect_retry(t: &SshTarget, wait: Duration) -> Result<Ssh2Client, SshError> {
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(200);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let res = Ssh2Client::connect(t, left.clamp(Duration::from_secs(1), Duration::from_secs(10)))
                .and_then(|c| run(&c, "exit 0").map(|_| c));
            match res {
                Ok(c) => return Ok(c),
                Err(e) if e.transient() && Instant::now() + delay < deadline => {
                    tracing::debug!("waiting for SSH on {}:{}: {e}", t.host, t.port);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(3));
                }
                Err(e) if e.transient() => return Err(SshError::NeverUp(e.to_string())),
                Err(e) => return Err(e),
            }
        }
    }

    fn sess(&self) -> std::sync::MutexGuard<'_, ssh2::Session> {
        self.sess.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ssh2Client {
    fn exec_with(&self, cmd: &str, stderr: ssh2::ExtendedData) -> Result<ExecOutput, SshError> {
        let sess = self.sess();
        let mut ch = sess.channel_session().map_err(sess_err)?;
        ch.handle_extended_data(stderr).map_err(sess_err)?;
        ch.exec(cmd).map_err(sess_err)?;
        let mut out = Vec::new();
        ch.read_to_end(&mut out).map_err(|e| SshError::Session(e.to_string()))?;
        ch.wait_close().map_err(sess_err)?;
        let status = ch.exit_status().map_err(sess_err)?;
        tracing::debug!(cmd, status, "ssh exec");
        Ok(ExecOutput { status, output: String::from_utf8_lossy(&out).into_owned() })
    }
}

impl Ssh for Ssh2Client {
    fn exec(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        self.exec_with(cmd, ssh2::ExtendedData::Merge)
    }

    fn exec_stdout(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        self.exec_with(cmd, ssh2::ExtendedData::Ignore)
    }

    fn upload(&self, data: &[u8], path: &str, mode: i32) -> Result<(), SshError> {
        self.upload_reader(&mut &data[..], path, mode)
    }

    fn upload_file(&self, local: &Path, path: &str, mode: i32) -> Result<(), SshError> {
        let mut f = std::fs::File::open(local).map_err(|source| SshError::Local { path: local.into(), source })?;
        self.upload_reader(&mut f, path, mode)
    }

    fn download(&self, path: &str) -> Result<Vec<u8>, SshError> {
        let sess = self.sess();
        let Some(sftp) = self.sftp(&sess) else {
            return exec_download(&sess, path);
        };
        let mut f = sftp.open(Path::new(path)).map_err(|e| SshError::Session(format!("open {path}: {e}")))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(|e| SshError::Session(format!("read {path}: {e}")))?;
        Ok(v)
    }
}

/// `cat` of a remote file over an exec channel (stdout only).
fn exec_download(sess: &ssh2::Session, path: &str) -> Result<Vec<u8>, SshError> {
    let cmd = format!("cat {}", quote(path));
    let mut ch = sess.channel_session().map_err(sess_err)?;
    ch.exec(&cmd).map_err(sess_err)?;
    let mut out = Vec::new();
    ch.read_to_end(&mut out).map_err(|e| SshError::Session(format!("read {path}: {e}")))?;
    let mut err = String::new();
    let _ = ch.stderr().read_to_string(&mut err);
    ch.wait_close().map_err(sess_err)?;
    let status = ch.exit_status().map_err(sess_err)?;
    if status != 0 {
        return Err(SshError::Command { command: cmd, status, output: err });
    }
    Ok(out)
}

/// Streams `r` into `cat > path` over an exec channel, then sets `mode`.
fn exec_upload(sess: &ssh2::Session, r: &mut dyn Read, path: &str, mode: i32) -> Result<(), SshError> {
    let p = quote(path);
    let cmd = format!("cat > {p} && chmod {mode:o} {p}");
    let mut ch = sess.channel_session().map_err(sess_err)?;
    ch.handle_extended_data(ssh2::ExtendedData::Merge).map_err(sess_err)?;
    ch.exec(&cmd).map_err(sess_err)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).map_err(|e| SshError::Session(format!("reading upload source: {e}")))?;
        if n == 0 {
            break;
        }
        ch.write_all(&buf[..n]).map_err(|e| SshError::Session(format!("writing {path}: {e}")))?;
    }
    ch.send_eof().map_err(sess_err)?;
    let mut out = Vec::new();
    ch.read_to_end(&mut out).map_err(|e| SshError::Session(format!("writing {path}: {e}")))?;
    ch.wait_close().map_err(sess_err)?;
    let status = ch.exit_status().map_err(sess_err)?;
    if status != 0 {
        return Err(SshError::Command { command: cmd, status, output: String::from_utf8_lossy(&out).into_owned() });
    }
    Ok(())
}

impl Ssh2Client {
    /// An SFTP session, or `None` when the host has no SFTP subsystem (remembered).
    fn sftp(&self, sess: &ssh2::Session) -> Option<ssh2::Sftp> {
        use std::sync::atomic::Ordering;
        if self.no_sftp.load(Ordering::Relaxed) {
            return None;
        }
        match sess.sftp() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "no SFTP subsystem: files go through an exec channel");
                self.no_sftp.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    fn upload_reader(&self, r: &mut dyn Read, path: &str, mode: i32) -> Result<(), SshError> {
        let sess = self.sess();
        let Some(sftp) = self.sftp(&sess) else {
            return exec_upload(&sess, r, path, mode);
        };
        let flags = ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE;
        let mut f = sftp
            .open_mode(Path::new(path), flags, mode, ssh2::OpenType::File)
            .map_err(|e| SshError::Session(format!("sftp create {path}: {e}")))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(|e| SshError::Session(format!("reading upload source: {e}")))?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).map_err(|e| SshError::Session(format!("sftp write {path}: {e}")))?;
        }
        let st = ssh2::FileStat { size: None, uid: None, gid: None, perm: Some(mode as u32), atime: None, mtime: None };
        f.setstat(st).map_err(|e| SshError::Session(format!("sftp chmod {path}: {e}")))?;
        Ok(())
    }
}

/// A scripted, recording stand-in for a host: `exec` answers with the first scripted
/// response whose pattern the command contains (else status 0, empty output); uploads are
/// kept in memory.
#[derive(Default)]
pub struct FakeSsh {
    calls: Mutex<Vec<String>>,
    script: Mutex<Vec<(String, ExecOutput)>>,
    files: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    /// What the login shell prints on stderr before every command.
    login_noise: Mutex<String>,
}

impl FakeSsh {
    pub fn new() -> FakeSsh {
        FakeSsh::default()
    }
    /// Commands containing `pattern` answer `status`/`output` (first match wins).
    pub fn on(&self, pattern: &str, status: i32, output: &str) -> &Self {
        self.script.lock().unwrap_or_else(|e| e.into_inner()).push((pattern.into(), ExecOutput { status, output: output.into() }));
        self
    }
    /// Every command's stderr starts with `noise`, as when the login shell's rc files complain.
    pub fn with_login_noise(&self, noise: &str) -> &Self {
        *self.login_noise.lock().unwrap_or_else(|e| e.into_inner()) = noise.into();
        self
    }
    /// Everything done so far: `exec CMD` / `upload PATH MODE`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).get(path).cloned()
    }
    fn record(&self, s: String) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}

impl Ssh for FakeSsh {
    fn exec(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        let mut o = self.exec_stdout(cmd)?;
        o.output.insert_str(0, &self.login_noise.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(o)
    }
    fn exec_stdout(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        self.record(format!("exec {cmd}"));
        let script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        Ok(script.iter().find(|(p, _)| cmd.contains(p.as_str())).map(|(_, o)| o.clone()).unwrap_or_default())
    }
    fn upload(&self, data: &[u8], path: &str, mode: i32) -> Result<(), SshError> {
        self.record(format!("upload {path} {mode:o}"));
        self.files.lock().unwrap_or_else(|e| e.into_inner()).insert(path.into(), data.to_vec());
        Ok(())
    }
    fn upload_file(&self, local: &Path, path: &str, mode: i32) -> Result<(), SshError> {
        let data = std::fs::read(local).map_err(|source| SshError::Local { path: local.into(), source })?;
        self.upload(&data, path, mode)
    }
    fn download(&self, path: &str) -> Result<Vec<u8>, SshError> {
        self.record(format!("download {path}"));
        self.file(path).ok_or_else(|| SshError::Session(format!("open {path}: no such file")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc/d-e.f"), "abc/d-e.f");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn run_reports_like_docker_machine() {
        let f = FakeSsh::new();
        f.on("false", 1, "nope\n");
        let e = run(&f, "false").unwrap_err().to_string();
        assert_eq!(e, "ssh command error:\ncommand : false\nerr     : exit status 1\noutput  : nope\n");
        assert_eq!(run(&f, "true").unwrap(), "");
        f.upload(b"x", "/tmp/a", 0o600).unwrap();
        assert_eq!(f.calls(), vec!["exec false", "exec true", "upload /tmp/a 600"]);
    }

    #[test]
    fn dial_failure_is_transient_and_bounded() {
        // Port 1 on loopback: nothing listens.
        let t = SshTarget { host: "127.0.0.1".into(), port: 1, user: "root".into(), key: None, known_hosts: None };
        let start = Instant::now();
        let e = Ssh2Client::connect_retry(&t, Duration::from_millis(1500)).err().unwrap();
        assert!(matches!(e, SshError::NeverUp(_)), "{e}");
        assert!(e.to_string().starts_with("Too many retries waiting for SSH to be available.  Last error: "));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
