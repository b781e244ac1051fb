//! `BackupPolicy` documents turned into the [`BackupPolicy`] the backup code uses, or into the
//! problems of the values that cannot be used, each at its field.

use std::path::Path;

use super::types::{
    BackupPolicySpec, BackupTargetSpec, DatastoreTargetSpec, DirectoryTargetSpec, RetentionSpec,
};
use crate::backup::policy::{
    BackupPolicy, DEFAULT_TIME_ZONE, Retention, SCHEDULE_EXAMPLE, Schedule, ScheduleError,
    TargetSpec,
};

/// One unusable value of a policy: the field, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyProblem {
    pub field: &'static str,
    pub message: String,
    pub hint: String,
}

impl PolicyProblem {
    fn new(field: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        PolicyProblem {
            field,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Resolves a policy: its schedule parsed, and a relative `directory` made absolute from
/// `inventory_dir` (the inventory directory).
pub(crate) fn parse_backup_policy(
    name: &str,
    spec: &BackupPolicySpec,
    inventory_dir: &Path,
) -> Result<BackupPolicy, Vec<PolicyProblem>> {
    let mut problems = Vec::new();
    let time_zone = spec
        .schedule
        .time_zone
        .as_deref()
        .unwrap_or(DEFAULT_TIME_ZONE);
    let schedule = Schedule::parse(&spec.schedule.cron, time_zone)
        .map_err(|error| problems.push(schedule_problem(error)))
        .ok();
    let retention = retention(&spec.retention);
    if retention.keeps_nothing() {
        problems.push(PolicyProblem::new(
            "spec.retention",
            "the retention keeps no backup",
            "set at least one of keepLast, keepDaily, keepWeekly and keepMonthly above 0, e.g. `retention: { keepLast: 3, keepDaily: 7 }`",
        ));
    }
    let target = target(&spec.target, inventory_dir)
        .map_err(|problem| problems.push(problem))
        .ok();
    match (schedule, target) {
        (Some(schedule), Some(target)) if problems.is_empty() => Ok(BackupPolicy {
            name: name.to_owned(),
            schedule,
            retention,
            target,
            quiesce: spec.quiesce,
        }),
        _ => Err(problems),
    }
}

fn schedule_problem(error: ScheduleError) -> PolicyProblem {
    let hint = match &error {
        ScheduleError::UnknownTimeZone {
            suggestion: Some(zone),
            ..
        } => format!("did you mean `{zone}`? time zones are IANA names such as Europe/Berlin"),
        ScheduleError::UnknownTimeZone {
            suggestion: None, ..
        } => "write an IANA time zone name such as Europe/Berlin or America/New_York, or omit it for UTC".to_owned(),
        ScheduleError::Cron { .. } => {
            format!("write a standard 5-field cron expression (minute hour day-of-month month day-of-week), e.g. {SCHEDULE_EXAMPLE}")
        }
    };
    let field = match error {
        ScheduleError::UnknownTimeZone { .. } => "spec.schedule.timeZone",
        ScheduleError::Cron { .. } => "spec.schedule.cron",
    };
    PolicyProblem::new(field, error.to_string(), hint)
}

fn retention(spec: &RetentionSpec) -> Retention {
    Retention {
        keep_last: spec.keep_last,
        keep_daily: spec.keep_daily,
        keep_weekly: spec.keep_weekly,
        keep_monthly: spec.keep_monthly,
    }
}

const TARGET_HINT: &str = "write `directory: { path: ../backups }` (on the machine running ceso) or `datastore: { datastore: datastore1, folder: ceso-backups }` (on the VM's host)";

fn target(spec: &BackupTargetSpec, inventory_dir: &Path) -> Result<TargetSpec, PolicyProblem> {
    match (&spec.directory, &spec.datastore) {
        (Some(_), Some(_)) => Err(PolicyProblem::new(
            "spec.target",
            "both `directory` and `datastore` are given",
            "a policy writes to one target: keep one of them",
        )),
        (None, None) => Err(PolicyProblem::new(
            "spec.target",
            "no target: give `directory` or `datastore`",
            TARGET_HINT,
        )),
        (Some(DirectoryTargetSpec { path }), None) => {
            if path.as_os_str().is_empty() || path.to_string_lossy().trim().is_empty() {
                return Err(PolicyProblem::new(
                    "spec.target.directory.path",
                    "the directory path is empty",
                    "name a directory, e.g. `path: ../backups` (relative to the inventory directory)",
                ));
            }
            let path = inventory_dir.join(super::validate::expand_home(path));
            Ok(TargetSpec::Directory {
                path: std::path::absolute(&path).unwrap_or(path),
            })
        }
        (None, Some(DatastoreTargetSpec { datastore, folder })) => {
            if datastore.trim().is_empty() {
                return Err(PolicyProblem::new(
                    "spec.target.datastore.datastore",
                    "the datastore name is empty",
                    "name a datastore of the VM's host, e.g. datastore1",
                ));
            }
            folder_problem(folder)
                .map(|message| {
                    Err(PolicyProblem::new(
                        "spec.target.datastore.folder",
                        message,
                        "write a folder relative to the datastore's root, e.g. ceso-backups or backups/ceso",
                    ))
                })
                .unwrap_or_else(|| {
                    Ok(TargetSpec::Datastore {
                        datastore: datastore.clone(),
                        folder: folder.trim_end_matches('/').to_owned(),
                    })
                })
        }
    }
}

/// What is wrong with a datastore folder, if anything: it must stay inside the datastore.
fn folder_problem(folder: &str) -> Option<String> {
    if folder.trim().is_empty() {
        Some("the folder is empty".to_owned())
    } else if folder.starts_with('/') {
        Some(format!("folder {folder:?} starts with `/`"))
    } else if folder.split(['/', '\\']).any(|part| part == "..") {
        Some(format!(
            "folder {folder:?} leads out of its parent with `..`"
        ))
    } else {
        None
    }
}
