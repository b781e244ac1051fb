//! The plan: what will change, in which steps, and what the host looked like when it was made.
//! Knows nothing about text or colour (see [`super::render`]). Serialized as-is it is the
//! documented, versioned JSON plan (`docs/plan-format.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::desired::HostConnection;
use crate::diagnostic::Diagnostic;
use crate::host::HostOp;

/// Version of the JSON plan format. Bumped on any incompatible change.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What happens to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// The Terraform-style marker shown before the resource.
    pub fn glyph(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }

    /// The verb used in the human rendering.
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "unchanged",
            Action::Create => "created",
            Action::Update => "updated in place",
            Action::Replace => "replaced",
            Action::Delete => "deleted",
        }
    }
}

/// One field whose value changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Manifest field, e.g. `cpu`, `memory`, `disks[1].size`.
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The host differs from what ceso last applied: someone changed it outside ceso.
    #[serde(default)]
    pub drift: bool,
    /// The change needs the VM powered off.
    #[serde(default)]
    pub requires_power_off: bool,
    /// The change cannot be made in place: the VM is replaced.
    #[serde(default)]
    pub forces_replacement: bool,
}

impl FieldChange {
    /// What the reviewer should know about this change, for the renderers: `forces
    /// replacement`, `requires power off`, `changed outside ceso`.
    pub fn remarks(&self) -> Vec<&'static str> {
        [
            (self.forces_replacement, "forces replacement"),
            (self.requires_power_off, "requires power off"),
            (self.drift, "changed outside ceso"),
        ]
        .into_iter()
        .filter_map(|(applies, remark)| applies.then_some(remark))
        .collect()
    }
}

/// The planned change of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `VirtualMachine/<name>`.
    pub address: String,
    pub host: String,
    pub name: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The VM will be powered off (and back on, if declared on) for this change.
    #[serde(default)]
    pub power_cycle: bool,
    /// The VM is managed by ceso but no longer in the manifests (kept, or deleted with pruning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undeclared: bool,
    /// Notes for the reviewer, e.g. why a managed VM is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What the plan would do to a resource that `suspend: true` pauses. No step does it: the
/// plan only shows it, so drift stays visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendedChange {
    /// The resource whose `suspend: true` pauses this one: `VirtualMachine/<name>` (its own
    /// manifest) or `Host/<name>` (its host's).
    pub suspended_by: String,
    /// The change as it would be without the suspension (`action` `noop` when the VM matches
    /// its manifest).
    #[serde(flatten)]
    pub change: ResourceChange,
}

impl SuspendedChange {
    /// Whether the resource differs from what the manifests declare.
    pub fn differs(&self) -> bool {
        self.change.action != Action::NoOp
    }
}

/// One operation on a host, with what must have succeeded before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Position in [`Plan::steps`].
    pub id: usize,
    /// Address of the resource the step belongs to.
    pub resource: String,
    pub host: String,
    /// One line for people, e.g. `power off web-01`.
    pub description: String,
    /// Steps that must have succeeded first; when one did not, this step is skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<usize>,
    /// Steps that must have finished first, whatever their outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
    /// Puts back what an earlier step undid (powering a VM back on after a power cycle), so it
    /// runs even when the run is interrupted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compensating: bool,
    pub op: HostOp,
}

/// A VM on a host that ceso did not create and never touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnmanagedVm {
    pub host: String,
    pub name: String,
    pub moref: String,
    /// The template whose disk the VM holds (`ceso.template`), for a VM `ceso template
    /// import` made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// Fingerprints of the VMs a plan depends on, per host then VM name: a saved plan is refused
/// when any of them changed.
pub type ObservedFingerprints =
    BTreeMap<String, BTreeMap<String, super::fingerprint::VmFingerprint>>;

/// Counts per action, for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    /// Resources left as they are because `suspend: true` pauses them ([`Plan::suspended`]),
    /// whether they differ from the manifests or not. Not changes: they do not count in
    /// [`Summary::has_changes`].
    #[serde(default)]
    pub suspended: usize,
}

impl Summary {
    /// Counts the actions of `changes` (the suspended count stays 0: see [`Summary::of_plan`]).
    pub fn of(changes: &[ResourceChange]) -> Self {
        let mut summary = Summary::default();
        for change in changes {
            match change.action {
                Action::NoOp => {}
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Replace => summary.replace += 1,
                Action::Delete => summary.delete += 1,
            }
        }
        summary
    }

    /// Counts the actions of `changes` and the `suspended` resources.
    pub fn of_plan(changes: &[ResourceChange], suspended: &[SuspendedChange]) -> Self {
        Summary {
            suspended: suspended.len(),
            ..Summary::of(changes)
        }
    }

    /// Whether the plan changes anything (suspended resources never count).
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

/// A reviewable plan. What is reviewed is exactly what runs: every decision is made here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub plan_id: String,
    /// RFC 3339 time the plan was made.
    pub created_at: String,
    pub ceso_version: String,
    /// The inventory the plan was made from, as given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
    /// How to reach each host the plan touches (password references only).
    pub hosts: BTreeMap<String, HostConnection>,
    pub summary: Summary,
    pub changes: Vec<ResourceChange>,
    /// Resources `suspend: true` pauses, with what the plan would do to them; no step acts on
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<SuspendedChange>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<UnmanagedVm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    pub observed: ObservedFingerprints,
    /// For each host whose manifest declares `spec.access`: its governed firewall rulesets as
    /// observed, and which of them ceso needs (a saved plan is refused when they changed, or
    /// when its new lists would lock out the machine applying it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firewall: BTreeMap<String, super::access::PlannedAccess>,
    /// Backups due and backups retention would delete (shown by `ceso plan`; `apply` takes
    /// no backups).
    #[serde(
        default,
        skip_serializing_if = "super::backups::BackupOutlook::is_empty"
    )]
    pub backups: super::backups::BackupOutlook,
}

impl Plan {
    /// Whether applying would change anything (what suspended resources would get does not
    /// count).
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes()
    }

    /// The part of the plan about one resource (`VirtualMachine/web-01`): its change (or what
    /// it would get, when suspended) and steps (renumbered), the errors about it or about no VM
    /// in particular. Returns how many other resources had changes that were left out.
    pub fn restrict_to(&mut self, address: &str) -> usize {
        let others = self
            .changes
            .iter()
            .filter(|c| c.address != address && c.action != Action::NoOp)
            .count();
        self.changes.retain(|c| c.address == address);
        self.suspended.retain(|s| s.change.address == address);
        let mut renumbered = BTreeMap::new();
        let steps = std::mem::take(&mut self.steps);
        for mut step in steps.into_iter().filter(|s| s.resource == address) {
            renumbered.insert(step.id, renumbered.len());
            step.id = renumbered.len() - 1;
            // Steps of one resource only depend on steps of the same resource.
            step.depends_on = step
                .depends_on
                .iter()
                .filter_map(|d| renumbered.get(d).copied())
                .collect();
            step.after = step
                .after
                .iter()
                .filter_map(|d| renumbered.get(d).copied())
                .collect();
            self.steps.push(step);
        }
        self.diagnostics.retain(|d| {
            let firewall = d.field.as_deref() == Some(super::access::ACCESS_FIELD);
            d.resource
                .as_deref()
                .is_none_or(|r| r == address || !(r.starts_with("VirtualMachine/") || firewall))
        });
        self.firewall
            .retain(|host, _| address.strip_prefix("Host/") == Some(host.as_str()));
        self.summary = Summary::of_plan(&self.changes, &self.suspended);
        others
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}
