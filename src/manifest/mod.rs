//! Manifests: the YAML an operator writes, loaded with source positions and validated.

mod backup;
mod load;
mod positions;
mod schema;
mod size;
mod types;
mod validate;

pub(crate) use backup::parse_backup_policy;
pub use load::{
    Documents, FailedDocument, KINDS, Resource, manifest_files, read_documents, read_file,
};
pub use positions::FieldPositions;
pub use schema::manifest_schema;
pub use size::{Size, SizeError};
pub use types::{
    API_VERSION, BackupPolicySpec, BackupTargetSpec, CloneSourceSpec, CloudInitSpec,
    DEFAULT_GUEST_ID, DEFAULT_SHUTDOWN_TIMEOUT_SECS, DatastoreTargetSpec, DescribedReservation,
    DirectoryTargetSpec, DiskSpec, Document, EnvSecret, FileSecret, Firmware, HostAccessSpec,
    HostSpec, HostSshSpec, IpPoolSpec, IpRangeSpec, KeyringSecret, Metadata, NetworkSpec, Power,
    ReservationSpec, RetentionSpec, ScheduleSpec, SecretRef, ShutdownSpec, SshKeySource,
    StoreSecret, TemplateSpec, VirtualMachineSpec,
};
pub use validate::{
    Inventory, MAX_VM_NAME, is_valid_name, load_inventory, load_inventory_without_address_check,
    load_valid_inventory, name_rule,
};
pub(crate) use validate::{parse_interface_address, parse_pool};
