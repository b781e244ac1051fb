//! HTTPS transport to `/sdk`: rustls (ring) with SHA-256 thumbprint pinning, the session
//! cookie, the round-trip counter, and mapping of transport failures to [`EsxiError`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::certificate::HostCertificate;
use super::envelope::{Reply, envelope, unwrap_body};
use super::error::EsxiError;
use super::xml::{Detach, parse_detaching};

/// Time allowed to establish a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for one SOAP exchange (large inventories take a while on slow hosts).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How the host certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrustMode {
    /// Accept only a leaf certificate with this SHA-256 thumbprint (canonical `AB:CD:...`).
    Pinned(String),
    /// Accept any certificate (explicit opt-out).
    Insecure,
    /// No trust configured (or only the certificate wanted): record the certificate and abort
    /// the handshake.
    Probe,
}

/// Shared between the verifier (inside rustls) and whoever made the connection (to explain a
/// refused certificate, or to read the certificate a probe fetched).
#[derive(Debug)]
pub(crate) struct TrustState {
    mode: TrustMode,
    /// DER of the last leaf certificate seen in a handshake.
    seen: Mutex<Option<Vec<u8>>>,
}

impl TrustState {
    /// Trust as `mode` says, no certificate seen yet.
    pub(crate) fn new(mode: TrustMode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            seen: Mutex::new(None),
        })
    }

    /// DER of the last leaf certificate the host presented, if a handshake got that far.
    pub(crate) fn seen_certificate(&self) -> Option<Vec<u8>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A rustls verifier that pins the SHA-256 of the leaf certificate and still checks the
/// handshake signatures against that certificate's key.
#[derive(Debug)]
struct PinningVerifier {
    state: Arc<TrustState>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self
            .state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(end_entity.as_ref().to_vec());
        match &self.state.mode {
            TrustMode::Insecure => Ok(ServerCertVerified::assertion()),
            TrustMode::Pinned(expected) if *expected == thumbprint_of(end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            TrustMode::Pinned(_) => Err(rustls::Error::General(
                "certificate thumbprint does not match the pin".into(),
            )),
            TrustMode::Probe => Err(rustls::Error::General(
                "no certificate trust configured".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// SHA-256 of DER bytes as `AB:CD:...`.
pub(crate) fn thumbprint_of(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    colon_hex(digest.as_ref())
}

/// Bytes as thumbprints are written: uppercase hex pairs joined by colons, `AB:CD:...`.
pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Normalizes a SHA-256 thumbprint to `AB:CD:...` (32 uppercase hex bytes, colon-separated).
///
/// Accepts upper or lower case, with or without colons (or spaces), and the output of
/// `openssl x509 -fingerprint -sha256` including its `sha256 Fingerprint=` prefix.
pub fn normalize_thumbprint(input: &str) -> Result<String, EsxiError> {
    let invalid = |reason: &str| EsxiError::InvalidThumbprint {
        thumbprint: input.to_owned(),
        reason: reason.to_owned(),
    };
    let value = input.rsplit_once('=').map_or(input, |(_, v)| v);
    let hex: String = value
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\t' | '-'))
        .collect();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            "contains characters other than hex digits and colons",
        ));
    }
    match hex.len() {
        64 => {}
        40 => return Err(invalid("this is a SHA-1 thumbprint; ceso pins SHA-256")),
        n => return Err(invalid(&format!("has {} hex digits instead of 64", n))),
    }
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid("not hexadecimal"))?;
    Ok(colon_hex(&bytes))
}

/// Parses and normalizes the configured address into the `/sdk` URL.
pub(crate) fn normalize_address(address: &str) -> Result<reqwest::Url, EsxiError> {
    let invalid = |reason: String| EsxiError::InvalidAddress {
        address: address.to_owned(),
        reason,
    };
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty".into()));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let mut url = reqwest::Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(format!(
            "unsupported scheme {:?} (use https://)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host name".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the address are not supported; use username/password settings".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "query strings and fragments are not supported".into(),
        ));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/sdk");
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address (127.0.0.0/8, ::1, `localhost`).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An HTTP client whose TLS trusts the host's certificate as `trust` says (and records it
/// there). reqwest (rustls without a process-wide provider) needs this configuration even for
/// plain http, where it is simply never used. The error is the reason, for the caller's
/// [`EsxiError::Network`].
pub(crate) fn http_client(
    trust: &Arc<TrustState>,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinningVerifier {
        state: Arc::clone(trust),
        provider: Arc::clone(&provider),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .user_agent(concat!("ceso/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(config)
        .http1_only()
        .build()
        .map_err(|e| error_chain(&e))
}

/// The HTTP side of the client.
pub(crate) struct Transport {
    http: reqwest::Client,
    url: reqwest::Url,
    address: String,
    trust: Option<Arc<TrustState>>,
    round_trips: AtomicU64,
    /// Cookies set by the host (`name=value`), echoed back on every request.
    cookies: Mutex<Vec<(String, String)>>,
    /// `SOAPAction` header value, `urn:vim25/<apiVersion>` once the version is known.
    soap_action: Mutex<String>,
}

/// Leaves out the session cookie: it is a credential.
impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.address)
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Builds the transport. `trust` is ignored for loopback `http://`.
    pub fn new(url: reqwest::Url, trust: TrustMode) -> Result<Self, EsxiError> {
        let address = url.to_string();
        let network = |message: String| EsxiError::Network {
            address: address.clone(),
            message,
        };
        let state = TrustState::new(trust);
        let http = http_client(&state, CONNECT_TIMEOUT, REQUEST_TIMEOUT).map_err(network)?;
        let state = (url.scheme() == "https").then_some(state);
        Ok(Self {
            http,
            url,
            address,
            trust: state,
            round_trips: AtomicU64::new(0),
            cookies: Mutex::new(Vec::new()),
            soap_action: Mutex::new("urn:vim25".to_owned()),
        })
    }

    /// The normalized `/sdk` URL, used in error messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// HTTP requests sent so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Selects the API version announced in `SOAPAction` (the host's own `apiVersion`).
    pub fn set_api_version(&self, version: &str) {
        *self
            .soap_action
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = format!("urn:vim25/{version}");
    }

    /// Forgets the session cookie (before a fresh `Login`).
    pub fn clear_cookies(&self) {
        self.cookies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The `Cookie` header echoing the host's cookies (the session); empty before login.
    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Starts a plain HTTP request to another URL of the host (an NFC upload), with the same
    /// TLS trust (thumbprint pin) and session cookie as the SOAP calls. Not counted as a round
    /// trip; send errors are explained by [`map_send_error`](Self::map_send_error).
    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        let cookie_header = self.cookie_header();
        if cookie_header.is_empty() {
            request
        } else {
            request.header(reqwest::header::COOKIE, cookie_header)
        }
    }

    /// Sends one SOAP request and classifies the answer.
    ///
    /// With `detach`, the elements at its path go to it while the response is parsed instead of
    /// into the returned tree (see [`parse_detaching`]).
    pub async fn post(
        &self,
        method: &str,
        inner: &str,
        detach: Option<&mut dyn Detach>,
    ) -> Result<Reply, EsxiError> {
        let body = envelope(method, inner);
        let cookie_header = self.cookie_header();
        let soap_action = self
            .soap_action
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", soap_action)
            .body(body);
        if !cookie_header.is_empty() {
            request = request.header(reqwest::header::COOKIE, cookie_header);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let response = request.send().await.map_err(|e| self.map_send_error(&e))?;
        self.store_cookies(response.headers());
        let status = response.status();
        // The body is parsed where it lies: vim25 speaks UTF-8, so decoding (as `text()` would)
        // only copies a response that can be several MiB for a large inventory.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.map_send_error(&e))?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        tracing::debug!(
            method,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "SOAP call"
        );
        if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::INTERNAL_SERVER_ERROR
        {
            return Err(self.http_error(method, status, text));
        }
        let parsed = parse_detaching(text, detach).and_then(unwrap_body);
        match parsed {
            Ok(reply) => Ok(reply),
            Err(_) if status != reqwest::StatusCode::OK => {
                Err(self.http_error(method, status, text))
            }
            Err(message) => Err(EsxiError::Protocol {
                address: self.address.clone(),
                method: method.to_owned(),
                message,
            }),
        }
    }

    fn http_error(&self, method: &str, status: reqwest::StatusCode, text: &str) -> EsxiError {
        // Something between ceso and the host (a proxy, a wrong endpoint) may echo the request
        // back: the answer to a login could hold the password.
        let body = if method == "Login" {
            format!("(not shown: {} bytes answering a login)", text.len())
        } else {
            let mut body: String = text.chars().take(300).collect();
            if body.len() < text.len() {
                body.push('…');
            }
            body
        };
        EsxiError::Http {
            address: self.address.clone(),
            method: method.to_owned(),
            status: status.as_u16(),
            body,
        }
    }

    fn store_cookies(&self, headers: &reqwest::header::HeaderMap) {
        let mut new = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .peekable();
        if new.peek().is_none() {
            return;
        }
        let mut cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, v) in new {
            cookies.retain(|(name, _)| *name != k);
            cookies.push((k, v));
        }
    }

    /// Explains a failed request: a thumbprint problem if the verifier saw one, else the chain.
    pub fn map_send_error(&self, e: &reqwest::Error) -> EsxiError {
        if let Some(state) = &self.trust
            && let Some(der) = state.seen_certificate()
        {
            let presented = HostCertificate::from_der(&der);
            match &state.mode {
                TrustMode::Pinned(expected) if *expected != presented.thumbprint => {
                    return EsxiError::ThumbprintMismatch {
                        address: self.address.clone(),
                        expected: expected.clone(),
                        actual: presented.thumbprint,
                        certificate: presented.fields.map(Box::new),
                    };
                }
                TrustMode::Probe => {
                    return EsxiError::NoTrust {
                        address: self.address.clone(),
                        actual: presented.thumbprint,
                        certificate: presented.fields.map(Box::new),
                    };
                }
                _ => {}
            }
        }
        let mut message = error_chain(e);
        if message.contains("BadSignature") {
            // ring refuses RSA keys under 2048 bits (e.g. Go's httptest LocalhostCert).
            message.push_str(
                " (the host's TLS handshake signature could not be verified; certificates with \
                 RSA keys shorter than 2048 bits are not supported)",
            );
        }
        EsxiError::Network {
            address: self.address.clone(),
            message,
        }
    }
}

/// An error and its sources, joined by `: ` (reqwest's own message alone says little).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_normalize() {
        let canonical = "44:8F:62:8A:8A:65:AA:18:56:0E:53:A8:0C:53:AC:B3:8C:51:B4:27:DF:03:34:08:23:49:14:11:47:DC:9B:F6";
        for input in [
            canonical.to_owned(),
            canonical.to_lowercase(),
            canonical.replace(':', ""),
            format!("sha256 Fingerprint={canonical}"),
            format!("  {}  ", canonical.to_lowercase()),
        ] {
            assert_eq!(
                normalize_thumbprint(&input).expect("valid"),
                canonical,
                "{input}"
            );
        }
        assert!(matches!(
            normalize_thumbprint("AA:BB"),
            Err(EsxiError::InvalidThumbprint { .. })
        ));
        let sha1 = "5D:BF:A8:44:1C:1B:3F:8C:43:D1:BD:2C:64:01:F0:0E:8C:86:02:11";
        let err = normalize_thumbprint(sha1).expect_err("sha1");
        assert!(err.to_string().contains("SHA-1"), "{err}");
        assert!(normalize_thumbprint(&canonical.replace('4', "g")).is_err());
    }

    #[test]
    fn addresses_normalize() {
        let n = |a: &str| normalize_address(a).map(|u| u.to_string());
        assert_eq!(n("https://esxi-01:443").expect("ok"), "https://esxi-01/sdk");
        assert_eq!(n("https://esxi-01/").expect("ok"), "https://esxi-01/sdk");
        assert_eq!(n("esxi-01").expect("ok"), "https://esxi-01/sdk");
        assert_eq!(
            n("https://127.0.0.1:8989/sdk").expect("ok"),
            "https://127.0.0.1:8989/sdk"
        );
        assert_eq!(
            n("http://[::1]:80/custom").expect("ok"),
            "http://[::1]/custom"
        );
        assert!(n("ftp://esxi-01").is_err());
        assert!(n("https://root:pw@esxi-01").is_err());
        assert!(n("").is_err());
    }

    #[test]
    fn loopback_detection() {
        let l = |a: &str| is_loopback(&normalize_address(a).expect("valid"));
        assert!(l("http://127.0.0.1:8080"));
        assert!(l("http://127.3.2.1"));
        assert!(l("http://[::1]:8080"));
        assert!(l("http://LOCALHOST"));
        assert!(!l("http://10.0.0.1"));
        assert!(!l("http://esxi-01"));
        assert!(!l("http://localhost.example.com"));
    }
}
