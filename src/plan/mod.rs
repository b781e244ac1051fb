//! Plans: the model, the pure planner that makes them, and their renderings.

mod access;
mod addressing;
pub mod backups;
mod diff;
mod fingerprint;
pub mod markdown;
mod model;
pub mod render;
mod stale;

pub use access::{ACCESS_FIELD, PlannedAccess, governed_rulesets};
pub use addressing::{Addressing, applied_settings, assign_addresses, holdings};
pub use diff::{
    CREATE_VM, DEFAULT_GUEST_IP_TIMEOUT_SECS, ObservedState, PlanMeta, PlanOptions, datastore_of,
    diff,
};
pub use fingerprint::{VmFingerprint, differences, fingerprint, host_fingerprints};
pub use model::{
    Action, FieldChange, ObservedFingerprints, PLAN_FORMAT_VERSION, Plan, ResourceChange, Step,
    Summary, SuspendedChange, UnmanagedVm,
};
pub use stale::{stale_reasons, structure_problems};
