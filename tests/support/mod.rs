//! Test support: run the project's ESXi simulator launcher (`tests/esxsim/main.go`, govmomi's
//! `simulator.ESX()` model) and read the simulated host back independently of ceso's own SOAP
//! client (plain `curl` plus a tiny XML reader).
//!
//! Use from an integration test with `mod support;`.
//!
//! Requirements: `go` (Debian `golang-go`), govmomi sources (Debian
//! `golang-github-vmware-govmomi-dev`) and `curl`. When they are missing the tests FAIL with a
//! message naming the packages; they never skip. `$CESO_ESXSIM` can point at a prebuilt launcher.
#![allow(dead_code)]

pub mod cloudinit;
pub mod disks;
pub mod inventory;
pub mod ova;
pub mod roles;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GOPATH: &str = "/usr/share/gocode";
const GOVMOMI_SIMULATOR: &str = "/usr/share/gocode/src/github.com/vmware/govmomi/simulator";
const INSTALL_HINT: &str = "the ESXi simulator needs Debian's Go toolchain and govmomi sources: run the \
     project's test script (it installs them), or \
     `apt-get update && apt-get install -y golang-go golang-github-vmware-govmomi-dev curl`; \
     or set CESO_ESXSIM to a prebuilt launcher binary";

/// How long `start()` waits for `ESXSIM_READY=1`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------------------
// building the launcher

/// Path of the simulator launcher: `$CESO_ESXSIM` if set, otherwise `<target>/esxsim/esxsim`,
/// (re)built from `tests/esxsim/main.go` when missing or older than the source. Safe to call from
/// several threads and several test binaries at once (file lock plus atomic rename).
pub fn esxsim_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CESO_ESXSIM").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CESO_ESXSIM={} does not name an existing file",
                p.display()
            );
            return p;
        }
        build_esxsim()
    })
    .clone()
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn build_esxsim() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = manifest.join("tests/esxsim/main.go");
    let out_dir = target_dir().join("esxsim");
    let bin = out_dir.join("esxsim");
    fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("creating {}: {e}", out_dir.display()));

    let lock_path = out_dir.join("build.lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));

    let src_time =
        mtime(&source).unwrap_or_else(|| panic!("launcher source {} missing", source.display()));
    if let Some(bin_time) = mtime(&bin)
        && bin_time >= src_time
    {
        return bin;
    }

    if !Path::new(GOVMOMI_SIMULATOR).is_dir() {
        panic!("{GOVMOMI_SIMULATOR} not found; {INSTALL_HINT}");
    }

    let tmp = out_dir.join(format!("esxsim.tmp.{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(&source)
        .current_dir(manifest)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0");
    if std::env::var_os("GOCACHE").is_none()
        && std::env::var_os("HOME").is_none()
        && std::env::var_os("XDG_CACHE_HOME").is_none()
    {
        cmd.env("GOCACHE", out_dir.join("gocache"));
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`go` not found in PATH; {INSTALL_HINT}")
        }
        Err(e) => panic!("running `go build`: {e}; {INSTALL_HINT}"),
    };
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "building the ESXi simulator launcher failed ({}):\n{}{}\n{INSTALL_HINT}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs::rename(&tmp, &bin)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", tmp.display(), bin.display()));
    bin
}

// ------------------------------------------------------------------------------------------------
// the simulator process

/// A running simulator (one process). Dropping it kills the process and removes its temporary
/// directory (datastore included).
pub struct Simulator {
    /// `https://127.0.0.1:PORT/sdk` (or `http://` without TLS).
    pub url: String,
    /// SHA-256 of the leaf certificate, uppercase hex, colon-separated; empty without TLS.
    pub thumbprint: String,
    /// SHA-1 of the leaf certificate (classic ESXi format); empty without TLS.
    pub thumbprint_sha1: String,
    /// PEM file of the CA that issued the leaf; `None` without TLS.
    pub ca_file: Option<PathBuf>,
    /// Datastore name (`LocalDS_0`).
    pub datastore: String,
    /// Local directory backing the datastore.
    pub datastore_dir: PathBuf,
    pub user: String,
    pub password: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_path: PathBuf,
    tempdir: tempfile::TempDir,
}

/// What one VM's emulated guest reports instead of what its metadata says; see
/// [`Simulator::set_guest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestOverride {
    /// Tools run and the first NIC reports this address (`192.168.1.7` or `192.168.1.7/24`).
    Ip(String),
    /// Tools run but report no address.
    NoIp,
    /// Tools never start (ShutdownGuest then fails with `ToolsUnavailable`).
    ToolsOff,
}

/// Options for [`Simulator`]; see [`Simulator::builder`].
#[derive(Clone, Debug)]
pub struct SimulatorBuilder {
    tls: bool,
    user: String,
    password: Option<String>,
    vms: usize,
    session_idle: Option<Duration>,
    faults: Vec<String>,
    delay_ms: u64,
    method_delays: Vec<(String, u64)>,
    guest_tools: bool,
    guest_delay_ms: Option<u64>,
    extra_args: Vec<String>,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        SimulatorBuilder {
            tls: true,
            user: "root".to_string(),
            password: None,
            vms: 0,
            session_idle: None,
            faults: Vec::new(),
            delay_ms: 0,
            method_delays: Vec::new(),
            guest_tools: false,
            guest_delay_ms: None,
            extra_args: Vec::new(),
        }
    }
}

impl SimulatorBuilder {
    /// HTTPS with a fresh CA + leaf (default `true`).
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }
    /// Enforced user name (default `root`).
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }
    /// Enforced password (default: random alphanumeric).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }
    /// Extra powered-off VMs `bench-0000`, `bench-0001`, ... (each 1 vCPU, 32 MB, 1 MB disk, NIC).
    pub fn vms(mut self, n: usize) -> Self {
        self.vms = n;
        self
    }
    /// Sessions idle for `d` expire (after between `d` and `2d`).
    pub fn session_idle(mut self, d: Duration) -> Self {
        self.session_idle = Some(d);
        self
    }
    /// A fault rule active from the start: `METHOD[@MOID]=[task:]FAULT[*N]`.
    pub fn fault(mut self, rule: &str) -> Self {
        self.faults.push(rule.to_string());
        self
    }
    /// Delay every (authenticated, dispatched) SOAP call.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }
    /// Extra delay for one SOAP method, e.g. `("PowerOnVM_Task", 500)`.
    pub fn method_delay(mut self, method: &str, ms: u64) -> Self {
        self.method_delays.push((method.to_string(), ms));
        self
    }
    /// Emulate VMware Tools (launcher `-guest-tools`, default off): after a power-on the guest
    /// reports the address its `guestinfo.metadata` network gives its NIC (or a DHCP lease from
    /// 10.99.0.0), its host name, and running Tools; ShutdownGuest/RebootGuest need running Tools.
    /// See [`Simulator::set_guest`] to make one guest report something else.
    pub fn guest_tools(mut self, on: bool) -> Self {
        self.guest_tools = on;
        self
    }
    /// Time from power-on (or RebootGuest, ShutdownGuest) until the emulated guest reacts
    /// (launcher `-guest-delay`, default 300 ms).
    pub fn guest_delay_ms(mut self, ms: u64) -> Self {
        self.guest_delay_ms = Some(ms);
        self
    }
    /// Any other launcher flag, passed verbatim.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    pub fn start(self) -> Simulator {
        let bin = esxsim_binary();
        let tempdir = tempfile::Builder::new()
            .prefix("ceso-esxsim-")
            .tempdir()
            .expect("creating simulator temp dir");
        let ds_dir = tempdir.path().join("datastore");
        let stderr_path = tempdir.path().join("esxsim.stderr");
        let ca_path = tempdir.path().join("ca.pem");
        let password = self
            .password
            .clone()
            .unwrap_or_else(|| format!("Pw{}", random_token()));

        let mut cmd = Command::new(&bin);
        cmd.arg("-listen")
            .arg("127.0.0.1:0")
            .arg("-user")
            .arg(&self.user)
            .arg("-pass")
            .arg(&password)
            .arg("-datastore-dir")
            .arg(&ds_dir)
            .arg("-exit-on-stdin-eof");
        if self.tls {
            cmd.arg("-tls").arg("-ca-out").arg(&ca_path);
        }
        if self.vms > 0 {
            cmd.arg("-vms").arg(self.vms.to_string());
        }
        if let Some(d) = self.session_idle {
            cmd.arg("-session-idle")
                .arg(format!("{}ms", d.as_millis().max(1)));
        }
        if self.delay_ms > 0 {
            cmd.arg("-delay-ms").arg(self.delay_ms.to_string());
        }
        for (m, ms) in &self.method_delays {
            cmd.arg("-method-delay").arg(format!("{m}={ms}"));
        }
        for f in &self.faults {
            cmd.arg("-fault").arg(f);
        }
        if self.guest_tools {
            cmd.arg("-guest-tools");
        }
        if let Some(ms) = self.guest_delay_ms {
            cmd.arg("-guest-delay").arg(format!("{ms}ms"));
        }
        cmd.args(&self.extra_args);

        let stderr = File::create(&stderr_path).expect("creating simulator stderr file");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("child stdout");

        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = &tx
                    && t.send(line).is_err()
                {
                    tx = None; // keep draining so the launcher never blocks on stdout
                }
            }
        });

        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let deadline = Instant::now() + START_TIMEOUT;
        let failure = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((k, v)) = line.split_once('=') {
                        vars.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    if line.trim() == "ESXSIM_READY=1" {
                        break None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    break Some(format!("no ESXSIM_READY=1 within {START_TIMEOUT:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Some("the launcher closed its stdout before ESXSIM_READY=1".into());
                }
            }
        };
        if let Some(why) = failure {
            let _ = child.kill();
            let status = child.wait().ok();
            let err = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!(
                "ESXi simulator {} failed to start: {why} (exit: {status:?})\nstdout so far: \
                 {vars:?}\nstderr:\n{err}",
                bin.display()
            );
        }

        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let url = get("ESXSIM_URL");
        assert!(!url.is_empty(), "launcher printed no ESXSIM_URL: {vars:?}");
        let datastore_dir = PathBuf::from(get("ESXSIM_DATASTORE_DIR"));
        Simulator {
            url,
            thumbprint: get("ESXSIM_THUMBPRINT_SHA256"),
            thumbprint_sha1: get("ESXSIM_THUMBPRINT_SHA1"),
            ca_file: vars.get("ESXSIM_CA_FILE").map(PathBuf::from),
            datastore: get("ESXSIM_DATASTORE"),
            datastore_dir,
            user: self.user,
            password,
            child,
            stdin,
            stderr_path,
            tempdir,
        }
    }
}

impl Simulator {
    /// TLS, user `root`, random password, own temporary datastore directory.
    pub fn start() -> Simulator {
        Simulator::builder().start()
    }

    /// ceso's own SOAP client, logged in to this simulator (pinned thumbprint; plain HTTP
    /// without TLS), with a 30 s task timeout.
    pub async fn client(&self) -> ceso::esxi::EsxiClient {
        ceso::esxi::EsxiClient::connect(ceso::esxi::ConnectOptions {
            address: self.url.clone(),
            thumbprint: (!self.thumbprint.is_empty()).then(|| self.thumbprint.clone()),
            insecure: false,
            username: self.user.clone(),
            password: ceso::secret::Secret::new(self.password.clone()),
            task_timeout: Duration::from_secs(30),
        })
        .await
        .expect("connect to the simulator")
    }

    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }

    /// `https://127.0.0.1:PORT` (the URL without `/sdk`).
    pub fn base_url(&self) -> &str {
        self.url.strip_suffix("/sdk").unwrap_or(&self.url)
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> &str {
        let base = self.base_url();
        base.split_once("://").map(|(_, h)| h).unwrap_or(base)
    }

    /// A scratch directory that lives as long as the simulator.
    pub fn temp_dir(&self) -> &Path {
        self.tempdir.path()
    }

    /// What the launcher wrote on stderr so far (simulator logs, panics).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Adds a fault rule `METHOD[@MOID]=[task:]FAULT[*N]`; panics if the launcher rejects it.
    pub fn inject_fault(&self, rule: &str) {
        if let Err(e) = self.try_inject_fault(rule) {
            panic!("inject_fault({rule:?}): {e}");
        }
    }

    /// Like [`inject_fault`](Self::inject_fault), returning the launcher's error instead.
    pub fn try_inject_fault(&self, rule: &str) -> Result<(), String> {
        let (status, body) = self.control(
            "POST",
            &format!("/_esxsim/faults?rule={}", url_encode(rule)),
        );
        if status == 200 {
            Ok(())
        } else {
            Err(format!("HTTP {status}: {body}"))
        }
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        let (status, body) = self.control("DELETE", "/_esxsim/faults");
        assert_eq!(status, 200, "clear_faults: {body}");
    }

    /// `{"total": N, "methods": {"Login": 1, ...}, "injected": N, "panics": N}`. Requests made
    /// by this module's hidden helpers (`soap_query`, `list_vms`, ...) are not counted.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = self.control("GET", "/_esxsim/stats");
        assert_eq!(status, 200, "stats: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats JSON {body:?}: {e}"))
    }

    /// Number of SOAP calls of `method` since the last reset.
    pub fn method_count(&self, method: &str) -> u64 {
        self.stats()["methods"][method].as_u64().unwrap_or(0)
    }

    pub fn reset_stats(&self) {
        let (status, body) = self.control("DELETE", "/_esxsim/stats");
        assert_eq!(status, 200, "reset_stats: {body}");
    }

    /// Makes the guest of VM `vm` (by name; it need not exist yet) report `guest` instead of what
    /// its metadata says: at once if its Tools run, otherwise from its next power-on. Needs
    /// [`SimulatorBuilder::guest_tools`]; panics if the launcher refuses.
    pub fn set_guest(&self, vm: &str, guest: GuestOverride) {
        let param = match &guest {
            GuestOverride::Ip(ip) => format!("ip={}", url_encode(ip)),
            GuestOverride::NoIp => "ip=none".to_string(),
            GuestOverride::ToolsOff => "tools=off".to_string(),
        };
        let (status, body) = self.control(
            "POST",
            &format!("/_esxsim/guest?vm={}&{param}", url_encode(vm)),
        );
        assert_eq!(status, 200, "set_guest({vm:?}, {guest:?}): {body}");
    }

    /// Removes every [`set_guest`](Self::set_guest) override (running guests report their
    /// metadata's addresses again at once; Tools turned off start at the next power-on).
    pub fn clear_guest_overrides(&self) {
        let (status, body) = self.control("DELETE", "/_esxsim/guest");
        assert_eq!(status, 200, "clear_guest_overrides: {body}");
    }

    /// The extraConfig of VM `vm_name` read over SOAP (independently of ceso): the last value
    /// per key (the simulator appends on reconfigure), keys whose last value is empty left out
    /// (a real host deletes them). Panics if no VM has that name.
    pub fn extra_config(&self, vm_name: &str) -> BTreeMap<String, String> {
        let vm = find_vm(self, vm_name)
            .unwrap_or_else(|| panic!("extra_config: no VM named {vm_name:?} on the simulator"));
        vm.extra_config
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    fn control(&self, method: &str, path: &str) -> (u16, String) {
        let url = format!("{}{}", self.base_url(), path);
        let out = Command::new("curl")
            .args([
                "-sS",
                "-k",
                "--http1.1",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
            ])
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("running curl: {e} (install curl)"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "curl -X {method} {url} failed ({}): {}\nlauncher stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.stderr()
            );
        }
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// HTTP faults on the datastore interface (`/folder`); see the launcher's header comment.
impl Simulator {
    /// Adds an HTTP fault rule `METHOD:PATH-SUBSTRING=cut@BYTES[*N]` (GET: the connection drops
    /// after BYTES bytes of body; PUT: after BYTES bytes of the upload, which the host keeps)
    /// or `METHOD:PATH-SUBSTRING=status@CODE[*N]`; panics if the launcher rejects it.
    pub fn inject_http_fault(&self, rule: &str) {
        let (status, body) = self.control(
            "POST",
            &format!("/_esxsim/http-faults?rule={}", url_encode(rule)),
        );
        assert_eq!(status, 200, "inject_http_fault({rule:?}): {body}");
    }

    /// Removes every HTTP fault rule.
    pub fn clear_http_faults(&self) {
        let (status, body) = self.control("DELETE", "/_esxsim/http-faults");
        assert_eq!(status, 200, "clear_http_faults: {body}");
    }

    /// Number of `/folder` requests answered by an injected HTTP fault since the last reset.
    pub fn http_faults_injected(&self) -> u64 {
        self.stats()["httpInjected"].as_u64().unwrap_or(0)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = String::new();
    for i in 0..2u8 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u8(i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// raw SOAP over curl

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps a SOAP body element (e.g. `<CurrentTime xmlns="urn:vim25">...`) in an envelope that
/// declares the `xsi` and `xsd` prefixes. A full envelope is returned unchanged.
pub fn envelope(body: &str) -> String {
    if body.contains("Envelope") {
        return body.to_string();
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
    )
}

/// An HTTP answer from `/sdk`.
#[derive(Clone, Debug)]
pub struct SoapResponse {
    pub status: u16,
    pub body: String,
    /// The `vmware_soap_session` cookie value, when the response set one.
    pub session: Option<String>,
}

impl SoapResponse {
    /// The vim25 fault type (`InvalidLogin`, `NotAuthenticated`, ...) of a SOAP fault response.
    pub fn fault(&self) -> Option<String> {
        let doc = parse_xml(&self.body).ok()?;
        let fault = doc.descendant("Fault")?;
        let detail = fault.child("detail")?.children.first()?;
        Some(
            detail
                .xsi_type()
                .map(|t| strip_prefix(t).to_string())
                .unwrap_or_else(|| {
                    detail
                        .name
                        .strip_suffix("Fault")
                        .unwrap_or(&detail.name)
                        .to_string()
                }),
        )
    }

    /// The `faultstring` of a SOAP fault response.
    pub fn fault_string(&self) -> Option<String> {
        let doc = parse_xml(&self.body).ok()?;
        Some(doc.descendant("Fault")?.child("faultstring")?.text.clone())
    }

    /// The parsed body.
    pub fn xml(&self) -> XmlNode {
        parse_xml(&self.body).unwrap_or_else(|e| panic!("bad XML ({e}): {}", self.body))
    }

    /// The text of the first `returnval` element (e.g. a Task moref value).
    pub fn returnval(&self) -> Option<String> {
        Some(self.xml().descendant("returnval")?.text.clone())
    }
}

/// POSTs a SOAP body (element or full envelope) to `/sdk` like any client: counted in the stats
/// and subject to injected faults. `session` is a `vmware_soap_session` cookie value.
pub fn soap_post(sim: &Simulator, session: Option<&str>, body: &str) -> SoapResponse {
    post(sim, session, body, false)
}

/// Like [`soap_post`], but invisible to the launcher's stats and fault injection.
pub fn soap_post_hidden(sim: &Simulator, session: Option<&str>, body: &str) -> SoapResponse {
    post(sim, session, body, true)
}

fn post(sim: &Simulator, session: Option<&str>, body: &str, hidden: bool) -> SoapResponse {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-k", "--http1.1", "-i", "-X", "POST"])
        .args(["-H", "Content-Type: text/xml; charset=utf-8"])
        .args(["-H", "SOAPAction: urn:vim25/6.5"])
        .args(["-H", "Expect:"])
        .args(["--data-binary", "@-"]);
    if let Some(s) = session {
        cmd.arg("-H")
            .arg(format!("Cookie: vmware_soap_session={s}"));
    }
    if hidden {
        cmd.args(["-H", "X-Esxsim-Hidden: 1"]);
    }
    cmd.arg(&sim.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running curl: {e} (install curl)"));
    let data = envelope(body);
    {
        let mut stdin = child.stdin.take().expect("curl stdin");
        stdin.write_all(data.as_bytes()).expect("writing to curl");
    }
    let out = child.wait_with_output().expect("waiting for curl");
    if !out.status.success() {
        panic!(
            "curl POST {} failed ({}): {}\nlauncher stderr:\n{}",
            sim.url,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            sim.stderr()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header block in curl output: {text}"));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let session = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let pair = value.trim().split(';').next()?;
        let (k, v) = pair.split_once('=')?;
        (k.trim() == "vmware_soap_session").then(|| v.trim().trim_matches('"').to_string())
    });
    SoapResponse {
        status,
        body: body.to_string(),
        session,
    }
}

fn login_body(user: &str, password: &str) -> String {
    format!(
        r#"<Login xmlns="urn:vim25"><_this type="SessionManager">ha-sessionmgr</_this><userName>{}</userName><password>{}</password></Login>"#,
        xml_escape(user),
        xml_escape(password)
    )
}

const LOGOUT_BODY: &str =
    r#"<Logout xmlns="urn:vim25"><_this type="SessionManager">ha-sessionmgr</_this></Logout>"#;

/// Logs in (visible to stats and faults). `Ok(session cookie value)` or the fault response.
pub fn soap_login(sim: &Simulator, user: &str, password: &str) -> Result<String, SoapResponse> {
    let r = soap_post(sim, None, &login_body(user, password));
    match (&r.session, r.status) {
        (Some(s), 200) => Ok(s.clone()),
        _ => Err(r),
    }
}

/// Logs out (visible).
pub fn soap_logout(sim: &Simulator, session: &str) {
    soap_post(sim, Some(session), LOGOUT_BODY);
}

/// Logs in as `sim.user`, posts `body`, logs out, and returns the response body (a fault
/// response body too). Hidden from the stats and from fault injection.
pub fn soap_query(sim: &Simulator, body: &str) -> String {
    soap_query_response(sim, body).body
}

/// [`soap_query`] returning status and body.
pub fn soap_query_response(sim: &Simulator, body: &str) -> SoapResponse {
    let login = soap_post_hidden(sim, None, &login_body(&sim.user, &sim.password));
    let Some(session) = login.session.clone().filter(|_| login.status == 200) else {
        panic!("soap_query: login as {} failed: {}", sim.user, login.body);
    };
    let r = soap_post_hidden(sim, Some(&session), body);
    soap_post_hidden(sim, Some(&session), LOGOUT_BODY);
    r
}

/// `RetrievePropertiesEx` of `paths` on one object; returns `path → val` nodes (hidden).
pub fn retrieve_properties(
    sim: &Simulator,
    obj_type: &str,
    moref: &str,
    paths: &[&str],
) -> BTreeMap<String, XmlNode> {
    let path_set: String = paths
        .iter()
        .map(|p| format!("<pathSet>{}</pathSet>", xml_escape(p)))
        .collect();
    let body = format!(
        r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">ha-property-collector</_this><specSet><propSet><type>{t}</type>{path_set}</propSet><objectSet><obj type="{t}">{m}</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#,
        t = xml_escape(obj_type),
        m = xml_escape(moref)
    );
    let r = soap_query_response(sim, &body);
    assert_eq!(
        r.status, 200,
        "RetrievePropertiesEx {obj_type}:{moref}: {}",
        r.body
    );
    let mut out = BTreeMap::new();
    let doc = r.xml();
    for obj in doc.descendants("objects") {
        for ps in obj.children_named("propSet") {
            if let (Some(n), Some(v)) = (ps.child("name"), ps.child("val")) {
                out.insert(n.text.clone(), v.clone());
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// VM facts

/// What the simulated host says about one VM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VmFacts {
    pub name: String,
    /// Moref value, e.g. `vm-9`.
    pub moref: String,
    pub num_cpu: u32,
    pub memory_mb: u64,
    /// `poweredOn`, `poweredOff` or `suspended`.
    pub power_state: String,
    pub guest_id: String,
    pub annotation: String,
    /// `config.extraConfig`, last value per key wins (the simulator appends on reconfigure). A
    /// key set to `""` (a deletion on a real host) is kept with an empty value.
    pub extra_config: BTreeMap<String, String>,
    /// `config.extraConfig` as returned, duplicates included.
    pub extra_config_raw: Vec<(String, String)>,
    /// Capacity of each virtual disk in bytes, in device order.
    pub disk_capacities: Vec<u64>,
    /// Backing file of each virtual disk (`[LocalDS_0] vm/disk1.vmdk`), in device order.
    pub disk_files: Vec<String>,
    /// Port group (network name) of each NIC, in device order.
    pub nic_networks: Vec<String>,
    /// MAC address of each NIC (lower case), in device order.
    pub nic_macs: Vec<String>,
    /// `config.firmware` (`bios`, `efi`), when set.
    pub firmware: Option<String>,
    /// `guest.ipAddress`: the address VMware Tools reports (none without running Tools).
    pub guest_ip: Option<String>,
    /// `guest.hostName` as VMware Tools reports it.
    pub guest_host_name: Option<String>,
    /// `guest.toolsRunningStatus` is `guestToolsRunning`.
    pub tools_running: bool,
    /// `guest.net`: the addresses Tools report per NIC, by lower-case MAC (NICs without an
    /// address included, with none).
    pub guest_nic_ips: BTreeMap<String, Vec<String>>,
}

const VM_PATHS: &[&str] = &[
    "name",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "runtime.powerState",
    "config.guestId",
    "config.annotation",
    "config.extraConfig",
    "config.hardware.device",
    "config.firmware",
    "guest.ipAddress",
    "guest.hostName",
    "guest.toolsRunningStatus",
    "guest.net",
];

/// Every VM of the host (all of `ha-folder-vm`, recursively), sorted by name. Hidden from the
/// stats and from fault injection; independent of ceso's SOAP client.
pub fn list_vms(sim: &Simulator) -> Vec<VmFacts> {
    let path_set: String = VM_PATHS
        .iter()
        .map(|p| format!("<pathSet>{p}</pathSet>"))
        .collect();
    let body = format!(
        r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">ha-property-collector</_this><specSet><propSet><type>VirtualMachine</type>{path_set}</propSet><objectSet><obj type="Folder">ha-folder-vm</obj><skip>true</skip><selectSet xsi:type="TraversalSpec"><name>folderTraversal</name><type>Folder</type><path>childEntity</path><skip>false</skip><selectSet><name>folderTraversal</name></selectSet></selectSet></objectSet></specSet><options></options></RetrievePropertiesEx>"#
    );
    let r = soap_query_response(sim, &body);
    assert_eq!(r.status, 200, "list_vms: {}", r.body);
    let doc = r.xml();
    let mut vms: Vec<VmFacts> = doc
        .descendants("objects")
        .into_iter()
        .map(vm_facts_from_object)
        .collect();
    vms.sort_by(|a, b| a.name.cmp(&b.name).then(a.moref.cmp(&b.moref)));
    vms
}

/// The VM named `name`, if any.
pub fn find_vm(sim: &Simulator, name: &str) -> Option<VmFacts> {
    list_vms(sim).into_iter().find(|v| v.name == name)
}

/// Polls VM `name` (every 50 ms) until `done` holds, and returns it; panics after `timeout`
/// with what the host last said about it.
pub fn wait_for_vm(
    sim: &Simulator,
    name: &str,
    timeout: Duration,
    done: impl Fn(&VmFacts) -> bool,
) -> VmFacts {
    let deadline = Instant::now() + timeout;
    loop {
        let vm = find_vm(sim, name);
        if let Some(vm) = vm.as_ref().filter(|vm| done(vm)) {
            return vm.clone();
        }
        if Instant::now() >= deadline {
            panic!("VM {name:?} not in the expected state within {timeout:?}; last seen: {vm:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn vm_moref(sim: &Simulator, vm_name: &str) -> String {
    find_vm(sim, vm_name)
        .unwrap_or_else(|| panic!("no VM named {vm_name:?} on the simulator"))
        .moref
}

/// Calls a method that takes only `_this` (`PowerOnVM_Task`, `ShutdownGuest`, ...) on VM
/// `vm_name`, hidden from the stats and from fault injection. Returns the answer as it is.
pub fn vm_call(sim: &Simulator, vm_name: &str, method: &str) -> SoapResponse {
    let moref = vm_moref(sim, vm_name);
    soap_query_response(
        sim,
        &format!(
            r#"<{method} xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this></{method}>"#,
            xml_escape(&moref)
        ),
    )
}

/// `info.state` (`success`, `error`) of the task a `*_Task` answer returned, and the fault type
/// of a failed one.
pub fn task_outcome(sim: &Simulator, response: &SoapResponse) -> (String, Option<String>) {
    assert_eq!(response.status, 200, "not a task answer: {}", response.body);
    let task = response
        .returnval()
        .unwrap_or_else(|| panic!("no task in {}", response.body));
    let info = retrieve_properties(sim, "Task", &task, &["info.state", "info.error"]);
    let state = info
        .get("info.state")
        .map(|s| s.text.clone())
        .unwrap_or_default();
    let fault = info
        .get("info.error")
        .and_then(|e| e.child("fault"))
        .and_then(|f| f.xsi_type())
        .map(|t| strip_prefix(t).to_string());
    (state, fault)
}

/// Sets extraConfig entries of VM `vm_name` with ReconfigVM_Task (hidden), as ceso would; panics
/// unless the task succeeds.
pub fn set_extra_config(sim: &Simulator, vm_name: &str, entries: &[(&str, &str)]) {
    let moref = vm_moref(sim, vm_name);
    let options: String = entries
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<extraConfig xsi:type="OptionValue"><key>{}</key><value xsi:type="xsd:string">{}</value></extraConfig>"#,
                xml_escape(k),
                xml_escape(v)
            )
        })
        .collect();
    let r = soap_query_response(
        sim,
        &format!(
            r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this><spec>{options}</spec></ReconfigVM_Task>"#,
            xml_escape(&moref)
        ),
    );
    let (state, fault) = task_outcome(sim, &r);
    assert_eq!(
        state, "success",
        "ReconfigVM_Task of {vm_name} failed: {fault:?}"
    );
}

fn vm_facts_from_object(obj: &XmlNode) -> VmFacts {
    let mut vm = VmFacts {
        moref: obj.child("obj").map(|o| o.text.clone()).unwrap_or_default(),
        ..VmFacts::default()
    };
    for ps in obj.children_named("propSet") {
        let (Some(name), Some(val)) = (ps.child("name"), ps.child("val")) else {
            continue;
        };
        match name.text.as_str() {
            "name" => vm.name = val.text.clone(),
            "config.hardware.numCPU" => vm.num_cpu = val.text.trim().parse().unwrap_or(0),
            "config.hardware.memoryMB" => vm.memory_mb = val.text.trim().parse().unwrap_or(0),
            "runtime.powerState" => vm.power_state = val.text.clone(),
            "config.guestId" => vm.guest_id = val.text.clone(),
            "config.annotation" => vm.annotation = val.text.clone(),
            "config.firmware" => vm.firmware = Some(val.text.clone()).filter(|f| !f.is_empty()),
            "guest.ipAddress" => vm.guest_ip = Some(val.text.clone()).filter(|ip| !ip.is_empty()),
            "guest.hostName" => {
                vm.guest_host_name = Some(val.text.clone()).filter(|h| !h.is_empty())
            }
            "guest.toolsRunningStatus" => vm.tools_running = val.text == "guestToolsRunning",
            "guest.net" => {
                for nic in &val.children {
                    let mac = nic
                        .child("macAddress")
                        .map(|m| m.text.to_ascii_lowercase())
                        .unwrap_or_default();
                    let ips = nic
                        .children_named("ipAddress")
                        .map(|ip| ip.text.clone())
                        .collect();
                    vm.guest_nic_ips.insert(mac, ips);
                }
            }
            "config.extraConfig" => {
                for ov in &val.children {
                    let key = ov.child("key").map(|k| k.text.clone()).unwrap_or_default();
                    let value = ov
                        .child("value")
                        .map(|v| v.text.clone())
                        .unwrap_or_default();
                    vm.extra_config.insert(key.clone(), value.clone());
                    vm.extra_config_raw.push((key, value));
                }
            }
            "config.hardware.device" => {
                for dev in &val.children {
                    let kind = dev.xsi_type().map(strip_prefix).unwrap_or("");
                    if kind == "VirtualDisk" {
                        let bytes = dev
                            .child("capacityInBytes")
                            .and_then(|c| c.text.trim().parse::<u64>().ok())
                            .filter(|b| *b > 0)
                            .or_else(|| {
                                dev.child("capacityInKB")
                                    .and_then(|c| c.text.trim().parse::<u64>().ok())
                                    .map(|kb| kb * 1024)
                            })
                            .unwrap_or(0);
                        vm.disk_capacities.push(bytes);
                        vm.disk_files.push(
                            dev.child("backing")
                                .and_then(|b| b.child("fileName"))
                                .map(|f| f.text.clone())
                                .unwrap_or_default(),
                        );
                    } else if dev.child("macAddress").is_some()
                        || dev.child("addressType").is_some()
                    {
                        let backing = dev.child("backing");
                        let net = backing
                            .and_then(|b| b.child("deviceName"))
                            .map(|d| d.text.clone())
                            .or_else(|| {
                                backing
                                    .and_then(|b| b.child("port"))
                                    .and_then(|p| p.child("portgroupKey"))
                                    .map(|k| k.text.clone())
                            })
                            .unwrap_or_default();
                        vm.nic_networks.push(net);
                        vm.nic_macs.push(
                            dev.child("macAddress")
                                .map(|m| m.text.to_ascii_lowercase())
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    vm
}

// ------------------------------------------------------------------------------------------------
// a tiny XML reader (enough for the simulator's well-formed output)

/// An XML element: local name (prefix dropped), attributes with their full names, child
/// elements, and the concatenated unescaped text directly inside it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct XmlNode {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<XmlNode>,
    pub text: String,
}

impl XmlNode {
    /// First child element with this local name.
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Child elements with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlNode> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// First element (self included, depth first) with this local name.
    pub fn descendant(&self, name: &str) -> Option<&XmlNode> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.descendant(name))
    }

    /// All elements (self included, depth first) with this local name.
    pub fn descendants(&self, name: &str) -> Vec<&XmlNode> {
        let mut out = Vec::new();
        self.collect(name, &mut out);
        out
    }

    fn collect<'a>(&'a self, name: &str, out: &mut Vec<&'a XmlNode>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.collect(name, out);
        }
    }

    /// Attribute by its full name as written (`type`, `xsi:type`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The XML-schema-instance type: any prefixed attribute with local name `type` (the
    /// simulator writes `xsi:type` in faults but `XMLSchema-instance:type` in property values).
    /// The value is returned as written (`xsd:string`, `VirtualDisk`).
    pub fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| {
                k.rsplit_once(':')
                    .is_some_and(|(p, l)| l == "type" && p != "xmlns")
            })
            .map(|(_, v)| v.as_str())
    }
}

fn strip_prefix(t: &str) -> &str {
    t.rsplit_once(':').map(|(_, l)| l).unwrap_or(t)
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else {
            out.push_str(rest);
            return out;
        };
        let ent = &rest[1..end];
        let decoded = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn local(name: &str) -> String {
    name.rsplit_once(':')
        .map(|(_, l)| l)
        .unwrap_or(name)
        .to_string()
}

/// Parses a document and returns its root element.
pub fn parse_xml(s: &str) -> Result<XmlNode, String> {
    let mut stack: Vec<XmlNode> = vec![XmlNode::default()]; // document node
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] != b'<' {
            let end = s[i..].find('<').map(|j| i + j).unwrap_or(b.len());
            let top = stack.last_mut().expect("stack");
            top.text.push_str(&unescape(&s[i..end]));
            i = end;
            continue;
        }
        let rest = &s[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>").ok_or("unterminated <?")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->").ok_or("unterminated comment")? + 3;
        } else if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").ok_or("unterminated CDATA")?;
            stack
                .last_mut()
                .expect("stack")
                .text
                .push_str(&rest[9..end]);
            i += end + 3;
        } else if rest.starts_with("<!") {
            i += rest.find('>').ok_or("unterminated <!")? + 1;
        } else if rest.starts_with("</") {
            let end = rest.find('>').ok_or("unterminated end tag")?;
            let name = local(rest[2..end].trim());
            let node = stack.pop().ok_or("unbalanced end tag")?;
            if node.name != name || stack.is_empty() {
                return Err(format!("end tag </{name}> does not match <{}>", node.name));
            }
            stack.last_mut().expect("stack").children.push(node);
            i += end + 1;
        } else {
            // start tag: find its end, honouring quotes
            let mut j = 1;
            let mut quote: Option<u8> = None;
            let rb = rest.as_bytes();
            while j < rb.len() {
                match (quote, rb[j]) {
                    (Some(q), c) if c == q => quote = None,
                    (None, b'"') | (None, b'\'') => quote = Some(rb[j]),
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j >= rb.len() {
                return Err("unterminated start tag".into());
            }
            let self_closing = rb[j - 1] == b'/';
            let inner = &rest[1..if self_closing { j - 1 } else { j }];
            let (qname, mut attr_src) = match inner.find(|c: char| c.is_whitespace()) {
                Some(k) => (&inner[..k], &inner[k..]),
                None => (inner, ""),
            };
            let mut node = XmlNode {
                name: local(qname),
                ..XmlNode::default()
            };
            loop {
                attr_src = attr_src.trim_start();
                if attr_src.is_empty() {
                    break;
                }
                let eq = attr_src.find('=').ok_or("attribute without =")?;
                let key = attr_src[..eq].trim().to_string();
                let after = attr_src[eq + 1..].trim_start();
                let q = after.chars().next().ok_or("attribute without value")?;
                if q != '"' && q != '\'' {
                    return Err("unquoted attribute".into());
                }
                let close = after[1..].find(q).ok_or("unterminated attribute")? + 1;
                node.attrs.push((key, unescape(&after[1..close])));
                attr_src = &after[close + 1..];
            }
            if self_closing {
                stack.last_mut().expect("stack").children.push(node);
            } else {
                stack.push(node);
            }
            i += j + 1;
        }
    }
    if stack.len() != 1 {
        return Err(format!(
            "unclosed element <{}>",
            stack.last().map(|n| n.name.as_str()).unwrap_or("")
        ));
    }
    let mut doc = stack.pop().expect("document");
    if doc.children.is_empty() {
        return Err("no root element".into());
    }
    Ok(doc.children.remove(0))
}
