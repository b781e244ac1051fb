//! Importing an OVA (an OVF descriptor, optionally a `.mf` manifest, and stream-optimized VMDKs
//! in one tar file) the way ovftool does: `OvfManager.CreateImportSpec`,
//! `ResourcePool.ImportVApp`, an NFC upload of each file the host asks for (see [`super::nfc`]),
//! `HttpNfcLeaseComplete`, then the `ceso.template` marker.
//!
//! The OVA is read where it lies: only the descriptor and the manifest are loaded; each disk is
//! streamed from its byte range of the tar file. Whatever fails once the host has created the
//! VM aborts the lease and destroys the VM, so that no half-imported VM stays behind.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::fault::LocalizedFault;
use super::nfc::{LeaseInfo, Upload};
use super::properties::{FilterSpec, parse_devices, traversal};
use super::xml::{Element, MoRef};
use crate::host::{Firmware, TEMPLATE_KEY};

/// Largest descriptor or manifest read into memory.
const MAX_TEXT_ENTRY: u64 = 16 << 20;
/// `ImportVApp` disk provisioning: a template's disk is only ever copied, so it takes only the
/// space its data needs.
const DISK_PROVISIONING: &str = "thin";
/// VM properties read back after the import.
const READ_BACK_PATHS: &[&str] = &[
    "name",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.guestId",
    "config.firmware",
    "config.hardware.device",
];

/// What to import the OVA as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Name of the VM holding the template (and of the template).
    pub name: String,
    /// Datastore the VM and its disk go to.
    pub datastore: String,
    /// Port group every network of the OVF descriptor is mapped to.
    pub network: String,
}

/// The imported VM as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedTemplate {
    /// Managed object reference value of the VM.
    pub moref: String,
    /// Name of the VM.
    pub vm_name: String,
    /// The imported disk as the host names its backing, `[datastore] dir/file.vmdk`.
    pub disk: String,
    /// Capacity of that disk in bytes.
    pub capacity_bytes: u64,
    /// vSphere guest OS identifier, e.g. `ubuntu64Guest`.
    pub guest_id: String,
    /// Boot firmware.
    pub firmware: Firmware,
    /// Number of virtual CPUs.
    pub cpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Bytes of OVA files sent to the host.
    pub uploaded_bytes: u64,
    /// Warnings the host gave about the descriptor (`CreateImportSpec`), one per line.
    pub warnings: Vec<String>,
}

/// How far an import has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProgress {
    /// Files of the OVA are being sent to the host.
    Uploading {
        /// The file being sent (its name in the OVA).
        file: String,
        /// Bytes sent so far, all files together.
        sent_bytes: u64,
        /// Bytes to send in all.
        total_bytes: u64,
    },
    /// Everything was sent; the host completes the import and ceso marks the VM.
    Finishing,
}

/// Why an import failed. Once the host had created the VM, it has been removed again, unless
/// the error is [`ImportError::LeftBehind`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The OVA file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The OVA file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a tar archive.
    #[error("{path} is not an OVA (a tar archive of an OVF descriptor and its disks): {reason}")]
    NotAnOva {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The archive holds no `*.ovf` file.
    #[error("{path} holds no OVF descriptor (*.ovf); is it an OVA?")]
    NoDescriptor {
        /// The OVA file.
        path: PathBuf,
    },

    /// The descriptor cannot be understood.
    #[error("the OVF descriptor {descriptor} in {path} is invalid: {reason}")]
    BadDescriptor {
        /// The OVA file.
        path: PathBuf,
        /// The descriptor's name in the OVA.
        descriptor: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The descriptor names a file the archive does not hold.
    #[error("the OVF descriptor {descriptor} refers to {file}, which {path} does not contain")]
    MissingFile {
        /// The OVA file.
        path: PathBuf,
        /// The descriptor's name in the OVA.
        descriptor: String,
        /// The missing file.
        file: String,
    },

    /// A valid OVA that ceso cannot import as a template.
    #[error("{path} cannot be imported as a template: {reason}")]
    Unsupported {
        /// The OVA file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// A file does not match its checksum in the OVA's manifest (`.mf`).
    #[error(
        "{file} does not match the {algorithm} checksum in the OVA's manifest {manifest} \
         (expected {expected}, got {actual}): the OVA is damaged or was altered"
    )]
    ChecksumMismatch {
        /// The manifest's name in the OVA.
        manifest: String,
        /// The file that does not match.
        file: String,
        /// `SHA256`, `SHA1` or `SHA512`.
        algorithm: String,
        /// The checksum the manifest lists.
        expected: String,
        /// The checksum of the file.
        actual: String,
    },

    /// A VM with the template's name exists already; nothing was changed.
    #[error(
        "a VM named {name:?} already exists on the host ({moref}); nothing was imported. Choose \
         another name, or remove that VM first"
    )]
    VmExists {
        /// The name.
        name: String,
        /// The existing VM's moref.
        moref: String,
    },

    /// The datastore does not exist on the host.
    #[error("datastore {datastore:?} not found on the host (it has: {})", .available.join(", "))]
    DatastoreNotFound {
        /// The datastore asked for.
        datastore: String,
        /// The host's datastores.
        available: Vec<String>,
    },

    /// The port group does not exist on the host.
    #[error("network {network:?} not found on the host (it has: {})", .available.join(", "))]
    NetworkNotFound {
        /// The port group asked for.
        network: String,
        /// The host's networks.
        available: Vec<String>,
    },

    /// `CreateImportSpec` reported errors about the descriptor; nothing was changed.
    #[error("the host refused the OVF descriptor: {}", .messages.join("; "))]
    DescriptorRefused {
        /// The host's errors.
        messages: Vec<String>,
    },

    /// The NFC lease went into state `error` (or ended unexpectedly).
    #[error("the host's import lease failed: {message}")]
    Lease {
        /// The lease's error.
        message: String,
    },

    /// The NFC lease did not become ready in time.
    #[error("the host's import lease did not become ready within {timeout:?}")]
    LeaseTimeout {
        /// How long ceso waited.
        timeout: Duration,
    },

    /// The host asked for a file without giving an upload URL for it.
    #[error("the host gave no upload URL for {file} (device {device})")]
    NoUploadUrl {
        /// The file.
        file: String,
        /// The import key of the device.
        device: String,
    },

    /// The upload URL the host gave cannot be used.
    #[error("the host gave an unusable upload URL {url:?}: {reason}")]
    BadUploadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The host answered an upload with an HTTP error.
    #[error("uploading {file} to {url} failed: HTTP {status}{}", fmt_body(.body))]
    UploadRefused {
        /// The file.
        file: String,
        /// The upload URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// Sending a file failed (network, TLS, reading the OVA).
    #[error("uploading {file} to {url} failed: {source}")]
    UploadFailed {
        /// The file.
        file: String,
        /// The upload URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<EsxiError>,
    },

    /// The host accepted an upload before receiving all of it.
    #[error("uploading {file}: the host answered after {sent} of {size} bytes")]
    UploadShort {
        /// The file.
        file: String,
        /// Bytes sent.
        sent: u64,
        /// The file's size.
        size: u64,
    },

    /// Nothing was sent or answered for too long.
    #[error("uploading {file} stalled: nothing was sent or answered for {timeout:?}")]
    UploadStalled {
        /// The file.
        file: String,
        /// How long nothing happened.
        timeout: Duration,
    },

    /// The imported VM has no disk to serve as the template disk.
    #[error("the imported VM {vm:?} has no virtual disk")]
    NoDisk {
        /// The VM name.
        vm: String,
    },

    /// A call to the host failed.
    #[error("{step}: {source}")]
    Host {
        /// What ceso was doing.
        step: &'static str,
        /// The host's error.
        #[source]
        source: EsxiError,
    },

    /// The import was interrupted (e.g. Ctrl-C).
    #[error("the import was interrupted")]
    Cancelled,

    /// The import failed and removing the half-imported VM failed too.
    #[error(
        "{error}; removing the partly imported VM {vm:?} ({moref}) failed too: {cleanup}. Delete \
         it on the host by hand"
    )]
    LeftBehind {
        /// Why the import failed.
        error: Box<ImportError>,
        /// The VM name.
        vm: String,
        /// The VM's moref.
        moref: String,
        /// Why removing it failed.
        cleanup: Box<EsxiError>,
    },
}

fn fmt_body(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

/// A step's host error with what ceso was doing.
fn host(step: &'static str) -> impl FnOnce(EsxiError) -> ImportError {
    move |source| ImportError::Host { step, source }
}

// ------------------------------------------------------------------------------------------------
// the OVA file

/// Where a file's bytes lie inside the OVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice {
    /// Offset of the first byte in the tar file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A checksum listed in the OVA's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checksum {
    /// `SHA256`, `SHA1` or `SHA512`, as the manifest writes it.
    pub algorithm: String,
    /// Lowercase hex digest.
    pub hex: String,
}

impl Checksum {
    /// The ring algorithm.
    pub fn digest_algorithm(&self) -> &'static ring::digest::Algorithm {
        match self.algorithm.as_str() {
            "SHA1" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            "SHA512" => &ring::digest::SHA512,
            _ => &ring::digest::SHA256,
        }
    }
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An opened OVA: its descriptor and manifest, and where every file lies.
#[derive(Debug, Clone)]
pub(crate) struct Ova {
    pub path: PathBuf,
    /// The descriptor's name in the archive.
    pub descriptor_name: String,
    /// The descriptor as sent to `CreateImportSpec`.
    pub descriptor_text: String,
    pub descriptor: OvfDescriptor,
    /// Every regular file of the archive by name (leading `./` removed).
    pub entries: BTreeMap<String, Slice>,
    pub manifest: Option<Manifest>,
}

/// The OVA's manifest (`.mf`): a checksum per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Its name in the archive.
    pub name: String,
    /// Checksums by file name.
    pub sums: BTreeMap<String, Checksum>,
}

impl Manifest {
    /// A mismatch error unless `actual` equals the checksum listed for `file` (if any).
    pub fn check(&self, file: &str, actual: &str) -> Result<(), ImportError> {
        match self.sums.get(file) {
            Some(expected) if expected.hex != actual => Err(ImportError::ChecksumMismatch {
                manifest: self.name.clone(),
                file: file.to_owned(),
                algorithm: expected.algorithm.clone(),
                expected: expected.hex.clone(),
                actual: actual.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// [`check`](Self::check) of bytes in memory.
    fn check_bytes(&self, file: &str, bytes: &[u8]) -> Result<(), ImportError> {
        match self.sums.get(file) {
            Some(expected) => {
                let digest = ring::digest::digest(expected.digest_algorithm(), bytes);
                self.check(file, &hex(digest.as_ref()))
            }
            None => Ok(()),
        }
    }
}

impl Ova {
    /// Reads the archive's table of contents, the descriptor and the manifest, checks the
    /// descriptor's checksum, and that every file the descriptor names is there.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let read_error = |source| ImportError::Read {
            path: path.to_owned(),
            source,
        };
        let not_ova = |reason: String| ImportError::NotAnOva {
            path: path.to_owned(),
            reason,
        };
        let file = File::open(path).map_err(read_error)?;
        if file.metadata().map_err(read_error)?.is_dir() {
            return Err(not_ova("it is a directory".into()));
        }
        let mut archive = tar::Archive::new(file);
        let mut entries = BTreeMap::new();
        let mut descriptor: Option<(String, Vec<u8>)> = None;
        let mut manifest: Option<(String, Vec<u8>)> = None;
        for entry in archive
            .entries_with_seek()
            .map_err(|e| not_ova(e.to_string()))?
        {
            let mut entry = entry.map_err(|e| not_ova(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| not_ova(e.to_string()))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let slice = Slice {
                offset: entry.raw_file_position(),
                size: entry.size(),
            };
            let lower = name.to_ascii_lowercase();
            let wanted = if lower.ends_with(".ovf") && descriptor.is_none() {
                Some(&mut descriptor)
            } else if lower.ends_with(".mf") && manifest.is_none() {
                Some(&mut manifest)
            } else {
                None
            };
            if let Some(slot) = wanted {
                if slice.size > MAX_TEXT_ENTRY {
                    return Err(not_ova(format!(
                        "{name} is {} bytes, too large for a descriptor or manifest",
                        slice.size
                    )));
                }
                let mut bytes = Vec::with_capacity(slice.size as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| not_ova(format!("reading {name}: {e}")))?;
                *slot = Some((name.clone(), bytes));
            }
            entries.insert(name, slice);
        }
        let (descriptor_name, descriptor_bytes) =
            descriptor.ok_or_else(|| ImportError::NoDescriptor {
                path: path.to_owned(),
            })?;
        let bad = |reason: String| ImportError::BadDescriptor {
            path: path.to_owned(),
            descriptor: descriptor_name.clone(),
            reason,
        };
        let manifest = manifest
            .map(|(name, bytes)| {
                let text = String::from_utf8(bytes).map_err(|_| ImportError::Unsupported {
                    path: path.to_owned(),
                    reason: format!("the manifest {name} is not UTF-8 text"),
                })?;
                let sums = parse_manifest(&text).map_err(|reason| ImportError::Unsupported {
                    path: path.to_owned(),
                    reason: format!("the manifest {name}: {reason}"),
                })?;
                Ok::<_, ImportError>(Manifest { name, sums })
            })
            .transpose()?;
        if let Some(manifest) = &manifest {
            manifest.check_bytes(&descriptor_name, &descriptor_bytes)?;
        }
        let text = String::from_utf8(descriptor_bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
        let descriptor = OvfDescriptor::parse(&text).map_err(bad)?;
        let ova = Self {
            path: path.to_owned(),
            descriptor_name,
            descriptor_text: text,
            descriptor,
            entries,
            manifest,
        };
        ova.check_contents()?;
        Ok(ova)
    }

    /// The manifest's checksum of a file, if the OVA has a manifest that lists it.
    pub fn checksum(&self, file: &str) -> Option<&Checksum> {
        self.manifest.as_ref().and_then(|m| m.sums.get(file))
    }

    /// Every file the descriptor names is in the archive; exactly one disk, uncompressed.
    fn check_contents(&self) -> Result<(), ImportError> {
        let unsupported = |reason: String| ImportError::Unsupported {
            path: self.path.clone(),
            reason,
        };
        for file in &self.descriptor.files {
            if let Some(method) = &file.compression {
                return Err(unsupported(format!(
                    "{} is {method}-compressed inside the OVA; unpack and repack it without \
                     compression",
                    file.href
                )));
            }
            if file.chunked {
                return Err(unsupported(format!(
                    "{} is split into chunks; join them first",
                    file.href
                )));
            }
            if !self.entries.contains_key(&file.href) {
                return Err(ImportError::MissingFile {
                    path: self.path.clone(),
                    descriptor: self.descriptor_name.clone(),
                    file: file.href.clone(),
                });
            }
        }
        // The upload sends the disk as a stream-optimized VMDK, the only form an OVA carries
        // (the host would refuse anything else only after creating the VM).
        for disk in &self.descriptor.disks {
            if let Some(format) = &disk.format
                && !format.ends_with("#streamOptimized")
            {
                return Err(unsupported(format!(
                    "disk {} is in format {format}; an OVA carries stream-optimized VMDKs (convert it with `qemu-img convert -O vmdk -o subformat=streamOptimized`)",
                    disk.disk_id
                )));
            }
        }
        match self.descriptor.disks.len() {
            1 => Ok(()),
            0 => Err(unsupported("the descriptor declares no disk".into())),
            n => Err(unsupported(format!(
                "the descriptor declares {n} disks; a ceso template holds exactly one"
            ))),
        }
    }
}

/// Reads a manifest: lines `SHA256(file.vmdk)= 0123abcd...`.
fn parse_manifest(text: &str) -> Result<BTreeMap<String, Checksum>, String> {
    let mut sums = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let malformed = || format!("line {} is not `ALGORITHM(file)= checksum`", number + 1);
        let (algorithm, rest) = line.split_once('(').ok_or_else(malformed)?;
        let (file, digest) = rest.rsplit_once(")=").ok_or_else(malformed)?;
        let algorithm = algorithm.trim().to_ascii_uppercase();
        if !matches!(algorithm.as_str(), "SHA1" | "SHA256" | "SHA512") {
            return Err(format!(
                "line {}: unsupported checksum algorithm {algorithm}",
                number + 1
            ));
        }
        let digest = digest.trim().to_ascii_lowercase();
        if digest.is_empty() || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        sums.insert(
            file.trim().trim_start_matches("./").to_owned(),
            Checksum {
                algorithm,
                hex: digest,
            },
        );
    }
    Ok(sums)
}

// ------------------------------------------------------------------------------------------------
// the OVF descriptor

/// A file the descriptor's `References` section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OvfFile {
    pub id: String,
    /// Its name in the OVA.
    pub href: String,
    /// `ovf:compression`, e.g. `gzip`.
    pub compression: Option<String>,
    /// Whether `ovf:chunkSize` splits it into several files.
    pub chunked: bool,
}

/// A disk of the descriptor's `DiskSection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OvfDisk {
    pub disk_id: String,
    /// Id of the `References` file holding its content.
    pub file_ref: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
    /// `ovf:format`, e.g. `http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized`.
    pub format: Option<String>,
}

/// What ceso needs from an OVF descriptor (the host parses the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OvfDescriptor {
    /// The virtual system's name (or id).
    pub name: String,
    /// `vmw:osType` of the operating system section.
    pub guest_id: Option<String>,
    /// `vmw:Config vmw:key="firmware"` of the virtual hardware; BIOS when absent.
    pub firmware: Firmware,
    pub files: Vec<OvfFile>,
    pub disks: Vec<OvfDisk>,
    /// Names of the networks (network section and adapter connections), each once.
    pub networks: Vec<String>,
    /// Keys of the product section's properties (cloud-init settings in Ubuntu's images);
    /// ceso configures guests through guestinfo instead and leaves them unset.
    pub properties: Vec<String>,
}

impl OvfDescriptor {
    /// Parses the descriptor text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let root = super::xml::parse_keeping_qualified_attributes(text)?;
        if root.name != "Envelope" {
            return Err(format!(
                "the root element is <{}>, not <Envelope>",
                root.name
            ));
        }
        let system = match root.child("VirtualSystem") {
            Some(system) => system,
            None if root.child("VirtualSystemCollection").is_some() => {
                return Err(
                    "it describes a vApp of several virtual machines (VirtualSystemCollection); \
                     a template is one virtual machine"
                        .into(),
                );
            }
            None => return Err("no <VirtualSystem>".into()),
        };
        let hardware = system
            .child("VirtualHardwareSection")
            .ok_or("no <VirtualHardwareSection>")?;
        let firmware = match hardware
            .children_named("Config")
            .find(|c| c.attr("key") == Some("firmware"))
            .and_then(|c| c.attr("value"))
        {
            None | Some("bios") => Firmware::Bios,
            Some("efi") => Firmware::Efi,
            Some(other) => return Err(format!("unknown firmware {other:?} (bios or efi)")),
        };
        let files = root
            .child("References")
            .map(|r| {
                r.children_named("File")
                    .map(|f| OvfFile {
                        id: f.attr("id").unwrap_or_default().to_owned(),
                        href: f
                            .attr("href")
                            .unwrap_or_default()
                            .trim_start_matches("./")
                            .to_owned(),
                        compression: f
                            .attr("compression")
                            .filter(|c| !c.is_empty() && *c != "identity")
                            .map(str::to_owned),
                        chunked: f.attr("chunkSize").is_some(),
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if let Some(file) = files.iter().find(|f| f.href.is_empty()) {
            return Err(format!("the file reference {:?} has no href", file.id));
        }
        let disks = root
            .child("DiskSection")
            .map(|section| {
                section
                    .children_named("Disk")
                    .map(|d| {
                        let capacity = d.attr("capacity").unwrap_or("0");
                        let units = d.attr("capacityAllocationUnits").unwrap_or("byte");
                        let capacity_bytes = capacity
                            .trim()
                            .parse::<u64>()
                            .ok()
                            .zip(allocation_unit_bytes(units))
                            .and_then(|(n, unit)| n.checked_mul(unit))
                            .ok_or_else(|| {
                                format!("disk capacity {capacity:?} in {units:?} is not a size")
                            })?;
                        Ok(OvfDisk {
                            disk_id: d.attr("diskId").unwrap_or_default().to_owned(),
                            file_ref: d.attr("fileRef").map(str::to_owned),
                            capacity_bytes,
                            format: d.attr("format").map(str::to_owned),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?
            .unwrap_or_default();
        for disk in &disks {
            if let Some(reference) = &disk.file_ref
                && !files.iter().any(|f| f.id == *reference)
            {
                return Err(format!(
                    "disk {:?} refers to file {reference:?}, which <References> lacks",
                    disk.disk_id
                ));
            }
        }
        let mut networks: Vec<String> = root
            .child("NetworkSection")
            .map(|n| {
                n.children_named("Network")
                    .filter_map(|n| n.attr("name"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for connection in hardware
            .children_named("Item")
            .flat_map(|item| item.children_named("Connection"))
        {
            let name = connection.text.trim();
            if !name.is_empty() && !networks.iter().any(|n| n == name) {
                networks.push(name.to_owned());
            }
        }
        let properties = system
            .children_named("ProductSection")
            .flat_map(|p| p.children_named("Property"))
            .filter_map(|p| p.attr("key"))
            .map(str::to_owned)
            .collect();
        Ok(Self {
            name: system
                .child_text("Name")
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .or(system.attr("id"))
                .unwrap_or_default()
                .to_owned(),
            guest_id: system
                .child("OperatingSystemSection")
                .and_then(|os| os.attr("osType"))
                .map(str::to_owned),
            firmware,
            files,
            disks,
            networks,
            properties,
        })
    }
}

/// Bytes per unit of a DMTF programmatic unit such as `byte * 2^30`, `byte * 1024`,
/// `MegaBytes` or `byte`.
fn allocation_unit_bytes(units: &str) -> Option<u64> {
    let compact: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    let named = match compact.to_ascii_lowercase().as_str() {
        "byte" | "bytes" => Some(1),
        "kilobytes" | "kb" => Some(1 << 10),
        "megabytes" | "mb" => Some(1 << 20),
        "gigabytes" | "gb" => Some(1 << 30),
        "terabytes" | "tb" => Some(1 << 40),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let factor = compact.strip_prefix("byte*")?;
    match factor.split_once('^') {
        Some((base, exponent)) => base
            .parse::<u64>()
            .ok()?
            .checked_pow(exponent.parse().ok()?),
        None => factor.parse().ok(),
    }
}

// ------------------------------------------------------------------------------------------------
// the import

/// Where the VM goes and what it connects to, read in one `RetrievePropertiesEx`.
#[derive(Debug)]
struct ImportTarget {
    vm_folder: MoRef,
    resource_pool: MoRef,
    host: Option<MoRef>,
    datastore: MoRef,
    network: MoRef,
}

/// What `CreateImportSpec` returned.
#[derive(Debug)]
struct ImportSpec {
    /// The `importSpec` element, sent back to `ImportVApp` as it came.
    spec: Element,
    /// `(deviceId, path in the OVA, create)` of each file to upload.
    files: Vec<(String, String, bool)>,
    warnings: Vec<String>,
}

/// State of an import that the host has started, kept outside the cancellable part so that
/// cleanup knows what to undo.
#[derive(Debug, Default)]
struct Started {
    /// The VM the lease imports into, once the lease said so.
    vm: Mutex<Option<MoRef>>,
    /// `HttpNfcLeaseComplete` succeeded: the lease is gone.
    completed: std::sync::atomic::AtomicBool,
}

impl EsxiClient {
    /// Imports an OVA as the VM holding a template: creates the VM from the descriptor (its
    /// networks mapped to `options.network`), streams the disk to the host, marks the VM with
    /// `ceso.template` and leaves it powered off.
    ///
    /// `progress` is called a few times a second while files upload. A VM named
    /// `options.name` makes it refuse before changing anything; any failure after the host
    /// created the VM removes the VM again.
    pub async fn import_ova(
        &self,
        ova: &Path,
        options: &ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Sync),
    ) -> Result<ImportedTemplate, ImportError> {
        self.import_ova_cancellable(ova, options, progress, std::future::pending())
            .await
    }

    /// [`import_ova`](Self::import_ova) that gives up when `cancel` completes (e.g. on
    /// Ctrl-C): the lease is aborted, the partly imported VM removed, and the result is
    /// [`ImportError::Cancelled`].
    pub async fn import_ova_cancellable(
        &self,
        ova: &Path,
        options: &ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Sync),
        cancel: impl Future<Output = ()>,
    ) -> Result<ImportedTemplate, ImportError> {
        let path = ova.to_owned();
        let ova = tokio::task::spawn_blocking(move || Ova::open(&path))
            .await
            .map_err(|e| ImportError::Read {
                path: ova.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })??;
        if !ova.descriptor.properties.is_empty() {
            tracing::info!(
                properties = ova.descriptor.properties.join(","),
                "the OVF product section's properties stay unset; ceso configures guests \
                 through guestinfo"
            );
        }
        let mut cancel = std::pin::pin!(cancel);
        let prepare = async {
            let target = self.import_target(options, &ova.descriptor).await?;
            let spec = self.create_import_spec(&ova, options, &target).await?;
            Ok::<_, ImportError>((target, spec))
        };
        let (target, spec) = tokio::select! {
            biased;
            () = &mut cancel => return Err(ImportError::Cancelled),
            prepared = prepare => prepared?,
        };
        // Not raced with `cancel`: once the host created the VM, ceso needs the lease to undo it.
        let lease = self.import_vapp(&spec, &target).await?;
        let started = Started::default();
        let finish = self.finish_import(&lease, &ova, &spec, options, progress, &started);
        let outcome = tokio::select! {
            biased;
            () = &mut cancel => Err(ImportError::Cancelled),
            outcome = finish => outcome,
        };
        match outcome {
            Ok(template) => Ok(template),
            Err(error) => Err(self.undo_import(&lease, &started, options, error).await),
        }
    }

    /// Finds the VM folder, resource pool, host, datastore and network, and refuses when a VM
    /// named like the template exists.
    async fn import_target(
        &self,
        options: &ImportOptions,
        descriptor: &OvfDescriptor,
    ) -> Result<ImportTarget, ImportError> {
        let spec = FilterSpec::new()
            .props("Datacenter", &["vmFolder"])
            .props("ComputeResource", &["resourcePool", "host"])
            .props("Datastore", &["name"])
            .props("Network", &["name"])
            .props("VirtualMachine", &["name"])
            .object(&self.service.root_folder, true, |w| {
                traversal(
                    w,
                    "folderChildren",
                    "Folder",
                    "childEntity",
                    &[
                        "folderChildren",
                        "datacenterVms",
                        "datacenterHosts",
                        "datacenterDatastores",
                        "datacenterNetworks",
                    ],
                );
                traversal(
                    w,
                    "datacenterVms",
                    "Datacenter",
                    "vmFolder",
                    &["folderChildren"],
                );
                traversal(
                    w,
                    "datacenterHosts",
                    "Datacenter",
                    "hostFolder",
                    &["folderChildren"],
                );
                traversal(w, "datacenterDatastores", "Datacenter", "datastore", &[]);
                traversal(w, "datacenterNetworks", "Datacenter", "network", &[]);
            });
        let objects = self
            .retrieve(&spec)
            .await
            .map_err(host("reading the host's inventory"))?;
        let named = |kind: &str| -> Vec<(String, MoRef)> {
            let mut found: Vec<(String, MoRef)> = objects
                .iter()
                .filter(|o| o.obj.kind == kind)
                .filter_map(|o| Some((o.prop_text("name")?.to_owned(), o.obj.clone())))
                .collect();
            found.sort();
            found.dedup();
            found
        };
        if let Some((_, vm)) = named("VirtualMachine")
            .into_iter()
            .find(|(name, _)| *name == options.name)
        {
            return Err(ImportError::VmExists {
                name: options.name.clone(),
                moref: vm.value,
            });
        }
        let pick = |kind: &str, wanted: &str| {
            let all = named(kind);
            match all.iter().find(|(name, _)| name == wanted) {
                Some((_, moref)) => Ok(moref.clone()),
                None => Err(all.into_iter().map(|(name, _)| name).collect::<Vec<_>>()),
            }
        };
        let datastore = pick("Datastore", &options.datastore).map_err(|available| {
            ImportError::DatastoreNotFound {
                datastore: options.datastore.clone(),
                available,
            }
        })?;
        let network = match pick("Network", &options.network) {
            Ok(network) => network,
            // A descriptor without networks needs none.
            Err(_) if descriptor.networks.is_empty() => MoRef::new("Network", ""),
            Err(available) => {
                return Err(ImportError::NetworkNotFound {
                    network: options.network.clone(),
                    available,
                });
            }
        };
        let first = |path: &str| {
            objects.iter().find_map(|o| {
                let val = o.prop(path)?;
                val.as_moref()
                    .or_else(|| val.children.first().and_then(Element::as_moref))
            })
        };
        let inventory = |message: &str| ImportError::Host {
            step: "reading the host's inventory",
            source: EsxiError::Inventory {
                address: self.transport.address().to_owned(),
                message: message.to_owned(),
            },
        };
        Ok(ImportTarget {
            vm_folder: first("vmFolder")
                .ok_or_else(|| inventory("no datacenter with a VM folder"))?,
            resource_pool: first("resourcePool")
                .ok_or_else(|| inventory("no compute resource with a resource pool"))?,
            host: first("host"),
            datastore,
            network,
        })
    }

    /// `OvfManager.CreateImportSpec`: the host turns the descriptor into a VM config spec and
    /// names the files it wants. Errors refuse the import; warnings are kept for the caller.
    async fn create_import_spec(
        &self,
        ova: &Ova,
        options: &ImportOptions,
        target: &ImportTarget,
    ) -> Result<ImportSpec, ImportError> {
        const STEP: &str = "creating the import spec (CreateImportSpec)";
        let ovf_manager = self
            .service
            .ovf_manager
            .clone()
            .ok_or_else(|| ImportError::Host {
                step: STEP,
                source: EsxiError::Inventory {
                    address: self.transport.address().to_owned(),
                    message: "the service content names no OVF manager".into(),
                },
            })?;
        let mut w = method_body(&ovf_manager);
        w.leaf("ovfDescriptor", &ova.descriptor_text)
            .moref("resourcePool", &target.resource_pool)
            .moref("datastore", &target.datastore)
            .start("cisp")
            .leaf("locale", "")
            .leaf("deploymentOption", "")
            .leaf("entityName", &options.name);
        for network in &ova.descriptor.networks {
            w.start("networkMapping")
                .leaf("name", network)
                .moref("network", &target.network)
                .end("networkMapping");
        }
        // No propertyMapping: the product section's cloud-init properties stay unset.
        w.leaf("diskProvisioning", DISK_PROVISIONING).end("cisp");
        let resp = self
            .call("CreateImportSpec", &w.finish())
            .await
            .map_err(host(STEP))?;
        parse_import_spec(resp)
    }

    /// `ResourcePool.ImportVApp`: the host creates the VM and returns the upload lease.
    async fn import_vapp(
        &self,
        spec: &ImportSpec,
        target: &ImportTarget,
    ) -> Result<MoRef, ImportError> {
        const STEP: &str = "creating the VM (ImportVApp)";
        let mut w = method_body(&target.resource_pool);
        spec.spec.write_as("spec", &mut w);
        w.moref("folder", &target.vm_folder);
        if let Some(host) = &target.host {
            w.moref("host", host);
        }
        let resp = self
            .call("ImportVApp", &w.finish())
            .await
            .map_err(host(STEP))?;
        resp.child("returnval")
            .and_then(Element::as_moref)
            .ok_or_else(|| ImportError::Host {
                step: STEP,
                source: EsxiError::Protocol {
                    address: self.transport.address().to_owned(),
                    method: "ImportVApp".into(),
                    message: "no lease in the response".into(),
                },
            })
    }

    /// Everything after `ImportVApp`: the lease, the uploads, completion and the marker.
    async fn finish_import(
        &self,
        lease: &MoRef,
        ova: &Ova,
        spec: &ImportSpec,
        options: &ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Sync),
        started: &Started,
    ) -> Result<ImportedTemplate, ImportError> {
        let info: LeaseInfo = self.wait_for_lease(lease).await?;
        *started.vm.lock().unwrap_or_else(PoisonError::into_inner) = info.entity.clone();
        let mut uploads = Vec::new();
        for (device, file, create) in &spec.files {
            let slice = *ova
                .entries
                .get(file)
                .ok_or_else(|| ImportError::MissingFile {
                    path: ova.path.clone(),
                    descriptor: ova.descriptor_name.clone(),
                    file: file.clone(),
                })?;
            let url = info
                .devices
                .iter()
                .find(|d| d.import_key == *device)
                .ok_or_else(|| ImportError::NoUploadUrl {
                    file: file.clone(),
                    device: device.clone(),
                })?;
            uploads.push(Upload {
                file: file.clone(),
                url: super::nfc::upload_url(&url.url, self.transport.address())?,
                slice,
                create: *create,
            });
        }
        let uploaded_bytes = self.upload_all(lease, ova, &uploads, progress).await?;
        progress(ImportProgress::Finishing);
        self.call("HttpNfcLeaseComplete", &method_body(lease).finish())
            .await
            .map_err(host("completing the import (HttpNfcLeaseComplete)"))?;
        started
            .completed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let vm = match info.entity {
            Some(vm) => vm,
            None => {
                let vm = self
                    .find_vm(&options.name)
                    .await?
                    .ok_or_else(|| ImportError::Lease {
                        message: format!(
                            "the lease named no VM, and no VM {:?} exists after the import",
                            options.name
                        ),
                    })?;
                *started.vm.lock().unwrap_or_else(PoisonError::into_inner) = Some(vm.clone());
                vm
            }
        };
        self.mark_template(&vm, options, ova.descriptor.firmware)
            .await?;
        let mut template = self.read_template(&vm, &options.name).await?;
        template.uploaded_bytes = uploaded_bytes;
        template.warnings.clone_from(&spec.warnings);
        Ok(template)
    }

    /// Sets `ceso.template` (and the descriptor's firmware, where the host ignored it).
    async fn mark_template(
        &self,
        vm: &MoRef,
        options: &ImportOptions,
        firmware: Firmware,
    ) -> Result<(), ImportError> {
        const STEP: &str = "marking the VM as a template (ReconfigVM_Task)";
        let current = self
            .retrieve_one(vm, &["config.firmware"])
            .await
            .map_err(host(STEP))?;
        let host_firmware = current
            .as_ref()
            .and_then(|o| o.prop_text("config.firmware"))
            .map(parse_firmware);
        let mut w = method_body(vm);
        w.start("spec")
            .start("extraConfig")
            .leaf("key", TEMPLATE_KEY)
            .leaf_typed("value", "xsd:string", &options.name)
            .end("extraConfig");
        if host_firmware != Some(firmware) {
            w.leaf("firmware", &firmware.to_string());
        }
        w.end("spec");
        self.run_task("ReconfigVM_Task", &w.finish(), &options.name)
            .await
            .map_err(host(STEP))?;
        Ok(())
    }

    /// Reads the imported VM back.
    async fn read_template(&self, vm: &MoRef, name: &str) -> Result<ImportedTemplate, ImportError> {
        let o = self
            .retrieve_one(vm, READ_BACK_PATHS)
            .await
            .map_err(host("reading the imported VM"))?
            .ok_or_else(|| ImportError::Host {
                step: "reading the imported VM",
                source: EsxiError::VmNotFound {
                    vm: name.to_owned(),
                },
            })?;
        let text = |p: &str| o.prop_text(p).unwrap_or_default().trim().to_owned();
        let devices: &[Element] = o
            .prop("config.hardware.device")
            .map_or(&[], |v| &v.children);
        let (disks, _) = parse_devices(devices);
        let disk = disks
            .into_iter()
            .next()
            .ok_or_else(|| ImportError::NoDisk {
                vm: name.to_owned(),
            })?;
        Ok(ImportedTemplate {
            moref: vm.value.clone(),
            vm_name: o.prop_text("name").unwrap_or(name).to_owned(),
            disk: disk.file_name,
            capacity_bytes: disk.capacity_bytes,
            guest_id: text("config.guestId"),
            firmware: parse_firmware(&text("config.firmware")),
            cpu: text("config.hardware.numCPU").parse().unwrap_or(0),
            memory_mib: text("config.hardware.memoryMB").parse().unwrap_or(0),
            uploaded_bytes: 0,
            warnings: Vec::new(),
        })
    }

    /// The VM with this name, if any.
    async fn find_vm(&self, name: &str) -> Result<Option<MoRef>, ImportError> {
        let found = self
            .vms_named(name)
            .await
            .map_err(host("looking for the imported VM"))?;
        Ok(found.into_iter().next())
    }

    /// Aborts the lease (unless completed) and destroys the VM the import created.
    async fn undo_import(
        &self,
        lease: &MoRef,
        started: &Started,
        options: &ImportOptions,
        error: ImportError,
    ) -> ImportError {
        if !started.completed.load(std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = self
                .call("HttpNfcLeaseAbort", &method_body(lease).finish())
                .await
        {
            tracing::debug!(error = %e, "HttpNfcLeaseAbort failed");
        }
        let known = started
            .vm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let vm = match known {
            Some(vm) => vm,
            // The VM did not exist before the import, so one with its name is the import's.
            None => match self.find_vm(&options.name).await {
                Ok(Some(vm)) => vm,
                Ok(None) => return error,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for the partly imported VM failed");
                    return error;
                }
            },
        };
        match self.destroy_imported(&vm, &options.name).await {
            Ok(()) => {
                tracing::info!(vm = %vm, "removed the partly imported VM");
                error
            }
            Err(cleanup) => ImportError::LeftBehind {
                error: Box::new(error),
                vm: options.name.clone(),
                moref: vm.value,
                cleanup: Box::new(cleanup),
            },
        }
    }

    /// `Destroy_Task`; a VM that is gone already (a host removes it when the lease is aborted)
    /// counts as destroyed.
    async fn destroy_imported(&self, vm: &MoRef, name: &str) -> Result<(), EsxiError> {
        let result = self
            .run_task("Destroy_Task", &method_body(vm).finish(), name)
            .await;
        let Err(error) = result else {
            return Ok(());
        };
        match self.retrieve_one(vm, &["name"]).await {
            Ok(None) => Ok(()),
            Ok(Some(o))
                if o.prop("name").is_none()
                    && o.missing
                        .iter()
                        .any(|(_, f)| f.fault == "ManagedObjectNotFound") =>
            {
                Ok(())
            }
            Err(e) if e.fault_type() == Some("ManagedObjectNotFound") => Ok(()),
            _ => Err(error),
        }
    }
}

/// `bios` or `efi` as the host writes it; anything else counts as BIOS.
fn parse_firmware(text: &str) -> Firmware {
    if text.trim() == "efi" {
        Firmware::Efi
    } else {
        Firmware::Bios
    }
}

/// Reads the `OvfCreateImportSpecResult` of a `CreateImportSpec` response.
fn parse_import_spec(resp: Element) -> Result<ImportSpec, ImportError> {
    let mut returnval = resp
        .children
        .into_iter()
        .find(|c| c.name == "returnval")
        .unwrap_or_else(|| Element::new("returnval"));
    let describe = |el: &Element| {
        let f = LocalizedFault::from_element(el);
        if f.message.is_empty() {
            f.fault
        } else {
            format!("{}: {}", f.fault, f.message)
        }
    };
    let errors: Vec<String> = returnval.children_named("error").map(describe).collect();
    if !errors.is_empty() {
        return Err(ImportError::DescriptorRefused { messages: errors });
    }
    let warnings = returnval.children_named("warning").map(describe).collect();
    let files = returnval
        .children_named("fileItem")
        .map(|f| {
            (
                f.child_text("deviceId").unwrap_or_default().to_owned(),
                f.child_text("path")
                    .unwrap_or_default()
                    .trim_start_matches("./")
                    .to_owned(),
                f.child_text("create").map(str::trim) == Some("true"),
            )
        })
        .collect();
    let position = returnval
        .children
        .iter()
        .position(|c| c.name == "importSpec")
        .ok_or_else(|| ImportError::DescriptorRefused {
            messages: vec!["the host returned no import spec".into()],
        })?;
    let spec = returnval.children.swap_remove(position);
    Ok(ImportSpec {
        spec,
        files,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Canonical's Ubuntu cloud-image descriptor (abridged).
    const UBUNTU_OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!--Generated by VMware ovftool 4.1.0 (build-2982904), UTC time: 2024-04-23T00:00:00Z-->
<Envelope vmw:buildId="build-2982904" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="ubuntu-noble-24.04-cloudimg.vmdk" ovf:id="file1" ovf:size="612345856"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network"><Description>The VM Network network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="ubuntu-noble-24.04-cloudimg">
    <Info>A virtual machine</Info>
    <Name>ubuntu-noble-24.04-cloudimg</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>The kind of installed guest operating system</Info></OperatingSystemSection>
    <ProductSection ovf:required="false">
      <Info>Cloud-Init customization</Info>
      <Property ovf:key="instance-id" ovf:type="string" ovf:userConfigurable="true" ovf:value="id-ovf"/>
      <Property ovf:key="user-data" ovf:type="string" ovf:userConfigurable="true" ovf:value=""><Label>Encoded user-data</Label></Property>
      <Property ovf:key="password" ovf:type="string" ovf:userConfigurable="true" ovf:value=""/>
    </ProductSection>
    <VirtualHardwareSection ovf:transport="iso">
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>11</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="wakeOnLanEnabled" vmw:value="true"/>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="cpuHotAddEnabled" vmw:value="false"/>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

    #[test]
    fn ubuntu_descriptor_parses() {
        let d = OvfDescriptor::parse(UBUNTU_OVF).expect("parses");
        assert_eq!(d.name, "ubuntu-noble-24.04-cloudimg");
        assert_eq!(d.guest_id.as_deref(), Some("ubuntu64Guest"));
        assert_eq!(d.firmware, Firmware::Efi);
        assert_eq!(
            d.files,
            vec![OvfFile {
                id: "file1".into(),
                href: "ubuntu-noble-24.04-cloudimg.vmdk".into(),
                compression: None,
                chunked: false,
            }]
        );
        assert_eq!(
            d.disks,
            vec![OvfDisk {
                disk_id: "vmdisk1".into(),
                file_ref: Some("file1".into()),
                capacity_bytes: 10 << 30,
                format: Some(
                    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
                        .into()
                ),
            }]
        );
        assert_eq!(d.networks, vec!["VM Network"]);
        assert_eq!(d.properties, vec!["instance-id", "user-data", "password"]);
    }

    #[test]
    fn firmware_defaults_to_bios_and_rejects_unknown_values() {
        let bios = UBUNTU_OVF.replace(
            r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>"#,
            "",
        );
        assert_eq!(
            OvfDescriptor::parse(&bios).expect("parses").firmware,
            Firmware::Bios
        );
        let odd = UBUNTU_OVF.replace(r#"vmw:value="efi""#, r#"vmw:value="uefi""#);
        let err = OvfDescriptor::parse(&odd).expect_err("unknown firmware");
        assert!(err.contains("uefi"), "{err}");
    }

    #[test]
    fn descriptors_that_are_not_one_vm_are_refused() {
        let err = OvfDescriptor::parse("<Envelope><VirtualSystemCollection/></Envelope>")
            .expect_err("vApp");
        assert!(err.contains("several virtual machines"), "{err}");
        let err = OvfDescriptor::parse("<html/>").expect_err("not OVF");
        assert!(err.contains("<html>"), "{err}");
        let err = OvfDescriptor::parse("<Envelope><VirtualSystem>").expect_err("truncated");
        assert!(err.contains("malformed"), "{err}");
        let dangling = UBUNTU_OVF.replace(r#"ovf:fileRef="file1""#, r#"ovf:fileRef="file9""#);
        let err = OvfDescriptor::parse(&dangling).expect_err("dangling reference");
        assert!(err.contains("file9"), "{err}");
    }

    #[test]
    fn allocation_units() {
        assert_eq!(allocation_unit_bytes("byte * 2^30"), Some(1 << 30));
        assert_eq!(allocation_unit_bytes("byte*2^20"), Some(1 << 20));
        assert_eq!(allocation_unit_bytes("byte * 1024"), Some(1024));
        assert_eq!(allocation_unit_bytes("byte"), Some(1));
        assert_eq!(allocation_unit_bytes("MegaBytes"), Some(1 << 20));
        assert_eq!(allocation_unit_bytes("hertz * 10^6"), None);
        assert_eq!(allocation_unit_bytes("byte * 2^99"), None);
    }

    #[test]
    fn manifests_parse_and_refuse_garbage() {
        let sums = parse_manifest("SHA256(ubuntu.ovf)= ABCDEF0123\nSHA1(./ubuntu.vmdk)=ff00\n\n")
            .expect("parses");
        assert_eq!(
            sums["ubuntu.ovf"],
            Checksum {
                algorithm: "SHA256".into(),
                hex: "abcdef0123".into()
            }
        );
        assert_eq!(sums["ubuntu.vmdk"].algorithm, "SHA1");
        assert!(parse_manifest("MD5(x)= 00").is_err());
        assert!(parse_manifest("hello").is_err());
        assert!(parse_manifest("SHA256(x)= xyz").is_err());
    }

    /// Writes a tar with the given files (name, content) in order.
    fn tar_of(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("test.ova");
        let mut builder = tar::Builder::new(File::create(&path).expect("create"));
        for (name, content) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *content)
                .expect("append");
        }
        builder.finish().expect("finish");
        path
    }

    fn sha256(bytes: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    }

    #[test]
    fn ova_contents_are_located_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = b"not really a vmdk, but bytes at a known place".as_slice();
        let manifest = format!(
            "SHA256(ubuntu.ovf)= {}\nSHA256(ubuntu-noble-24.04-cloudimg.vmdk)= {}\n",
            sha256(UBUNTU_OVF.as_bytes()),
            sha256(disk)
        );
        let path = tar_of(
            dir.path(),
            &[
                ("ubuntu.ovf", UBUNTU_OVF.as_bytes()),
                ("ubuntu.mf", manifest.as_bytes()),
                ("ubuntu-noble-24.04-cloudimg.vmdk", disk),
            ],
        );
        let ova = Ova::open(&path).expect("opens");
        assert_eq!(ova.descriptor_name, "ubuntu.ovf");
        assert_eq!(ova.descriptor_text, UBUNTU_OVF);
        assert_eq!(ova.descriptor.firmware, Firmware::Efi);
        let slice = ova.entries["ubuntu-noble-24.04-cloudimg.vmdk"];
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(
            &bytes[slice.offset as usize..(slice.offset + slice.size) as usize],
            disk
        );
        let vmdk = "ubuntu-noble-24.04-cloudimg.vmdk";
        assert_eq!(
            ova.checksum(vmdk).map(|c| c.hex.clone()),
            Some(sha256(disk))
        );
        let manifest = ova.manifest.as_ref().expect("manifest");
        assert!(manifest.check(vmdk, &sha256(disk)).is_ok());
        assert!(matches!(
            manifest.check(vmdk, &sha256(b"other")),
            Err(ImportError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn broken_ovas_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Ova::open(&dir.path().join("missing.ova")).expect_err("missing");
        assert!(matches!(err, ImportError::Read { .. }), "{err}");

        let garbage = dir.path().join("garbage.ova");
        std::fs::write(&garbage, vec![0x5a; 4096]).expect("write");
        let err = Ova::open(&garbage).expect_err("not a tar");
        assert!(matches!(err, ImportError::NotAnOva { .. }), "{err}");

        let no_ovf = tar_of(dir.path(), &[("disk.vmdk", b"x")]);
        let err = Ova::open(&no_ovf).expect_err("no descriptor");
        assert!(matches!(err, ImportError::NoDescriptor { .. }), "{err}");

        let no_disk = tar_of(dir.path(), &[("ubuntu.ovf", UBUNTU_OVF.as_bytes())]);
        let err = Ova::open(&no_disk).expect_err("disk missing");
        assert!(
            matches!(&err, ImportError::MissingFile { file, .. } if file == "ubuntu-noble-24.04-cloudimg.vmdk"),
            "{err}"
        );

        let tampered = tar_of(
            dir.path(),
            &[
                ("ubuntu.ovf", UBUNTU_OVF.as_bytes()),
                (
                    "ubuntu.mf",
                    format!("SHA256(ubuntu.ovf)= {}\n", sha256(b"x")).as_bytes(),
                ),
                ("ubuntu-noble-24.04-cloudimg.vmdk", b"x"),
            ],
        );
        let err = Ova::open(&tampered).expect_err("checksum");
        assert!(matches!(err, ImportError::ChecksumMismatch { .. }), "{err}");

        let compressed = UBUNTU_OVF.replace(
            r#"ovf:id="file1""#,
            r#"ovf:id="file1" ovf:compression="gzip""#,
        );
        let gz = tar_of(
            dir.path(),
            &[
                ("ubuntu.ovf", compressed.as_bytes()),
                ("ubuntu-noble-24.04-cloudimg.vmdk", b"x"),
            ],
        );
        let err = Ova::open(&gz).expect_err("compressed");
        assert!(matches!(err, ImportError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn import_spec_result_is_read() {
        let resp = crate::esxi::xml::parse(
            r#"<CreateImportSpecResponse xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><returnval><importSpec xsi:type="VirtualMachineImportSpec"><configSpec><name>t</name></configSpec></importSpec><fileItem><deviceId>/t/disk:0</deviceId><path>ubuntu.vmdk</path><size>5</size><create>false</create></fileItem><warning><fault xsi:type="OvfUnsupportedElement"/><localizedMessage>line 3: ignored</localizedMessage></warning></returnval></CreateImportSpecResponse>"#,
        )
        .expect("xml");
        let spec = parse_import_spec(resp).expect("spec");
        assert_eq!(spec.spec.type_name(), Some("VirtualMachineImportSpec"));
        assert_eq!(
            spec.files,
            vec![("/t/disk:0".to_owned(), "ubuntu.vmdk".to_owned(), false)]
        );
        assert_eq!(
            spec.warnings,
            vec!["OvfUnsupportedElement: line 3: ignored"]
        );

        let refused = crate::esxi::xml::parse(
            r#"<CreateImportSpecResponse xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><returnval><error><fault xsi:type="OvfUnsupportedType"/><localizedMessage>unsupported resource type: 99</localizedMessage></error></returnval></CreateImportSpecResponse>"#,
        )
        .expect("xml");
        let err = parse_import_spec(refused).expect_err("refused");
        assert!(
            err.to_string().contains("unsupported resource type: 99"),
            "{err}"
        );
    }
}
