//! The backup part of a plan: which VMs' backups are due under their policy's schedule, and
//! which backups their policy's retention would delete. Pure: the catalog and the time are
//! inputs, so what the plan says is exactly what `ceso backup create` / `prune` would do.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::backup::record::BackupRecord;
use crate::backup::retention::{Candidate, decide};
use crate::desired::DesiredState;

/// What the backup policies call for at the time the plan is made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackupOutlook {
    /// Backups whose scheduled time has come, by VM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub due: Vec<DueBackup>,
    /// Backups retention would delete (`ceso backup prune`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<ExpiringBackup>,
    /// The next scheduled backup of each VM that is not due now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcoming: Vec<UpcomingBackup>,
    /// VMs with a policy whose scheduled backups are paused by `suspend: true`: never due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<SuspendedBackup>,
}

impl BackupOutlook {
    /// Whether there is nothing to say (no VM has a policy).
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
            && self.expiring.is_empty()
            && self.upcoming.is_empty()
            && self.suspended.is_empty()
    }
}

/// A VM whose backup is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueBackup {
    pub vm: String,
    pub policy: String,
    /// The last complete backup under this policy, if any.
    pub last: Option<Timestamp>,
    /// The scheduled time that made it due (the plan's time when there was never a backup).
    pub due_since: Timestamp,
}

/// A backup retention no longer keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringBackup {
    pub id: String,
    pub vm: String,
    pub policy: String,
    pub taken: Timestamp,
}

/// When a VM's next backup is scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpcomingBackup {
    pub vm: String,
    pub policy: String,
    pub at: Timestamp,
}

/// A VM whose scheduled backups `suspend: true` pauses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendedBackup {
    pub vm: String,
    pub policy: String,
    /// The resource whose `suspend: true` pauses it: `VirtualMachine/<name>` or `Host/<name>`.
    pub suspended_by: String,
}

/// The outlook at `now` for every declared VM with a policy, from the catalog's complete
/// backups. Suspended VMs are never due (they are listed as suspended); retention still
/// applies to the backups they have.
pub fn outlook(desired: &DesiredState, catalog: &[BackupRecord], now: Timestamp) -> BackupOutlook {
    let mut out = BackupOutlook::default();
    for vm in desired.vms.values() {
        let Some(policy_name) = &vm.backup_policy else {
            continue;
        };
        let Some(policy) = desired.backup_policies.get(policy_name) else {
            continue;
        };
        if let Some(suspended_by) = desired.suspended.suspended_by(&vm.name, &vm.host) {
            out.suspended.push(SuspendedBackup {
                vm: vm.name.clone(),
                policy: policy_name.clone(),
                suspended_by,
            });
            continue;
        }
        let last = catalog
            .iter()
            .filter(|r| r.vm == vm.name && r.policy.as_deref() == Some(policy_name))
            .map(|r| r.started)
            .max();
        match policy.schedule.due_since(last, now) {
            Some(due_since) => out.due.push(DueBackup {
                vm: vm.name.clone(),
                policy: policy_name.clone(),
                last,
                due_since,
            }),
            None => {
                if let Some(at) = policy.schedule.next_after(now) {
                    out.upcoming.push(UpcomingBackup {
                        vm: vm.name.clone(),
                        policy: policy_name.clone(),
                        at,
                    });
                }
            }
        }
    }
    // Retention, per target, VM and policy, like `ceso backup prune`.
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&BackupRecord>> = BTreeMap::new();
    for r in catalog {
        if let Some(p) = r.policy.as_deref()
            && desired.backup_policies.contains_key(p)
        {
            groups
                .entry((r.target.as_str(), r.vm.as_str(), p))
                .or_default()
                .push(r);
        }
    }
    for ((_, vm, policy_name), records) in groups {
        let policy = &desired.backup_policies[policy_name];
        let candidates: Vec<Candidate> = records
            .iter()
            .map(|r| Candidate {
                id: r.id.clone(),
                created: r.started,
            })
            .collect();
        let decision = decide(&candidates, &policy.retention, policy.schedule.time_zone());
        for id in decision.delete {
            if let Some(r) = records.iter().find(|r| r.id == id) {
                out.expiring.push(ExpiringBackup {
                    id,
                    vm: vm.to_owned(),
                    policy: policy_name.to_owned(),
                    taken: r.started,
                });
            }
        }
    }
    out
}
