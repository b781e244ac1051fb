//! The certificate a host presents: fetched without trusting it, and described the way an
//! operator checks it (subject, issuer, validity, thumbprints) before pinning its SHA-256
//! thumbprint in a `Host` manifest.

use std::time::Duration;

use jiff::Timestamp;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::name::Name;

use super::error::EsxiError;
use super::transport::{
    TrustMode, TrustState, colon_hex, error_chain, http_client, normalize_address, thumbprint_of,
};

/// Time allowed to connect and receive the certificate.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// The leaf certificate a host presented, described for a person to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCertificate {
    /// SHA-256 thumbprint, `AB:CD:...`: the format of `thumbprint` in `Host` manifests.
    pub thumbprint: String,
    /// SHA-1 thumbprint, `AB:CD:...`: what older DCUIs and vSphere clients show. For comparing
    /// only; ceso pins SHA-256.
    pub thumbprint_sha1: String,
    /// Subject, issuer and validity; `None` when the certificate could not be decoded (the
    /// thumbprints are still exact).
    pub fields: Option<CertificateFields>,
}

/// What the certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFields {
    /// Distinguished name of the subject, most specific first (RFC 4514, each relative name
    /// separated by `, `): `CN=esxi-01, O=VMware\, Inc., C=US`.
    pub subject: String,
    /// Distinguished name of the issuer, in the same form.
    pub issuer: String,
    /// Start of the validity period.
    pub not_before: Timestamp,
    /// End of the validity period.
    pub not_after: Timestamp,
}

impl HostCertificate {
    /// Describes a DER-encoded X.509 certificate.
    pub fn from_der(der: &[u8]) -> Self {
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        Self {
            thumbprint: thumbprint_of(der),
            thumbprint_sha1: colon_hex(sha1.as_ref()),
            fields: CertificateFields::from_der(der),
        }
    }

    /// Whether the certificate names itself as its issuer (ESXi's default certificate does).
    pub fn is_self_signed(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| f.subject == f.issuer)
    }
}

impl CertificateFields {
    /// Subject, issuer and validity of a DER-encoded X.509 certificate; `None` if it is not one.
    fn from_der(der: &[u8]) -> Option<Self> {
        let certificate = Certificate::from_der(der).ok()?;
        let tbs = certificate.tbs_certificate();
        let timestamp = |time: x509_cert::time::Time| {
            let seconds = i64::try_from(time.to_unix_duration().as_secs()).ok()?;
            Timestamp::from_second(seconds).ok()
        };
        Some(Self {
            subject: distinguished_name(tbs.subject()),
            issuer: distinguished_name(tbs.issuer()),
            not_before: timestamp(tbs.validity().not_before)?,
            not_after: timestamp(tbs.validity().not_after)?,
        })
    }
}

/// `subject CN=esxi-01; issuer CN=esxi-01; valid from 2026-01-05 10:00:00 UTC to ...`
impl std::fmt::Display for CertificateFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let utc = |timestamp: Timestamp| timestamp.strftime("%Y-%m-%d %H:%M:%S UTC");
        write!(
            f,
            "subject {}; issuer {}; valid from {} to {}",
            self.subject,
            self.issuer,
            utc(self.not_before),
            utc(self.not_after)
        )
    }
}

/// A name as RFC 4514 writes it (most specific first, values escaped), with `, ` between the
/// relative names for reading.
fn distinguished_name(name: &Name) -> String {
    let mut relative_names: Vec<String> = name.iter_rdn().map(ToString::to_string).collect();
    relative_names.reverse();
    relative_names.join(", ")
}

/// Connects to the host (`HOST`, `HOST:PORT` or `https://HOST[:PORT]`, as `Host` manifests
/// write `address`) and returns the leaf certificate it presents. The handshake is aborted as
/// soon as the certificate arrives: nothing is sent to the host, and nothing is trusted.
pub async fn fetch_certificate(address: &str) -> Result<HostCertificate, EsxiError> {
    let url = normalize_address(address)?;
    if url.scheme() != "https" {
        return Err(EsxiError::InvalidAddress {
            address: address.to_owned(),
            reason: "plain http:// presents no certificate; use https://".to_owned(),
        });
    }
    let network = |message: String| EsxiError::Network {
        address: url.to_string(),
        message,
    };
    let trust = TrustState::new(TrustMode::Probe);
    let http = http_client(&trust, FETCH_TIMEOUT, FETCH_TIMEOUT).map_err(network)?;
    let result = http.get(url.clone()).send().await;
    match (trust.seen_certificate(), result) {
        (Some(der), _) => Ok(HostCertificate::from_der(&der)),
        (None, Err(e)) => Err(network(error_chain(&e))),
        (None, Ok(_)) => Err(network("the host presented no certificate".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    /// The demo certificate of `tests/demo.sh` (self-signed, CN=localhost).
    fn demo_certificate() -> Vec<u8> {
        let pem = include_str!("../../tests/esxsim/demo/demo-cert.pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("PEM body is base64")
    }

    #[test]
    fn a_certificate_is_described_as_openssl_describes_it() {
        let certificate = HostCertificate::from_der(&demo_certificate());
        // `openssl x509 -in tests/esxsim/demo/demo-cert.pem -noout -fingerprint -sha256` (-sha1)
        assert_eq!(
            certificate.thumbprint,
            "F9:2D:B6:2D:F6:34:90:F9:88:5A:25:59:8B:18:00:67:0A:C9:DA:7A:AD:9E:23:A9:AF:D2:85:E9:B0:91:8C:31"
        );
        assert_eq!(
            certificate.thumbprint_sha1,
            "F1:6B:5D:E2:22:09:24:76:88:A5:A4:1E:79:87:B5:2D:46:1C:74:9A"
        );
        let fields = certificate.fields.as_ref().expect("decoded");
        assert_eq!(fields.subject, "CN=localhost");
        assert_eq!(fields.issuer, "CN=localhost");
        assert_eq!(fields.not_before.to_string(), "2026-11-27T09:49:17Z");
        assert_eq!(fields.not_after.to_string(), "2126-11-03T09:49:17Z");
        assert!(certificate.is_self_signed());
    }

    /// A version 1 certificate shaped like ESXi's default one (a `+`-joined relative name, a
    /// comma in a value, UTF-8, GeneralizedTime after 2049), issued by `CN=Lab CA, O=Lab`.
    /// Attribute names are x509-cert's RFC 4514 keywords (upper case; `EMAIL`,
    /// `PKCS-9-AT-UNSTRUCTUREDNAME`).
    const ISSUED_BY_A_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIICDTCCAbQCFGJ39bEv9CazO/mrsNC8/R0BebwkMAoGCCqGSM49BAMCMB8xDDAK
BgNVBAoMA0xhYjEPMA0GA1UEAwwGTGFiIENBMCAXDTI2MTEyNzE3MDYxMFoYDzIx
MjYxMTAzMTcwNjEwWjCB8TELMAkGA1UEBhMCVVMxEzARBgNVBAgMCkNhbGlmb3Ju
aWExEjAQBgNVBAcMCVBhbG8gQWx0bzEVMBMGA1UECgwMVk13YXJlLCBJbmMuMS4w
LAYDVQQLDCVWTXdhcmUgRVNYIFNlcnZlciBEZWZhdWx0IENlcnRpZmljYXRlMSow
KAYJKoZIhvcNAQkBFhtzc2wtY2VydGlmaWNhdGVzQHZtd2FyZS5jb20xNDAWBgkq
hkiG9w0BCQIMCTEyMzQtNTY3ODAaBgNVBAMME2VzeGktMDEubGFiLmV4YW1wbGUx
EDAOBgNVBAcMB1rDvHJpY2gwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASb//nH
bVsejO919Lv67ijbiOJq6hJQGm7SiH3xhc8AIZTu5Naj0Y7Jj4m5yliJTwodhvuP
EjL4njiyZdKDUhtTMAoGCCqGSM49BAMCA0cAMEQCIBck94VtGXVPaLBh9zl9xBaI
fpaVtqwfyWUrv5RPryL7AiAP0QNe4mSrufFc8nIqZoBK7HpR16l5zXzThynLeoC3
6A==
-----END CERTIFICATE-----";

    #[test]
    fn names_are_written_most_specific_first_with_rfc_4514_escapes() {
        let body: String = ISSUED_BY_A_CA
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("PEM body is base64");
        let certificate = HostCertificate::from_der(&der);
        // `openssl x509 -noout -fingerprint -sha256` (-sha1)
        assert_eq!(
            certificate.thumbprint,
            "6C:FC:F3:0C:03:BB:F0:AA:D3:91:4B:EC:82:4B:83:69:58:54:BC:90:21:2E:59:C7:A0:0C:0A:83:6F:B2:BC:72"
        );
        assert_eq!(
            certificate.thumbprint_sha1,
            "30:0F:4F:7F:32:3B:71:A5:D0:08:BE:05:8B:DE:F3:B4:04:24:47:CB"
        );
        let fields = certificate.fields.as_ref().expect("decoded");
        assert_eq!(
            fields.subject,
            "L=Zürich, PKCS-9-AT-UNSTRUCTUREDNAME=1234-5678+CN=esxi-01.lab.example, \
             EMAIL=ssl-certificates@vmware.com, OU=VMware ESX Server Default Certificate, \
             O=VMware\\, Inc., L=Palo Alto, ST=California, C=US"
        );
        assert_eq!(fields.issuer, "CN=Lab CA, O=Lab");
        assert_eq!(fields.not_before.to_string(), "2026-11-27T17:06:10Z");
        assert_eq!(fields.not_after.to_string(), "2126-11-03T17:06:10Z");
        assert!(!certificate.is_self_signed());
        assert_eq!(
            fields.to_string(),
            format!(
                "subject {}; issuer CN=Lab CA, O=Lab; valid from 2026-11-27 17:06:10 UTC to \
                 2126-11-03 17:06:10 UTC",
                fields.subject
            )
        );
    }

    #[test]
    fn what_is_not_a_certificate_still_has_thumbprints() {
        let certificate = HostCertificate::from_der(b"not a certificate");
        assert_eq!(certificate.fields, None);
        assert_eq!(certificate.thumbprint.len(), 95);
        assert!(!certificate.is_self_signed());
    }

    #[tokio::test]
    async fn nothing_listening_is_a_network_error_naming_the_address() {
        let error = fetch_certificate("127.0.0.1:1")
            .await
            .expect_err("nothing listens on port 1");
        assert!(matches!(error, EsxiError::Network { .. }), "{error}");
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }

    #[tokio::test]
    async fn plain_http_has_no_certificate() {
        let error = fetch_certificate("http://127.0.0.1:1")
            .await
            .expect_err("http");
        assert!(error.to_string().contains("use https://"), "{error}");
    }
}
