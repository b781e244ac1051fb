//! The NFC side of an OVA import: waiting for the `HttpNfcLease`, and streaming each file to
//! the URL the lease names while keeping the lease alive with `HttpNfcLeaseProgress`.
//!
//! The protocol is govmomi's (`nfc/lease.go`, as `govc import.ova` and ovftool use it): a disk
//! (`create=false`) is POSTed as `application/x-vnd.vmware-streamVmdk`, any other file
//! (`create=true`) is PUT with `Overwrite: t`; both with a `Content-Length` and the session
//! cookie, over the same pinned TLS as the SOAP calls.

use std::io::SeekFrom;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::EsxiClient;
use super::envelope::method_body;
use super::fault::LocalizedFault;
use super::ovf::{ImportError, ImportProgress, Ova, Slice, hex};
use super::xml::{Element, MoRef};

/// Content type of a stream-optimized VMDK upload.
const STREAM_VMDK: &str = "application/x-vnd.vmware-streamVmdk";
/// Bytes read from the OVA per chunk sent.
const CHUNK: usize = 256 << 10;
/// How often the caller hears about progress.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// How often the lease is told the progress (which also keeps it from timing out).
const LEASE_PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// An upload during which nothing is sent or answered for this long is given up.
const STALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Limit of one upload request as a whole; stalls are caught by [`STALL_TIMEOUT`] instead
/// (the SOAP client's limit would cut off large disks on slow links).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// First and longest pause between polls of a lease that is still initializing.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One `deviceUrl` of a ready lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceUrl {
    /// Matches `fileItem.deviceId` of the import spec result.
    pub import_key: String,
    /// As the host wrote it, possibly with `*` as host name.
    pub url: String,
}

/// `info` of a ready lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseInfo {
    /// The VM being imported.
    pub entity: Option<MoRef>,
    pub devices: Vec<DeviceUrl>,
}

impl LeaseInfo {
    fn from_element(info: &Element) -> Self {
        Self {
            entity: info.child("entity").and_then(Element::as_moref),
            devices: info
                .children_named("deviceUrl")
                .map(|d| DeviceUrl {
                    import_key: d.child_text("importKey").unwrap_or_default().to_owned(),
                    url: d.child_text("url").unwrap_or_default().trim().to_owned(),
                })
                .collect(),
        }
    }
}

/// One file to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    /// Its name in the OVA.
    pub file: String,
    pub url: reqwest::Url,
    pub slice: Slice,
    /// `fileItem.create`: a file other than a disk, sent with PUT.
    pub create: bool,
}

/// The URL to send a file to. Hosts write `*` for "the address you reached me at" (the
/// simulator also writes `https` when it serves plain http): such a URL takes the host, port
/// and scheme of the SOAP address.
pub(crate) fn upload_url(device_url: &str, sdk_address: &str) -> Result<reqwest::Url, ImportError> {
    let bad = |reason: String| ImportError::BadUploadUrl {
        url: device_url.to_owned(),
        reason,
    };
    let mut url = reqwest::Url::parse(device_url).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not an http(s) URL".into()));
    }
    if url.host_str() == Some("*") {
        let sdk = reqwest::Url::parse(sdk_address).map_err(|e| bad(e.to_string()))?;
        url.set_scheme(sdk.scheme())
            .map_err(|()| bad("cannot take the client's scheme".into()))?;
        url.set_host(sdk.host_str())
            .map_err(|e| bad(e.to_string()))?;
        url.set_port(sdk.port())
            .map_err(|()| bad("cannot take the client's port".into()))?;
    }
    Ok(url)
}

impl EsxiClient {
    /// Polls the lease until it leaves `initializing` (up to the task timeout).
    pub(crate) async fn wait_for_lease(&self, lease: &MoRef) -> Result<LeaseInfo, ImportError> {
        let deadline = Instant::now() + self.task_timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let o = self
                .retrieve_one(lease, &["state", "error", "info"])
                .await
                .map_err(|source| ImportError::Host {
                    step: "waiting for the import lease",
                    source,
                })?
                .ok_or_else(|| ImportError::Lease {
                    message: format!("the lease {} vanished", lease.value),
                })?;
            match o.prop_text("state").map(str::trim) {
                Some("ready") => {
                    let info = o.prop("info").ok_or_else(|| ImportError::Lease {
                        message: "the ready lease has no info".into(),
                    })?;
                    return Ok(LeaseInfo::from_element(info));
                }
                Some("error") => {
                    let message = o
                        .prop("error")
                        .map(LocalizedFault::from_element)
                        .map(|f| {
                            if f.message.is_empty() {
                                f.fault
                            } else {
                                format!("{}: {}", f.fault, f.message)
                            }
                        })
                        .unwrap_or_else(|| "no details".into());
                    return Err(ImportError::Lease { message });
                }
                Some("initializing") | None => {}
                Some(other) => {
                    return Err(ImportError::Lease {
                        message: format!("unexpected lease state {other:?}"),
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ImportError::LeaseTimeout {
                    timeout: self.task_timeout,
                });
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends the files one after the other, reporting progress and keeping the lease alive.
    /// Returns the bytes sent.
    pub(crate) async fn upload_all(
        &self,
        lease: &MoRef,
        ova: &Ova,
        uploads: &[Upload],
        progress: &(dyn Fn(ImportProgress) + Sync),
    ) -> Result<u64, ImportError> {
        let total: u64 = uploads.iter().map(|u| u.slice.size).sum();
        let mut done = 0;
        for upload in uploads {
            let sent = Arc::new(AtomicU64::new(0));
            let transfer = self.upload(ova, upload, Arc::clone(&sent));
            let watch = self.watch_upload(lease, &upload.file, done, total, &sent, progress);
            tokio::select! {
                result = transfer => result?,
                stalled = watch => return Err(stalled),
            }
            done += upload.slice.size;
            progress(ImportProgress::Uploading {
                file: upload.file.clone(),
                sent_bytes: done,
                total_bytes: total,
            });
        }
        Ok(done)
    }

    /// Runs beside an upload: reports progress, tells the lease every few seconds, and gives
    /// up (returns) when nothing moved for [`STALL_TIMEOUT`].
    async fn watch_upload(
        &self,
        lease: &MoRef,
        file: &str,
        done: u64,
        total: u64,
        sent: &AtomicU64,
        progress: &(dyn Fn(ImportProgress) + Sync),
    ) -> ImportError {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_sent = None;
        let mut last_change = Instant::now();
        let mut last_lease_update = Instant::now();
        loop {
            tick.tick().await;
            let now_sent = sent.load(Ordering::Relaxed);
            if last_sent != Some(now_sent) {
                last_sent = Some(now_sent);
                last_change = Instant::now();
                progress(ImportProgress::Uploading {
                    file: file.to_owned(),
                    sent_bytes: done + now_sent,
                    total_bytes: total,
                });
            } else if last_change.elapsed() >= STALL_TIMEOUT {
                return ImportError::UploadStalled {
                    file: file.to_owned(),
                    timeout: STALL_TIMEOUT,
                };
            }
            if last_lease_update.elapsed() >= LEASE_PROGRESS_EVERY {
                last_lease_update = Instant::now();
                let percent = (done + now_sent)
                    .saturating_mul(100)
                    .checked_div(total)
                    .map_or(100, |p| p.min(100));
                let mut w = method_body(lease);
                w.leaf("percent", &percent.to_string());
                if let Err(e) = self.call("HttpNfcLeaseProgress", &w.finish()).await {
                    tracing::warn!(error = %e, "telling the import lease its progress failed");
                }
            }
        }
    }

    /// Streams one file's byte range of the OVA to the host (constant memory), checking it
    /// against the OVA's manifest on the way.
    async fn upload(
        &self,
        ova: &Ova,
        upload: &Upload,
        sent: Arc<AtomicU64>,
    ) -> Result<(), ImportError> {
        let read_error = |source| ImportError::Read {
            path: ova.path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&ova.path).await.map_err(read_error)?;
        file.seek(SeekFrom::Start(upload.slice.offset))
            .await
            .map_err(read_error)?;
        let checksum = ova.checksum(&upload.file);
        let digest = checksum
            .map(|c| Arc::new(Mutex::new(ring::digest::Context::new(c.digest_algorithm()))));
        let stream_digest = digest.clone();
        let counter = Arc::clone(&sent);
        let body = ReaderStream::with_capacity(file.take(upload.slice.size), CHUNK).inspect_ok(
            move |chunk| {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if let Some(digest) = &stream_digest {
                    digest
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .update(chunk);
                }
            },
        );
        let (method, content_type) = if upload.create {
            (reqwest::Method::PUT, "application/octet-stream")
        } else {
            (reqwest::Method::POST, STREAM_VMDK)
        };
        let mut request = self
            .transport
            .request(method, upload.url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, upload.slice.size)
            .timeout(UPLOAD_TIMEOUT)
            .body(reqwest::Body::wrap_stream(body));
        if upload.create {
            request = request.header("Overwrite", "t");
        }
        tracing::debug!(file = upload.file, url = %upload.url, size = upload.slice.size, "NFC upload");
        let failed = |e: &reqwest::Error| ImportError::UploadFailed {
            file: upload.file.clone(),
            url: upload.url.to_string(),
            source: Box::new(self.transport.map_send_error(e)),
        };
        let response = request.send().await.map_err(|e| failed(&e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let mut body: String = text.chars().take(300).collect();
            if body.len() < text.len() {
                body.push('…');
            }
            return Err(ImportError::UploadRefused {
                file: upload.file.clone(),
                url: upload.url.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        let sent = sent.load(Ordering::Relaxed);
        if sent != upload.slice.size {
            return Err(ImportError::UploadShort {
                file: upload.file.clone(),
                sent,
                size: upload.slice.size,
            });
        }
        if let (Some(manifest), Some(digest)) = (&ova.manifest, digest) {
            let context = Arc::try_unwrap(digest)
                .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
                .unwrap_or_else(|shared| {
                    shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone()
                });
            manifest.check(&upload.file, &hex(context.finish().as_ref()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::esxi::ConnectOptions;
    use crate::esxi::ovf::{Checksum, Manifest, OvfDescriptor};
    use crate::secret::Secret;

    /// One HTTP request as a loopback host received it.
    #[derive(Debug, Clone)]
    struct Received {
        /// Request line and headers, lowercase.
        head: String,
        body: Vec<u8>,
    }

    /// A loopback host: answers the SOAP calls of `connect` (with a session cookie), and
    /// answers every other request with `status` and `reply`, recording it.
    async fn host(status: u16, reply: &'static str) -> (String, Arc<Mutex<Vec<Received>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}/sdk", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if n == 0 {
                            return;
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length || n == 0 {
                        break (head, buf[end + 4..].to_vec());
                    }
                };
                let (status, extra, reply) = if head.starts_with("post /sdk") {
                    let body = String::from_utf8_lossy(&body);
                    if body.contains("<RetrieveServiceContent") {
                        (200, "", include_str!("testdata/service_content.xml"))
                    } else {
                        (
                            200,
                            "Set-Cookie: vmware_soap_session=\"52c0ffee\"; Path=/; HttpOnly\r\n",
                            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><LoginResponse xmlns="urn:vim25"><returnval></returnval></LoginResponse></soapenv:Body></soapenv:Envelope>"#,
                        )
                    }
                } else {
                    log.lock().expect("log").push(Received { head, body });
                    (status, "", reply)
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        (address, received)
    }

    async fn client(address: &str) -> EsxiClient {
        EsxiClient::connect(ConnectOptions {
            address: address.to_owned(),
            thumbprint: None,
            insecure: false,
            username: "root".into(),
            password: Secret::new("pw"),
            task_timeout: Duration::from_secs(5),
        })
        .await
        .expect("connect")
    }

    /// An OVA stand-in: `prefix` junk bytes, then the disk bytes at a known offset.
    fn ova(dir: &Path, disk: &[u8], checksum: &str) -> Ova {
        let path = dir.join("test.ova");
        let mut bytes = vec![b'#'; 100];
        bytes.extend_from_slice(disk);
        bytes.extend_from_slice(&[b'#'; 50]);
        std::fs::write(&path, bytes).expect("write");
        let descriptor_text =
            "<Envelope><VirtualSystem><VirtualHardwareSection/></VirtualSystem></Envelope>";
        Ova {
            path,
            descriptor_name: "test.ovf".into(),
            descriptor_text: descriptor_text.into(),
            descriptor: OvfDescriptor::parse(descriptor_text).expect("descriptor"),
            entries: BTreeMap::new(),
            manifest: Some(Manifest {
                name: "test.mf".into(),
                sums: BTreeMap::from([(
                    "disk.vmdk".to_owned(),
                    Checksum {
                        algorithm: "SHA256".into(),
                        hex: checksum.into(),
                    },
                )]),
            }),
        }
    }

    fn sha256(bytes: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    }

    fn upload(address: &str, disk: &[u8], create: bool) -> Upload {
        Upload {
            file: "disk.vmdk".into(),
            url: upload_url("https://*/nfc/52a1/disk-0.vmdk", address).expect("url"),
            slice: Slice {
                offset: 100,
                size: disk.len() as u64,
            },
            create,
        }
    }

    #[tokio::test]
    async fn a_disk_is_posted_as_a_stream_vmdk_with_length_and_session() {
        let (address, received) = host(200, "").await;
        let client = client(&address).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let disk: Vec<u8> = (0..(CHUNK * 3 + 17)).map(|i| (i % 251) as u8).collect();
        let ova = ova(dir.path(), &disk, &sha256(&disk));
        let sent = Arc::new(AtomicU64::new(0));
        client
            .upload(&ova, &upload(&address, &disk, false), Arc::clone(&sent))
            .await
            .expect("upload");
        assert_eq!(sent.load(Ordering::Relaxed), disk.len() as u64);
        let seen = received.lock().expect("log").clone();
        let [request] = seen.as_slice() else {
            panic!("one request expected: {seen:?}")
        };
        assert!(
            request
                .head
                .starts_with("post /nfc/52a1/disk-0.vmdk http/1.1"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .contains("content-type: application/x-vnd.vmware-streamvmdk"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .contains(&format!("content-length: {}", disk.len())),
            "{}",
            request.head
        );
        assert!(
            !request.head.contains("transfer-encoding"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .contains("cookie: vmware_soap_session=\"52c0ffee\""),
            "{}",
            request.head
        );
        assert_eq!(request.body, disk, "exactly the disk's byte range");
    }

    #[tokio::test]
    async fn other_files_are_put_and_refusals_and_damage_are_reported() {
        let (address, received) = host(500, "Error: disk is full").await;
        let client = client(&address).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = b"an ISO image".to_vec();
        let ova = ova(dir.path(), &disk, &sha256(&disk));
        let err = client
            .upload(
                &ova,
                &upload(&address, &disk, true),
                Arc::new(AtomicU64::new(0)),
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, ImportError::UploadRefused { status: 500, body, .. } if body == "Error: disk is full"),
            "{err}"
        );
        let head = received.lock().expect("log")[0].head.clone();
        assert!(head.starts_with("put /nfc/52a1/disk-0.vmdk"), "{head}");
        assert!(head.contains("overwrite: t"), "{head}");

        let (address, _) = host(200, "").await;
        let client = self::client(&address).await;
        let damaged = self::ova(dir.path(), &disk, &sha256(b"what the manifest promised"));
        let err = client
            .upload(
                &damaged,
                &upload(&address, &disk, false),
                Arc::new(AtomicU64::new(0)),
            )
            .await
            .expect_err("damaged");
        assert!(matches!(err, ImportError::ChecksumMismatch { .. }), "{err}");
    }

    #[test]
    fn star_urls_take_the_client_address() {
        let url = |device: &str, sdk: &str| upload_url(device, sdk).map(|u| u.to_string());
        assert_eq!(
            url(
                "https://*/nfc/52a1/disk-0.vmdk",
                "http://127.0.0.1:8989/sdk"
            )
            .expect("ok"),
            "http://127.0.0.1:8989/nfc/52a1/disk-0.vmdk"
        );
        assert_eq!(
            url("https://*:443/nfc/52a1/disk-0.vmdk", "https://esxi-01/sdk").expect("ok"),
            "https://esxi-01/nfc/52a1/disk-0.vmdk"
        );
        assert_eq!(
            url("https://*/nfc/x/disk.vmdk", "https://[::1]:9443/sdk").expect("ok"),
            "https://[::1]:9443/nfc/x/disk.vmdk"
        );
        // A URL naming a host is kept as it is.
        assert_eq!(
            url("https://10.0.0.5/nfc/x/disk.vmdk", "https://esxi-01/sdk").expect("ok"),
            "https://10.0.0.5/nfc/x/disk.vmdk"
        );
        assert!(matches!(
            upload_url("ftp://*/x", "https://esxi-01/sdk"),
            Err(ImportError::BadUploadUrl { .. })
        ));
    }

    #[test]
    fn lease_info_is_read() {
        let info = crate::esxi::xml::parse(
            r#"<val><lease type="HttpNfcLease">52a1</lease><entity type="VirtualMachine">vm-42</entity><deviceUrl><key>/vm-42/VirtualLsiLogicController0:0</key><importKey>/ubuntu/disk:0</importKey><url>https://*/nfc/52a1/disk-0.vmdk</url><sslThumbprint></sslThumbprint><disk>true</disk><targetId>disk-0.vmdk</targetId></deviceUrl></val>"#,
        )
        .expect("xml");
        assert_eq!(
            LeaseInfo::from_element(&info),
            LeaseInfo {
                entity: Some(MoRef::new("VirtualMachine", "vm-42")),
                devices: vec![DeviceUrl {
                    import_key: "/ubuntu/disk:0".into(),
                    url: "https://*/nfc/52a1/disk-0.vmdk".into(),
                }],
            }
        );
    }
}
