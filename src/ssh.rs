//! SSH to a host, where ceso uses it, with the host key pinned.
//!
//! The Host manifest pins the fingerprint of one of the host's SSH keys (`spec.ssh.hostKey`,
//! `SHA256:...` as `ssh-keygen -lf` prints it). [`SshSession::connect`] accepts the server only
//! when the key it proves it holds has that fingerprint; any other key ends the connection
//! during the key exchange, before a user name or password is sent, with
//! [`SshError::HostKeyMismatch`] naming the pinned and the presented fingerprints.
//!
//! A host has one key per algorithm (ESXi: RSA and ECDSA, newer releases also Ed25519), and the
//! key exchange settles on one of them. So that any of the host's keys can be pinned, a key
//! that does not match leads to another key exchange that leaves its algorithm out, until the
//! pinned key turns up or the host has no other key; [`presented_host_keys`] uses the same
//! walk to list every key a host presents, for pinning one on first use.
//!
//! Passwords go to the server and nowhere else: not into errors, not into logs.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{Algorithm, Fingerprint, HashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect, MethodKind, MethodSet, Preferred};
use serde::Serialize;

use crate::secret::Secret;

/// The SSH port when the Host manifest names none.
pub const DEFAULT_PORT: u16 = 22;

/// How long one connection may take to open and finish its key exchange.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How to find the fingerprint to pin; the hint of every fingerprint problem.
pub const HOST_KEY_HINT: &str = "write the fingerprint as `ssh-keygen -lf` prints it, e.g. SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s; read it on the host's console (`for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done`) or list what the host presents with `ceso host check HOST --show-ssh-keys`";

/// Length of the base64 (unpadded) text of a SHA-256 digest.
const SHA256_BASE64_LEN: usize = 43;

/// At most this much of a command's standard output and standard error is kept.
const OUTPUT_LIMIT: usize = 1 << 20;

/// How many keyboard-interactive rounds are answered before giving up.
const MAX_KEYBOARD_INTERACTIVE_ROUNDS: usize = 5;

// ------------------------------------------------------------------------------------------------
// fingerprints

/// A pinned host key fingerprint: `SHA256:` and 43 base64 characters, as OpenSSH prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyFingerprint(Fingerprint);

/// A fingerprint that cannot be pinned, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SSH host key fingerprint: {reason}")]
pub struct FingerprintError {
    /// What is wrong with it, e.g. "an MD5 fingerprint; ceso pins the SHA-256 one".
    pub reason: String,
}

impl HostKeyFingerprint {
    /// Parses `SHA256:<43 base64 characters>` (no padding), the only form ceso pins.
    pub fn parse(text: &str) -> Result<Self, FingerprintError> {
        let refuse = |reason: &str| {
            Err(FingerprintError {
                reason: reason.to_owned(),
            })
        };
        if text.trim().is_empty() {
            return refuse("it is empty");
        }
        if text.trim() != text {
            return refuse("it has spaces around it");
        }
        let Some(digest) = text.strip_prefix("SHA256:") else {
            return if text.starts_with("MD5:") || looks_like_md5_hex(text) {
                refuse(
                    "an MD5 fingerprint; ceso pins the SHA-256 one (`ssh-keygen -lf` without `-E md5`)",
                )
            } else if text.starts_with("SHA512:") {
                refuse("a SHA-512 fingerprint; ceso pins the SHA-256 one")
            } else if text.len() == SHA256_BASE64_LEN && !text.contains(':') {
                refuse("the `SHA256:` prefix is missing")
            } else {
                refuse("it must start with `SHA256:`")
            };
        };
        if digest.len() != SHA256_BASE64_LEN {
            return if digest.ends_with('=') {
                refuse("OpenSSH writes it without the trailing `=`")
            } else {
                Err(FingerprintError {
                    reason: format!(
                        "`SHA256:` must be followed by {SHA256_BASE64_LEN} base64 characters, found {}",
                        digest.chars().count()
                    ),
                })
            };
        }
        match Fingerprint::from_str(text) {
            Ok(fingerprint) => Ok(Self(fingerprint)),
            Err(_) => refuse("the part after `SHA256:` is not base64"),
        }
    }

    /// Whether `key` has this fingerprint.
    pub fn matches(&self, key: &PublicKey) -> bool {
        key.fingerprint(HashAlg::Sha256) == self.0
    }
}

impl FromStr for HostKeyFingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for HostKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `aa:bb:...` (16 hex pairs), the old MD5 form.
fn looks_like_md5_hex(text: &str) -> bool {
    let pairs: Vec<&str> = text.split(':').collect();
    pairs.len() == 16
        && pairs
            .iter()
            .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Checks the format of `spec.ssh.hostKey` (for manifest validation).
pub fn check_host_key_format(text: &str) -> Result<(), FingerprintError> {
    HostKeyFingerprint::parse(text).map(|_| ())
}

/// A host key a server presented (and proved it holds) during a key exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresentedKey {
    /// The key's algorithm as SSH names it, e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`.
    pub algorithm: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    #[serde(skip)]
    key_algorithm: Algorithm,
}

impl PresentedKey {
    fn of(key: &PublicKey) -> Self {
        Self {
            algorithm: key.algorithm().as_str().to_owned(),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            key_algorithm: key.algorithm(),
        }
    }

    /// Whether a key exchange offering `algorithm` could present this key again.
    fn same_key_type(&self, algorithm: &Algorithm) -> bool {
        match (&self.key_algorithm, algorithm) {
            // One RSA key serves every RSA signature hash.
            (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
            (mine, theirs) => mine == theirs,
        }
    }
}

impl fmt::Display for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.fingerprint, self.algorithm)
    }
}

fn list(keys: &[PresentedKey]) -> String {
    if keys.is_empty() {
        return "no key".to_owned();
    }
    keys.iter()
        .map(PresentedKey::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ------------------------------------------------------------------------------------------------
// where to connect

/// Where the SSH server of a host listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    /// The host name of a Host's `spec.address` (a URL or a bare host name, as the API client
    /// reads it) and `port` (default 22).
    pub fn from_address(address: &str, port: Option<u16>) -> Result<Self, SshError> {
        let invalid = |reason: String| SshError::InvalidAddress { reason };
        let url = crate::esxi::normalize_address(address).map_err(|e| invalid(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| invalid("it names no host".to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port: port.unwrap_or(DEFAULT_PORT),
        })
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

// ------------------------------------------------------------------------------------------------
// errors

/// Why an SSH connection or command failed. Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(transparent)]
    InvalidFingerprint(#[from] FingerprintError),
    #[error("cannot tell where to connect with SSH: the host's address {reason}")]
    InvalidAddress { reason: String },
    #[error("cannot connect to {target} with SSH: {source}")]
    Connect {
        target: SshTarget,
        source: std::io::Error,
    },
    #[error("{target} did not {what} within {} s", .timeout.as_secs())]
    Timeout {
        target: SshTarget,
        what: &'static str,
        timeout: Duration,
    },
    #[error(
        "SSH host key mismatch at {target}: the Host manifest pins {expected}, the server presented {}; refused before logging in",
        list(.presented)
    )]
    HostKeyMismatch {
        target: SshTarget,
        /// The fingerprint of `spec.ssh.hostKey`.
        expected: String,
        /// Every key the server presented, one per key exchange.
        presented: Vec<PresentedKey>,
    },
    #[error(
        "{target} refused the SSH login of user {username} (tried {}; the server offers {})",
        .tried.join(" and "),
        method_list(.offered)
    )]
    AuthenticationFailed {
        target: SshTarget,
        username: String,
        /// The methods ceso tried with the password.
        tried: Vec<&'static str>,
        /// The methods the server offers after the last attempt.
        offered: Vec<&'static str>,
    },
    #[error("SSH with {target} failed: {source}")]
    Protocol {
        target: SshTarget,
        source: russh::Error,
    },
}

fn method_list(methods: &[&'static str]) -> String {
    if methods.is_empty() {
        "no other method".to_owned()
    } else {
        methods.join(", ")
    }
}

impl SshError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            SshError::InvalidFingerprint(_) => Some(HOST_KEY_HINT.to_owned()),
            SshError::InvalidAddress { .. } => {
                Some("write `spec.address` as a URL such as https://esxi-01.lab.example".to_owned())
            }
            SshError::Connect { target, .. } | SshError::Timeout { target, .. } => Some(format!(
                "is SSH running on the host (ESXi host client: Host > Actions > Services > Enable Secure Shell (SSH)) and is port {} open to this machine? `spec.ssh.port` sets another port",
                target.port
            )),
            SshError::HostKeyMismatch { .. } => Some(
                "if the host was reinstalled or its keys were regenerated, read the new fingerprint on its console (`for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done`) and update spec.ssh.hostKey; otherwise another machine is answering in the host's place: do not log in to it".to_owned(),
            ),
            SshError::AuthenticationFailed { .. } => Some(
                "check spec.username and the password the Host manifest names; on ESXi the user also needs the shell access permission".to_owned(),
            ),
            SshError::Protocol { .. } => None,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// the key exchange

/// Why a key exchange ended (the handler's error type).
#[derive(Debug)]
enum HandshakeError {
    Ssh(russh::Error),
    /// The server's key is not the pinned one (or nothing is pinned: only listing keys).
    Refused(PresentedKey),
}

impl From<russh::Error> for HandshakeError {
    fn from(error: russh::Error) -> Self {
        HandshakeError::Ssh(error)
    }
}

/// Accepts the server only when its key has the pinned fingerprint.
struct KeyCheck {
    pin: Option<HostKeyFingerprint>,
    accepted: Arc<Mutex<Option<PresentedKey>>>,
}

impl client::Handler for KeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_public_key.public_key();
        let presented = PresentedKey::of(&key);
        match &self.pin {
            Some(pin) if pin.matches(&key) => {
                if let Ok(mut accepted) = self.accepted.lock() {
                    *accepted = Some(presented);
                }
                Ok(true)
            }
            _ => Err(HandshakeError::Refused(presented)),
        }
    }
}

/// What one key exchange came to.
enum Exchange {
    Accepted(Handle<KeyCheck>, PresentedKey),
    Refused(PresentedKey),
    /// The server has no key of an algorithm not yet seen.
    NoOtherKey,
}

/// One connection and key exchange offering only the host key algorithms of keys not yet
/// `seen`.
async fn exchange(
    target: &SshTarget,
    pin: Option<&HostKeyFingerprint>,
    seen: &[PresentedKey],
    timeout: Duration,
) -> Result<Exchange, SshError> {
    let algorithms: Vec<Algorithm> = Preferred::DEFAULT
        .key
        .iter()
        .filter(|algorithm| !seen.iter().any(|key| key.same_key_type(algorithm)))
        .cloned()
        .collect();
    if algorithms.is_empty() {
        return Ok(Exchange::NoOtherKey);
    }
    let config = client::Config {
        preferred: Preferred {
            key: Cow::Owned(algorithms),
            ..Preferred::default()
        },
        inactivity_timeout: Some(Duration::from_secs(120)),
        ..client::Config::default()
    };
    let accepted = Arc::new(Mutex::new(None));
    let handler = KeyCheck {
        pin: pin.cloned(),
        accepted: accepted.clone(),
    };
    let connecting = client::connect(
        Arc::new(config),
        (target.host.as_str(), target.port),
        handler,
    );
    let result = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| SshError::Timeout {
            target: target.clone(),
            what: "answer and complete the SSH key exchange",
            timeout,
        })?;
    match result {
        Ok(handle) => {
            let key = accepted.lock().ok().and_then(|mut key| key.take());
            match key {
                Some(key) => Ok(Exchange::Accepted(handle, key)),
                // Unreachable: the handler accepts only after recording the key.
                None => Err(SshError::Protocol {
                    target: target.clone(),
                    source: russh::Error::UnknownKey,
                }),
            }
        }
        Err(HandshakeError::Refused(key)) => Ok(Exchange::Refused(key)),
        Err(HandshakeError::Ssh(russh::Error::NoCommonAlgo {
            kind: russh::AlgorithmKind::Key,
            ..
        })) if !seen.is_empty() => Ok(Exchange::NoOtherKey),
        Err(HandshakeError::Ssh(russh::Error::IO(source))) => Err(SshError::Connect {
            target: target.clone(),
            source,
        }),
        Err(HandshakeError::Ssh(source)) => Err(SshError::Protocol {
            target: target.clone(),
            source,
        }),
    }
}

/// Every host key `target` presents (one key exchange per key type), without trusting any and
/// without logging in: for finding the fingerprint to pin.
pub async fn presented_host_keys(
    target: &SshTarget,
    timeout: Duration,
) -> Result<Vec<PresentedKey>, SshError> {
    let mut seen: Vec<PresentedKey> = Vec::new();
    loop {
        match exchange(target, None, &seen, timeout).await? {
            // A server that presents a key type again (not the one negotiated) would keep us
            // here for ever: what it showed so far is all there is.
            Exchange::Refused(key) if presented_again(&seen, &key) => return Ok(seen),
            Exchange::Refused(key) => seen.push(key),
            Exchange::NoOtherKey => return Ok(seen),
            // Nothing is pinned, so nothing is accepted.
            Exchange::Accepted(handle, key) => {
                close(&handle).await;
                seen.push(key);
            }
        }
    }
}

/// Whether `key`'s type was presented before, or enough exchanges were made: a server that
/// does not keep to the negotiated key type must not keep ceso connecting again.
fn presented_again(seen: &[PresentedKey], key: &PresentedKey) -> bool {
    const MAX_EXCHANGES: usize = 8;
    seen.len() >= MAX_EXCHANGES || seen.iter().any(|k| k.algorithm == key.algorithm)
}

/// Closes a connection politely; a failure only means it is already gone.
async fn close(handle: &Handle<KeyCheck>) {
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
}

// ------------------------------------------------------------------------------------------------
// sessions

/// How to reach and log in to one host over SSH.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub target: SshTarget,
    /// `spec.ssh.hostKey`: the only key accepted.
    pub host_key: HostKeyFingerprint,
    pub username: String,
    /// Never logged or formatted.
    pub password: Secret,
    /// For each connection and key exchange.
    pub connect_timeout: Duration,
}

/// The output of a command run over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutput {
    /// Standard output (lossy UTF-8, at most 1 MiB).
    pub stdout: String,
    /// Standard error (lossy UTF-8, at most 1 MiB).
    pub stderr: String,
    /// The exit status; `None` when the command ended without one (e.g. killed by a signal).
    pub exit_status: Option<u32>,
}

/// A logged-in SSH connection to a host whose key matched the pin.
pub struct SshSession {
    handle: Handle<KeyCheck>,
    target: SshTarget,
    host_key: PresentedKey,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .field("host_key", &self.host_key)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, accepts the server only if it holds the pinned key (trying each of its key
    /// types), then logs in with the password: `password` first, then `keyboard-interactive`
    /// (what ESXi usually offers) when the server offers it.
    pub async fn connect(options: SshOptions) -> Result<Self, SshError> {
        let SshOptions {
            target,
            host_key,
            username,
            password,
            connect_timeout,
        } = options;
        let mut seen = Vec::new();
        let (mut handle, key) = loop {
            match exchange(&target, Some(&host_key), &seen, connect_timeout).await? {
                Exchange::Accepted(handle, key) => break (handle, key),
                Exchange::Refused(key) if !presented_again(&seen, &key) => {
                    tracing::debug!(target = %target, presented = %key, "host key not the pinned one");
                    seen.push(key);
                }
                Exchange::Refused(_) | Exchange::NoOtherKey => {
                    return Err(SshError::HostKeyMismatch {
                        target,
                        expected: host_key.to_string(),
                        presented: seen,
                    });
                }
            }
        };
        if let Err(error) = authenticate(&mut handle, &target, &username, &password).await {
            close(&handle).await;
            return Err(error);
        }
        tracing::debug!(target = %target, host_key = %key, "SSH logged in");
        Ok(Self {
            handle,
            target,
            host_key: key,
        })
    }

    /// The host key the server presented (the pinned one).
    pub fn host_key(&self) -> &PresentedKey {
        &self.host_key
    }

    /// Where this session is connected.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Runs `command` (through the user's shell on the host) and collects its output and exit
    /// status; gives up after `timeout`.
    pub async fn run(&self, command: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        tokio::time::timeout(timeout, self.run_to_end(command))
            .await
            .map_err(|_| SshError::Timeout {
                target: self.target.clone(),
                what: "finish the command",
                timeout,
            })?
    }

    async fn run_to_end(&self, command: &str) -> Result<CommandOutput, SshError> {
        let protocol = |source| SshError::Protocol {
            target: self.target.clone(),
            source,
        };
        let mut channel = self.handle.channel_open_session().await.map_err(protocol)?;
        channel.exec(true, command).await.map_err(protocol)?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_status = None;
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => keep(&mut stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => keep(&mut stderr, &data),
                ChannelMsg::ExitStatus {
                    exit_status: status,
                } => exit_status = Some(status),
                _ => {}
            }
        }
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_status,
        })
    }

    /// Ends the session.
    pub async fn close(self) {
        close(&self.handle).await;
    }
}

fn keep(buffer: &mut Vec<u8>, data: &[u8]) {
    let room = OUTPUT_LIMIT.saturating_sub(buffer.len());
    buffer.extend_from_slice(&data[..data.len().min(room)]);
}

fn method_names(methods: &MethodSet) -> Vec<&'static str> {
    methods.iter().map(<&'static str>::from).collect()
}

/// Logs in with the password: `password`, then `keyboard-interactive` if the server offers it.
async fn authenticate(
    handle: &mut Handle<KeyCheck>,
    target: &SshTarget,
    username: &str,
    password: &Secret,
) -> Result<(), SshError> {
    let protocol = |source| SshError::Protocol {
        target: target.clone(),
        source,
    };
    let mut tried = vec!["password"];
    let remaining = match handle
        .authenticate_password(username, password.expose())
        .await
        .map_err(protocol)?
    {
        AuthResult::Success => return Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => remaining_methods,
    };
    let remaining = if remaining.contains(&MethodKind::KeyboardInteractive) {
        tried.push("keyboard-interactive");
        match keyboard_interactive(handle, username, password)
            .await
            .map_err(protocol)?
        {
            None => return Ok(()),
            Some(remaining) => remaining,
        }
    } else {
        remaining
    };
    Err(SshError::AuthenticationFailed {
        target: target.clone(),
        username: username.to_owned(),
        tried,
        offered: method_names(&remaining),
    })
}

/// Keyboard-interactive with the password as the answer to the first prompt that hides its
/// input; any later prompt gets an empty answer, so the password is sent once. `None` on
/// success, otherwise the methods the server still offers.
async fn keyboard_interactive(
    handle: &mut Handle<KeyCheck>,
    username: &str,
    password: &Secret,
) -> Result<Option<MethodSet>, russh::Error> {
    let mut response = handle
        .authenticate_keyboard_interactive_start(username, None)
        .await?;
    let mut password_sent = false;
    for _ in 0..MAX_KEYBOARD_INTERACTIVE_ROUNDS {
        match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(None),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            } => return Ok(Some(remaining_methods)),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|prompt| {
                        if !prompt.echo && !password_sent {
                            password_sent = true;
                            password.expose().to_owned()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                response = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?;
            }
        }
    }
    Ok(Some(MethodSet::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    fn reason(text: &str) -> String {
        HostKeyFingerprint::parse(text)
            .expect_err("should be refused")
            .reason
    }

    #[test]
    fn a_fingerprint_as_ssh_keygen_prints_it_is_accepted_and_printed_back_unchanged() {
        let fingerprint = HostKeyFingerprint::parse(VALID).expect("valid");
        assert_eq!(fingerprint.to_string(), VALID);
        assert!(check_host_key_format(VALID).is_ok());
    }

    #[test]
    fn fingerprints_that_cannot_be_pinned_say_why() {
        assert_eq!(reason(""), "it is empty");
        assert_eq!(reason(&format!(" {VALID}")), "it has spaces around it");
        assert!(reason("MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48").contains("MD5"));
        assert!(reason("16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48").contains("MD5"));
        assert!(reason("SHA512:abc").contains("SHA-512"));
        assert_eq!(
            reason(VALID.trim_start_matches("SHA256:")),
            "the `SHA256:` prefix is missing"
        );
        assert_eq!(reason("sha256:abc"), "it must start with `SHA256:`");
        assert_eq!(
            reason(&format!("{VALID}=")),
            "OpenSSH writes it without the trailing `=`"
        );
        assert_eq!(
            reason("SHA256:abc"),
            "`SHA256:` must be followed by 43 base64 characters, found 3"
        );
        assert_eq!(
            reason("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2!"),
            "the part after `SHA256:` is not base64"
        );
    }

    #[test]
    fn the_error_names_the_problem_and_the_hint_says_where_to_read_the_fingerprint() {
        let error = SshError::from(HostKeyFingerprint::parse("SHA256:abc").expect_err("short"));
        assert!(
            error
                .to_string()
                .starts_with("invalid SSH host key fingerprint: ")
        );
        let hint = error.hint().expect("hint");
        assert!(hint.contains("ssh-keygen -lf") && hint.contains("--show-ssh-keys"));
    }

    #[test]
    fn the_ssh_target_is_the_host_name_of_the_api_address() {
        let target =
            SshTarget::from_address("https://esxi-01.lab.example:443/sdk", None).expect("address");
        assert_eq!(
            target,
            SshTarget {
                host: "esxi-01.lab.example".into(),
                port: 22
            }
        );
        let target = SshTarget::from_address("esxi-01", Some(2222)).expect("bare name");
        assert_eq!(target.to_string(), "esxi-01:2222");
        let target = SshTarget::from_address("https://[fd00::5]:8443", None).expect("ipv6");
        assert_eq!(target.host, "fd00::5");
        assert_eq!(target.to_string(), "[fd00::5]:22");
    }

    #[test]
    fn a_mismatch_names_both_fingerprints_and_what_to_do() {
        let key = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIISvOAxd5zCjG5KRaurH29IlARybHnmGYXQC7FqjLKg9",
        )
        .expect("key");
        let error = SshError::HostKeyMismatch {
            target: SshTarget {
                host: "esxi-01".into(),
                port: 22,
            },
            expected: VALID.into(),
            presented: vec![PresentedKey::of(&key)],
        };
        let text = error.to_string();
        assert!(text.contains(VALID), "{text}");
        assert!(
            text.contains(&key.fingerprint(HashAlg::Sha256).to_string()),
            "{text}"
        );
        assert!(text.contains("(ssh-ed25519)"), "{text}");
        assert!(text.contains("refused before logging in"), "{text}");
        assert!(error.hint().expect("hint").contains("spec.ssh.hostKey"));
    }

    #[test]
    fn a_refused_login_lists_the_methods_without_the_password() {
        let error = SshError::AuthenticationFailed {
            target: SshTarget {
                host: "esxi-01".into(),
                port: 22,
            },
            username: "root".into(),
            tried: vec!["password", "keyboard-interactive"],
            offered: vec!["publickey"],
        };
        assert_eq!(
            error.to_string(),
            "esxi-01:22 refused the SSH login of user root (tried password and keyboard-interactive; the server offers publickey)"
        );
    }

    #[test]
    fn one_rsa_key_serves_every_rsa_signature_algorithm() {
        let rsa = PresentedKey {
            algorithm: "ssh-rsa".into(),
            fingerprint: VALID.into(),
            key_algorithm: Algorithm::Rsa { hash: None },
        };
        assert!(rsa.same_key_type(&Algorithm::Rsa {
            hash: Some(HashAlg::Sha512)
        }));
        assert!(!rsa.same_key_type(&Algorithm::Ed25519));
    }

    #[test]
    fn the_fingerprint_of_a_key_is_the_one_ssh_keygen_prints() {
        // `ssh-keygen -lf` of this key printed
        // `256 SHA256:AFD17c0u19J7w6Oci7qLqcJuoGr42mqvgo+bSYaAGt0 no comment (ED25519)`.
        let key = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIISvOAxd5zCjG5KRaurH29IlARybHnmGYXQC7FqjLKg9",
        )
        .expect("key");
        let presented = PresentedKey::of(&key);
        assert_eq!(
            presented.fingerprint,
            "SHA256:AFD17c0u19J7w6Oci7qLqcJuoGr42mqvgo+bSYaAGt0"
        );
        assert_eq!(presented.algorithm, "ssh-ed25519");
        let pin = HostKeyFingerprint::parse(&presented.fingerprint).expect("pin");
        assert!(pin.matches(&key));
        assert!(!HostKeyFingerprint::parse(VALID).expect("pin").matches(&key));
    }
}
