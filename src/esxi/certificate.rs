//! The certificate a host presents: fetched without trusting it, and described the way an
//! operator checks it (subject, issuer, validity, thumbprints) before pinning its SHA-256
//! thumbprint in a `Host` manifest.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::EsxiError;
use super::transport::{error_chain, normalize_address, thumbprint_of};

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
    /// Distinguished name of the subject, most specific first: `CN=esxi-01, O=VMware, C=US`.
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
            fields: der::certificate_fields(der),
        }
    }

    /// Whether the certificate names itself as its issuer (ESXi's default certificate does).
    pub fn is_self_signed(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| f.subject == f.issuer)
    }
}

/// `AB:CD:...`, as thumbprints are written.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let captured = Arc::new(Mutex::new(None));
    let verifier = CapturingVerifier {
        captured: Arc::clone(&captured),
        provider: Arc::clone(&provider),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| network(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .user_agent(concat!("ceso/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(config)
        .http1_only()
        .build()
        .map_err(|e| network(error_chain(&e)))?;
    let result = http.get(url.clone()).send().await;
    let der = captured
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match (der, result) {
        (Some(der), _) => Ok(HostCertificate::from_der(&der)),
        (None, Err(e)) => Err(network(error_chain(&e))),
        (None, Ok(_)) => Err(network("the host presented no certificate".to_owned())),
    }
}

/// Keeps the leaf certificate and refuses the handshake: only the certificate is wanted.
#[derive(Debug)]
struct CapturingVerifier {
    captured: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.captured.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(end_entity.as_ref().to_vec());
        Err(rustls::Error::General(
            "certificate fetched; the connection is not used".into(),
        ))
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

/// Just enough DER to read a certificate's subject, issuer and validity (RFC 5280 §4.1).
mod der {
    use jiff::Timestamp;
    use jiff::civil::DateTime;
    use jiff::tz::TimeZone;

    use super::CertificateFields;

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const INTEGER: u8 = 0x02;
    const OBJECT_IDENTIFIER: u8 = 0x06;
    const EXPLICIT_VERSION: u8 = 0xA0;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;

    /// Reads tag-length-value elements one after the other.
    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        /// The next element's tag and contents.
        fn next(&mut self) -> Option<(u8, &'a [u8])> {
            let (&tag, rest) = self.0.split_first()?;
            let (&first, rest) = rest.split_first()?;
            let (length, rest) = if first < 0x80 {
                (usize::from(first), rest)
            } else {
                // Long form; 0x80 (indefinite length) is not DER.
                let count = usize::from(first & 0x7F);
                if count == 0 || count > 4 || rest.len() < count {
                    return None;
                }
                let (digits, rest) = rest.split_at(count);
                let length = digits
                    .iter()
                    .fold(0usize, |n, &b| (n << 8) | usize::from(b));
                (length, rest)
            };
            if rest.len() < length {
                return None;
            }
            let (contents, rest) = rest.split_at(length);
            self.0 = rest;
            Some((tag, contents))
        }

        /// The next element's contents if it has `tag`.
        fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
            self.next().filter(|(t, _)| *t == tag).map(|(_, c)| c)
        }

        fn peek_tag(&self) -> Option<u8> {
            self.0.first().copied()
        }
    }

    /// Subject, issuer and validity of a DER certificate; `None` if it is not one.
    pub(super) fn certificate_fields(der: &[u8]) -> Option<CertificateFields> {
        let certificate = Reader(der).expect(SEQUENCE)?;
        let mut tbs = Reader(Reader(certificate).expect(SEQUENCE)?);
        if tbs.peek_tag() == Some(EXPLICIT_VERSION) {
            tbs.next()?;
        }
        tbs.expect(INTEGER)?; // serial number
        tbs.expect(SEQUENCE)?; // signature algorithm
        let issuer = name(tbs.expect(SEQUENCE)?)?;
        let mut validity = Reader(tbs.expect(SEQUENCE)?);
        let not_before = time(validity.next()?)?;
        let not_after = time(validity.next()?)?;
        let subject = name(tbs.expect(SEQUENCE)?)?;
        Some(CertificateFields {
            subject,
            issuer,
            not_before,
            not_after,
        })
    }

    /// A distinguished name as RFC 4514 writes it (most specific first), `, `-separated.
    fn name(contents: &[u8]) -> Option<String> {
        let mut relative_names = Vec::new();
        let mut sets = Reader(contents);
        while sets.peek_tag().is_some() {
            let mut attributes = Reader(sets.expect(SET)?);
            let mut parts = Vec::new();
            while attributes.peek_tag().is_some() {
                let mut attribute = Reader(attributes.expect(SEQUENCE)?);
                let oid = attribute.expect(OBJECT_IDENTIFIER)?;
                let (tag, value) = attribute.next()?;
                parts.push(format!("{}={}", attribute_name(oid)?, string(tag, value)));
            }
            relative_names.push(parts.join("+"));
        }
        relative_names.reverse();
        Some(relative_names.join(", "))
    }

    /// The short name of an attribute type, or its dotted OID.
    fn attribute_name(oid: &[u8]) -> Option<String> {
        let dotted = dotted_oid(oid)?;
        let short = match dotted.as_str() {
            "2.5.4.3" => "CN",
            "2.5.4.5" => "serialNumber",
            "2.5.4.6" => "C",
            "2.5.4.7" => "L",
            "2.5.4.8" => "ST",
            "2.5.4.9" => "street",
            "2.5.4.10" => "O",
            "2.5.4.11" => "OU",
            "1.2.840.113549.1.9.1" => "emailAddress",
            "1.2.840.113549.1.9.2" => "unstructuredName",
            "0.9.2342.19200300.100.1.1" => "UID",
            "0.9.2342.19200300.100.1.25" => "DC",
            _ => return Some(dotted),
        };
        Some(short.to_owned())
    }

    fn dotted_oid(contents: &[u8]) -> Option<String> {
        let mut arcs = Vec::new();
        let mut value: u64 = 0;
        for &byte in contents {
            value = value.checked_mul(128)? | u64::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                arcs.push(value);
                value = 0;
            }
        }
        let (&first, rest) = arcs.split_first()?;
        let (a, b) = match first {
            0..40 => (0, first),
            40..80 => (1, first - 40),
            _ => (2, first - 80),
        };
        let mut dotted = format!("{a}.{b}");
        for arc in rest {
            dotted.push_str(&format!(".{arc}"));
        }
        Some(dotted)
    }

    /// An attribute value: the directory string types as text, anything else as `#hex`.
    fn string(tag: u8, value: &[u8]) -> String {
        match tag {
            // UTF8String, PrintableString, IA5String, VisibleString
            0x0C | 0x13 | 0x16 | 0x1A => String::from_utf8_lossy(value).into_owned(),
            // TeletexString, in practice Latin-1
            0x14 => value.iter().map(|&b| char::from(b)).collect(),
            // BMPString: UTF-16BE
            0x1E => {
                let units: Vec<u16> = value
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            _ => format!("#{}", hex::encode(value)),
        }
    }

    /// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as DER writes them.
    fn time((tag, contents): (u8, &[u8])) -> Option<Timestamp> {
        let text = std::str::from_utf8(contents).ok()?.strip_suffix('Z')?;
        let full = match (tag, text.len()) {
            (UTC_TIME, 12) => {
                // RFC 5280: YY of 50 and above is 19YY, below 50 is 20YY.
                let century = if text < "50" { "20" } else { "19" };
                format!("{century}{text}")
            }
            (GENERALIZED_TIME, 14) => text.to_owned(),
            _ => return None,
        };
        if !full.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let field = |range: std::ops::Range<usize>| full[range].parse::<i16>().ok();
        let month = i8::try_from(field(4..6)?).ok()?;
        let day = i8::try_from(field(6..8)?).ok()?;
        let hour = i8::try_from(field(8..10)?).ok()?;
        let minute = i8::try_from(field(10..12)?).ok()?;
        let second = i8::try_from(field(12..14)?).ok()?;
        let datetime = DateTime::new(field(0..4)?, month, day, hour, minute, second, 0).ok()?;
        Some(datetime.to_zoned(TimeZone::UTC).ok()?.timestamp())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_of_both_encodings_are_read() {
            let utc = time((UTC_TIME, b"261127094917Z")).expect("utc time");
            assert_eq!(utc.to_string(), "2026-11-27T09:49:17Z");
            let old = time((UTC_TIME, b"990101000000Z")).expect("utc time");
            assert_eq!(old.to_string(), "1999-01-01T00:00:00Z");
            let generalized = time((GENERALIZED_TIME, b"21261103094917Z")).expect("generalized");
            assert_eq!(generalized.to_string(), "2126-11-03T09:49:17Z");
            assert_eq!(time((UTC_TIME, b"261327094917Z")), None, "month 13");
            assert_eq!(time((UTC_TIME, b"2611270949Z")), None, "no seconds");
            assert_eq!(time((UTC_TIME, b"261127094917+0100")), None, "not UTC");
        }

        #[test]
        fn object_identifiers_are_dotted() {
            assert_eq!(dotted_oid(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
            assert_eq!(
                dotted_oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]).as_deref(),
                Some("1.2.840.113549.1.9.1")
            );
            assert_eq!(dotted_oid(&[]), None);
        }

        #[test]
        fn truncated_elements_are_refused() {
            assert_eq!(Reader(&[SEQUENCE, 0x05, 0x01]).next(), None);
            assert_eq!(Reader(&[SEQUENCE, 0x80]).next(), None, "indefinite length");
            assert_eq!(Reader(&[SEQUENCE, 0x82, 0x01]).next(), None);
            let long = [&[SEQUENCE, 0x81, 0x02][..], &[7, 8]].concat();
            assert_eq!(Reader(&long).next(), Some((SEQUENCE, &[7u8, 8][..])));
        }

        #[test]
        fn strings_of_every_directory_type_are_text() {
            assert_eq!(string(0x0C, "Zürich".as_bytes()), "Zürich");
            assert_eq!(string(0x14, &[0x5A, 0xFC]), "Zü");
            assert_eq!(string(0x1E, &[0x00, 0x5A, 0x00, 0xFC]), "Zü");
            assert_eq!(string(0x04, &[0xAB, 0x01]), "#ab01");
        }
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
