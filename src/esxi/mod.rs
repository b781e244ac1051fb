//! A small typed vSphere (vim25) SOAP client for standalone ESXi hosts.
//!
//! Written for real hosts (asynchronous tasks, paged property retrieval, session expiry,
//! free-licence refusals) and proven against the govmomi simulator (whose quirks it tolerates:
//! a `NotAuthenticated` reported inside `missingSet`, append-only `extraConfig`, locally
//! declared `XMLSchema-instance` prefixes).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ceso::esxi::EsxiError> {
//! use ceso::esxi::{ConnectOptions, EsxiClient};
//! use ceso::host::Host;
//! let client = EsxiClient::connect(ConnectOptions {
//!     address: "https://esxi-01".into(),
//!     thumbprint: Some("AB:CD:...".into()),
//!     insecure: false,
//!     username: "root".into(),
//!     password: ceso::secret::Secret::new("..."),
//!     task_timeout: std::time::Duration::from_secs(600),
//! })
//! .await?;
//! let observed = client.observe().await?;
//! client.logout().await?;
//! # let _ = observed; Ok(()) }
//! ```

mod certificate;
mod datastore;
mod envelope;
mod error;
mod fault;
mod firewall;
#[cfg(test)]
mod mock;
mod nfc;
mod ovf;
mod properties;
mod session;
mod task;
mod transport;
mod vm;
mod xml;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

pub use certificate::{CertificateFields, HostCertificate, fetch_certificate};
pub use error::EsxiError;
pub use ovf::{ImportError, ImportOptions, ImportProgress, ImportedTemplate};
pub use transport::normalize_thumbprint;
pub(crate) use transport::{is_loopback, normalize_address};

use crate::host::{Host, HostAbout, HostOp, ObservedAccess, ObservedHost, OpOutcome};
use crate::secret::Secret;
use session::ServiceContent;
use transport::{Transport, TrustMode};
use vm::Placement;

/// How to reach and log in to one host.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `https://host[:port][/path]`; `/sdk` is appended when the path is empty or `/`. A bare
    /// host name means `https://`. Plain `http://` is accepted for loopback addresses only.
    pub address: String,
    /// SHA-256 thumbprint of the host's leaf certificate (`AB:CD:...`; any case, colons
    /// optional). Takes precedence over `insecure`.
    pub thumbprint: Option<String>,
    /// Accept any certificate (explicit opt-out of verification; the caller should warn).
    pub insecure: bool,
    /// Login user, e.g. `root`.
    pub username: String,
    /// Login password; never logged or formatted.
    pub password: Secret,
    /// How long to wait for one task (create, reconfigure, power, destroy).
    pub task_timeout: Duration,
}

/// A logged-in session with one host.
///
/// All methods take `&self`, so one client can serve concurrent futures. A session that
/// expires is renewed transparently (one retry per call).
#[derive(Debug)]
pub struct EsxiClient {
    transport: Transport,
    service: ServiceContent,
    username: String,
    password: Secret,
    task_timeout: Duration,
    /// Bumped by every successful login; lets concurrent callers share one re-login.
    session_generation: AtomicU64,
    /// False after `logout()`: no transparent re-login then.
    logged_in: AtomicBool,
    relogin_lock: tokio::sync::Mutex<()>,
    placement: tokio::sync::OnceCell<Placement>,
}

impl EsxiClient {
    /// Connects: checks the address and trust settings, fetches the service content
    /// (`RetrieveServiceContent`) and logs in (`Login`).
    ///
    /// Without `thumbprint` and without `insecure`, fails with [`EsxiError::NoTrust`], which
    /// carries the thumbprint the host presented so the operator can verify and pin it.
    pub async fn connect(opts: ConnectOptions) -> Result<Self, EsxiError> {
        let url = transport::normalize_address(&opts.address)?;
        if url.scheme() == "http" && !transport::is_loopback(&url) {
            return Err(EsxiError::PlainHttpRefused {
                address: opts.address,
            });
        }
        let trust = match (&opts.thumbprint, opts.insecure) {
            (Some(t), _) => TrustMode::Pinned(normalize_thumbprint(t)?),
            (None, true) => TrustMode::Insecure,
            (None, false) => TrustMode::Probe,
        };
        let transport = Transport::new(url, trust)?;
        let service = session::retrieve_service_content(&transport).await?;
        if !service.about.api_version.is_empty() {
            transport.set_api_version(&service.about.api_version);
        }
        let client = Self {
            transport,
            service,
            username: opts.username,
            password: opts.password,
            task_timeout: opts.task_timeout,
            session_generation: AtomicU64::new(0),
            logged_in: AtomicBool::new(false),
            relogin_lock: tokio::sync::Mutex::new(()),
            placement: tokio::sync::OnceCell::new(),
        };
        client.login().await?;
        tracing::debug!(
            address = client.transport.address(),
            product = %client.service.about.full_name,
            "logged in"
        );
        Ok(client)
    }

    /// Number of HTTP requests sent to `/sdk` so far (including connect and login).
    pub fn round_trips(&self) -> u64 {
        self.transport.round_trips()
    }

    /// Product facts from the service content.
    pub fn about(&self) -> &HostAbout {
        &self.service.about
    }

    /// The normalized `/sdk` URL of the host.
    pub fn address(&self) -> &str {
        self.transport.address()
    }
}

impl Host for EsxiClient {
    type Error = EsxiError;

    /// One container view (VMs, datastores, networks), one `RetrievePropertiesEx` (plus
    /// `ContinueRetrievePropertiesEx` on hosts that page), one `DestroyView`.
    async fn observe(&self) -> Result<ObservedHost, EsxiError> {
        self.observe_host().await
    }

    /// Runs the operation's task and waits for it (up to the task timeout).
    async fn execute(&self, op: &HostOp) -> Result<OpOutcome, EsxiError> {
        self.execute_op(op).await
    }

    /// One `RetrievePropertiesEx` of the firewall's rulesets, and one TCP connection to the
    /// API port for the address ceso comes from.
    async fn observe_access(&self) -> Result<Option<ObservedAccess>, EsxiError> {
        self.read_access().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}

    #[test]
    fn client_and_futures_are_send() {
        assert_sync::<EsxiClient>();
        let opts = ConnectOptions {
            address: "https://127.0.0.1:1".into(),
            thumbprint: None,
            insecure: true,
            username: "root".into(),
            password: Secret::new("x"),
            task_timeout: Duration::from_secs(1),
        };
        let fut = EsxiClient::connect(opts);
        assert_send(&fut);
        fn with_client(c: &EsxiClient, op: &HostOp) {
            assert_send(&c.observe());
            assert_send(&c.observe_access());
            assert_send(&c.execute(op));
            assert_send(&c.logout());
        }
        let _ = with_client;
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        let opts = |address: &str| ConnectOptions {
            address: address.into(),
            thumbprint: None,
            insecure: false,
            username: "root".into(),
            password: Secret::new("hunter2"),
            task_timeout: Duration::from_secs(1),
        };
        let err = EsxiClient::connect(opts("http://esxi-01"))
            .await
            .expect_err("refused");
        assert!(matches!(err, EsxiError::PlainHttpRefused { .. }), "{err}");
        // Loopback http is allowed; nothing listens on port 1, so the error is a network one.
        let err = EsxiClient::connect(opts("http://127.0.0.1:1"))
            .await
            .expect_err("no server");
        assert!(matches!(err, EsxiError::Network { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_thumbprint_is_rejected_before_connecting() {
        let err = EsxiClient::connect(ConnectOptions {
            address: "https://esxi-01".into(),
            thumbprint: Some("nope".into()),
            insecure: false,
            username: "root".into(),
            password: Secret::new("x"),
            task_timeout: Duration::from_secs(1),
        })
        .await
        .expect_err("invalid");
        assert!(matches!(err, EsxiError::InvalidThumbprint { .. }), "{err}");
    }
}
