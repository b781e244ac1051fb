//! Plans: the model, the pure planner that makes them, and their renderings.

mod diff;
mod model;
pub mod render;
mod stale;

pub use diff::{
    ObservedState, PlanMeta, PlanOptions, datastore_of, diff, fingerprint, host_fingerprints,
};
pub use model::{
    Action, FieldChange, ObservedFingerprints, PLAN_FORMAT_VERSION, Plan, ResourceChange, Step,
    Summary, UnmanagedVm,
};
pub use stale::stale_reasons;
