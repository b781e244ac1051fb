//! The error type of the ESXi client.

use std::time::Duration;

use super::certificate::CertificateFields;

/// Everything that can go wrong talking to an ESXi host.
///
/// No variant ever holds the password.
#[derive(Debug, thiserror::Error)]
pub enum EsxiError {
    /// The configured address is not a usable URL.
    #[error("invalid ESXi address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The configured thumbprint is not a SHA-256 fingerprint.
    #[error(
        "invalid certificate thumbprint {thumbprint:?}: {reason} (expected the SHA-256 fingerprint \
         of the host certificate: 32 hex bytes such as \"AB:CD:...\")"
    )]
    InvalidThumbprint {
        /// The thumbprint as configured.
        thumbprint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Plain `http://` to a host that is not loopback.
    #[error(
        "refusing plain http:// to {address}: the session cookie and password would cross the \
         network unencrypted; use https:// (plain http is only allowed to loopback addresses)"
    )]
    PlainHttpRefused {
        /// The address as configured.
        address: String,
    },

    /// Neither a thumbprint nor `insecure` is configured: the host's identity cannot be checked.
    #[error(
        "no trust configured for {address}: the host presented a certificate with SHA-256 \
         thumbprint {actual}{described}. Verify it out of band (DCUI / host console, or \
         `{hint}`) and set `thumbprint: \"{actual}\"`, or set `insecure: true` to skip \
         verification (not recommended)",
        hint = openssl_hint(.address),
        described = described(.certificate)
    )]
    NoTrust {
        /// The normalized URL of the host.
        address: String,
        /// The SHA-256 thumbprint the host presented, `AB:CD:...`.
        actual: String,
        /// Subject, issuer and validity of the certificate presented, when it could be decoded.
        certificate: Option<Box<CertificateFields>>,
    },

    /// The host's certificate does not match the pinned thumbprint.
    #[error(
        "certificate of {address} does NOT match the pinned thumbprint: expected {expected}, got \
         {actual}{described}. The host may be an impostor (man-in-the-middle), or its \
         certificate was regenerated. Check the real thumbprint on the host (DCUI / console, or `{hint}`) and \
         update `thumbprint` only if they match",
        hint = openssl_hint(.address),
        described = described(.certificate)
    )]
    ThumbprintMismatch {
        /// The normalized URL of the host.
        address: String,
        /// The pinned thumbprint, `AB:CD:...`.
        expected: String,
        /// The thumbprint the host presented, `AB:CD:...`.
        actual: String,
        /// Subject, issuer and validity of the certificate presented, when it could be decoded.
        certificate: Option<Box<CertificateFields>>,
    },

    /// Connecting or talking HTTP failed (DNS, refused, TLS, timeout, reset).
    #[error("cannot reach ESXi host {address}: {message}")]
    Network {
        /// The normalized URL of the host.
        address: String,
        /// The error chain.
        message: String,
    },

    /// The host answered with an HTTP status that is neither a result nor a SOAP fault.
    #[error("ESXi host {address} answered {method} with HTTP {status}: {body}")]
    Http {
        /// The normalized URL of the host.
        address: String,
        /// The SOAP method.
        method: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// The response could not be understood.
    #[error("unexpected response from {address} to {method}: {message}")]
    Protocol {
        /// The normalized URL of the host.
        address: String,
        /// The SOAP method.
        method: String,
        /// What was wrong.
        message: String,
    },

    /// Wrong user name or password.
    #[error("login to {address} as {username:?} failed: wrong user name or password")]
    LoginFailed {
        /// The normalized URL of the host.
        address: String,
        /// The user name (never the password).
        username: String,
    },

    /// The host has a free licence, whose API is read-only.
    #[error(
        "{method} was refused by {address} (RestrictedVersion): the host runs the free ESXi \
         licence, which makes the vSphere API read-only. Writes need a paid licence (or the SSH \
         path)"
    )]
    RestrictedVersion {
        /// The normalized URL of the host.
        address: String,
        /// The SOAP method (or task) that was refused.
        method: String,
    },

    /// A SOAP fault (HTTP 500) other than the ones with their own variant.
    #[error("{method} failed: {fault}{}", fmt_message(.message))]
    Fault {
        /// The SOAP method.
        method: String,
        /// vim25 fault type, e.g. `InvalidPowerState`.
        fault: String,
        /// The server's message (may be empty).
        message: String,
    },

    /// A task finished in state `error`.
    #[error("{task} on {entity} failed: {fault}{}", fmt_message(.message))]
    TaskFailed {
        /// The method that started the task, e.g. `PowerOnVM_Task`.
        task: String,
        /// The VM the task worked on.
        entity: String,
        /// vim25 fault type of `info.error.fault`, e.g. `InvalidPowerState`.
        fault: String,
        /// `info.error.localizedMessage`.
        message: String,
    },

    /// A task did not finish in time. It may still be running on the host.
    #[error(
        "{task} on {entity} did not finish within {timeout:?}; it may still be running on the host"
    )]
    TaskTimeout {
        /// The method that started the task.
        task: String,
        /// The VM the task worked on.
        entity: String,
        /// The configured task timeout.
        timeout: Duration,
    },

    /// No VM with this name exists.
    #[error("VM {vm:?} not found on the host")]
    VmNotFound {
        /// The VM name looked for.
        vm: String,
    },

    /// Several VMs have this name and no moref was given.
    #[error("several VMs are named {vm:?} ({}); cannot tell which one is meant", .morefs.join(", "))]
    AmbiguousVm {
        /// The VM name looked for.
        vm: String,
        /// The morefs of all VMs with that name.
        morefs: Vec<String>,
    },

    /// The VM has no device with this key (for a disk or NIC change).
    #[error("VM {vm:?} has no {what} with device key {key}")]
    DeviceNotFound {
        /// The VM name.
        vm: String,
        /// `disk` or `network adapter`.
        what: &'static str,
        /// The device key.
        key: i32,
    },

    /// The requested change cannot be expressed (e.g. no free SCSI unit number).
    #[error("cannot build the change for VM {vm:?}: {message}")]
    InvalidSpec {
        /// The VM name.
        vm: String,
        /// What is wrong.
        message: String,
    },

    /// A destroy was refused because the VM is not ceso's to destroy.
    #[error("refusing to destroy VM {vm:?} ({moref}): {reason}; nothing was changed")]
    DestroyRefused {
        /// The VM name.
        vm: String,
        /// Its managed object reference.
        moref: String,
        /// Why (not created by ceso, or protected).
        reason: &'static str,
    },

    /// A step after `CreateVM_Task` failed (template disk copy, attach, grow, guestinfo); the
    /// new VM was destroyed again, so nothing half-made stays on the host.
    #[error("creating VM {vm:?} failed and was rolled back (the new VM was destroyed): {cause}")]
    CreateRolledBack {
        /// The VM name.
        vm: String,
        /// What failed.
        cause: Box<EsxiError>,
    },

    /// A step after `CreateVM_Task` failed, and removing what was made failed too.
    #[error(
        "creating VM {vm:?} failed: {cause}; rolling it back failed too ({rollback}): remove \
         {leftover} by hand"
    )]
    RollbackFailed {
        /// The VM name.
        vm: String,
        /// What failed first.
        cause: Box<EsxiError>,
        /// Why the rollback failed.
        rollback: Box<EsxiError>,
        /// What stays on the host, e.g. `VM "web-01" (moref 3)`.
        leftover: String,
    },

    /// VMware Tools did not report every expected address in time. The VM is left as it is.
    #[error("{}", guest_ip_timeout_message(.vm, .expected, .reported, *.tools_running, *.waited_secs))]
    GuestIpTimeout {
        /// The VM name.
        vm: String,
        /// The addresses waited for.
        expected: Vec<String>,
        /// The addresses the guest reported at the end (link-local excluded).
        reported: Vec<String>,
        /// Whether VMware Tools was running at the end.
        tools_running: bool,
        /// How long ceso waited, in seconds.
        waited_secs: u64,
    },

    /// A graceful shutdown was not possible and a hard power-off was not allowed. The VM was
    /// left running.
    #[error(
        "VM {vm:?} was not shut down: {reason}. ceso did not power it off; to allow a hard \
         power-off instead, set `shutdown: {{ force: true }}` on the VM, or pass \
         `--force-power-off`"
    )]
    ShutdownRefused {
        /// The VM name.
        vm: String,
        /// Why the guest did not shut down, e.g. `VMware Tools are not running in the guest` or
        /// `the guest did not stop within 120 s of the shutdown request`.
        reason: String,
    },

    /// The inventory lacks something the client needs (datacenter, VM folder, resource pool).
    #[error("unexpected inventory on {address}: {message}")]
    Inventory {
        /// The normalized URL of the host.
        address: String,
        /// What is missing.
        message: String,
    },
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Explains why the guest addresses did not show up, telling apart a guest that reports other
/// addresses, one whose Tools never started, and Tools that run without an address.
fn guest_ip_timeout_message(
    vm: &str,
    expected: &[String],
    reported: &[String],
    tools_running: bool,
    waited_secs: u64,
) -> String {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|e| !reported.contains(e))
        .map(String::as_str)
        .collect();
    let why = if !reported.is_empty() {
        format!(
            "the guest reports other addresses (mismatch: expected {}, reported {}); check the \
             guest's network configuration (cloud-init network config, adapter order)",
            missing.join(", "),
            reported.join(", ")
        )
    } else if !tools_running {
        "VMware Tools never started in the guest (is open-vm-tools installed, and did the \
         guest boot?)"
            .to_owned()
    } else {
        "VMware Tools run but report no address (the guest has not configured its network, or \
         DHCP/cloud-init failed)"
            .to_owned()
    };
    format!(
        "VM {vm:?} did not report {} within {waited_secs} s: {why}. The VM was left as it is",
        expected.join(", ")
    )
}

/// ` (subject ...; issuer ...; valid from ... to ...)`, or nothing when the certificate could not
/// be decoded.
fn described(certificate: &Option<Box<CertificateFields>>) -> String {
    certificate
        .as_ref()
        .map_or_else(String::new, |fields| format!(" ({fields})"))
}

/// The command an operator can run to see a host's SHA-256 thumbprint.
fn openssl_hint(address: &str) -> String {
    let hostport = reqwest::Url::parse(address)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            let port = u.port_or_known_default()?;
            Some(format!("{host}:{port}"))
        })
        .unwrap_or_else(|| "HOST:443".to_owned());
    format!(
        "openssl s_client -connect {hostport} </dev/null | openssl x509 -noout -fingerprint -sha256"
    )
}

impl EsxiError {
    /// The vim25 fault type, for `Fault` and `TaskFailed`.
    pub fn fault_type(&self) -> Option<&str> {
        match self {
            Self::Fault { fault, .. } | Self::TaskFailed { fault, .. } => Some(fault),
            Self::CreateRolledBack { cause, .. } | Self::RollbackFailed { cause, .. } => {
                cause.fault_type()
            }
            _ => None,
        }
    }

    pub(crate) fn is_not_authenticated(&self) -> bool {
        matches!(self, Self::Fault { fault, .. } if fault == super::fault::NOT_AUTHENTICATED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_tells_how_to_check() {
        let e = EsxiError::ThumbprintMismatch {
            address: "https://esxi-01/sdk".into(),
            expected: "AA:BB".into(),
            actual: "CC:DD".into(),
            certificate: None,
        };
        let s = e.to_string();
        assert!(s.contains("impostor"), "{s}");
        assert!(
            s.contains(
                "openssl s_client -connect esxi-01:443 </dev/null | openssl x509 -noout -fingerprint -sha256"
            ),
            "{s}"
        );
        assert!(s.contains("expected AA:BB, got CC:DD"), "{s}");
    }

    #[test]
    fn no_trust_prints_the_thumbprint() {
        let e = EsxiError::NoTrust {
            address: "https://127.0.0.1:8989/sdk".into(),
            actual: "AB:CD".into(),
            certificate: None,
        };
        let s = e.to_string();
        assert!(
            s.contains("a certificate with SHA-256 thumbprint AB:CD. Verify"),
            "{s}"
        );
        assert!(s.contains("thumbprint: \"AB:CD\""), "{s}");
        assert!(s.contains("-connect 127.0.0.1:8989"), "{s}");
    }

    #[test]
    fn the_certificate_presented_is_described_when_it_was_decoded() {
        let fields = CertificateFields {
            subject: "CN=esxi-01".into(),
            issuer: "CN=esxi-01".into(),
            not_before: "2026-01-05T10:00:00Z".parse().expect("timestamp"),
            not_after: "2036-01-05T10:00:00Z".parse().expect("timestamp"),
        };
        let described = " (subject CN=esxi-01; issuer CN=esxi-01; valid from 2026-01-05 \
                         10:00:00 UTC to 2036-01-05 10:00:00 UTC).";
        let no_trust = EsxiError::NoTrust {
            address: "https://esxi-01/sdk".into(),
            actual: "AB:CD".into(),
            certificate: Some(Box::new(fields.clone())),
        }
        .to_string();
        assert!(
            no_trust.contains(&format!("thumbprint AB:CD{described}")),
            "{no_trust}"
        );
        let mismatch = EsxiError::ThumbprintMismatch {
            address: "https://esxi-01/sdk".into(),
            expected: "AA:BB".into(),
            actual: "CC:DD".into(),
            certificate: Some(Box::new(fields)),
        }
        .to_string();
        assert!(
            mismatch.contains(&format!("expected AA:BB, got CC:DD{described}")),
            "{mismatch}"
        );
    }

    #[test]
    fn fault_display() {
        let e = EsxiError::Fault {
            method: "PowerOnVM_Task".into(),
            fault: "InvalidState".into(),
            message: String::new(),
        };
        assert_eq!(e.to_string(), "PowerOnVM_Task failed: InvalidState");
    }

    fn timeout(reported: &[&str], tools_running: bool) -> String {
        EsxiError::GuestIpTimeout {
            vm: "web-01".into(),
            expected: vec!["192.168.1.100".into()],
            reported: reported.iter().map(|r| (*r).to_owned()).collect(),
            tools_running,
            waited_secs: 300,
        }
        .to_string()
    }

    #[test]
    fn guest_ip_timeout_tells_the_three_cases_apart() {
        let mismatch = timeout(&["10.0.0.5"], true);
        assert!(
            mismatch.starts_with("VM \"web-01\" did not report 192.168.1.100 within 300 s"),
            "{mismatch}"
        );
        assert!(
            mismatch.contains(
                "the guest reports other addresses (mismatch: expected 192.168.1.100, reported 10.0.0.5)"
            ),
            "{mismatch}"
        );
        let no_tools = timeout(&[], false);
        assert!(
            no_tools.contains("VMware Tools never started"),
            "{no_tools}"
        );
        let no_address = timeout(&[], true);
        assert!(
            no_address.contains("VMware Tools run but report no address"),
            "{no_address}"
        );
        for s in [mismatch, no_tools, no_address] {
            assert!(s.ends_with("The VM was left as it is"), "{s}");
        }
    }

    #[test]
    fn rollback_messages_say_what_became_of_the_vm() {
        let cause = || {
            Box::new(EsxiError::TaskFailed {
                task: "CopyVirtualDisk_Task".into(),
                entity: "web-01".into(),
                fault: "FileNotFound".into(),
                message: String::new(),
            })
        };
        let rolled_back = EsxiError::CreateRolledBack {
            vm: "web-01".into(),
            cause: cause(),
        };
        assert_eq!(
            rolled_back.to_string(),
            "creating VM \"web-01\" failed and was rolled back (the new VM was destroyed): \
             CopyVirtualDisk_Task on web-01 failed: FileNotFound"
        );
        assert_eq!(rolled_back.fault_type(), Some("FileNotFound"));
        let failed = EsxiError::RollbackFailed {
            vm: "web-01".into(),
            cause: cause(),
            rollback: Box::new(EsxiError::Fault {
                method: "Destroy_Task".into(),
                fault: "InvalidState".into(),
                message: String::new(),
            }),
            leftover: "VM \"web-01\" (moref 3)".into(),
        };
        let s = failed.to_string();
        assert!(
            s.contains("rolling it back failed too (Destroy_Task failed: InvalidState)"),
            "{s}"
        );
        assert!(s.ends_with("remove VM \"web-01\" (moref 3) by hand"), "{s}");
    }

    #[test]
    fn shutdown_refusal_says_the_vm_runs_and_how_to_allow_a_power_off() {
        let e = EsxiError::ShutdownRefused {
            vm: "db-01".into(),
            reason: "VMware Tools are not running in the guest".into(),
        };
        assert_eq!(
            e.to_string(),
            "VM \"db-01\" was not shut down: VMware Tools are not running in the guest. ceso did \
             not power it off; to allow a hard power-off instead, set `shutdown: { force: true }` \
             on the VM, or pass `--force-power-off`"
        );
    }
}
