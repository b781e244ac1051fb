//! Backup policies as the rest of ceso uses them: resolved from a `BackupPolicy` manifest, with a
//! parsed schedule in its time zone, the retention counts and an absolute target.
//!
//! Schedules are standard 5-field cron expressions (minute hour day-of-month month day-of-week)
//! or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, read in an IANA time zone. They are
//! evaluated by `jiff-cron`, whose format has a seconds field and numbers the days of the week
//! 1–7 from Sunday; [`Schedule::parse`] translates, so `0`/`7` mean Sunday and `1-5` Monday to
//! Friday as in crontab(5).
//!
//! Two rules of crontab(5) that `jiff-cron` does not follow are refused rather than silently
//! changed: a day-of-month *and* a day-of-week restriction (crontab fires when *either* matches),
//! and the seconds and years fields of other cron dialects.
//!
//! Every wall-clock time the expression matches fires once. Around daylight saving time changes:
//! a time in the hour skipped in spring fires when the clocks have gone forward (02:30 becomes
//! 03:30 in Europe/Berlin); a time in the hour repeated in autumn fires at its first occurrence
//! only (so an hourly schedule fires once in that hour too).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A backup policy, validated and resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicy {
    /// `metadata.name` of the `BackupPolicy`.
    pub name: String,
    /// When backups are due.
    pub schedule: Schedule,
    /// Which backups are kept.
    pub retention: Retention,
    /// Where backups are written.
    pub target: TargetSpec,
    /// Quiesce the guest file systems when VMware Tools run.
    pub quiesce: bool,
}

/// How many backups of a VM a policy keeps, restic/borg style: the `keep_last` newest, and the
/// newest of each of the `keep_daily` most recent days (weeks, months) that have backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Retention {
    /// Whether no rule keeps anything (such a policy is refused by validation, and
    /// [`super::retention::decide`] keeps everything rather than delete every backup).
    pub fn keeps_nothing(&self) -> bool {
        self.total() == 0
    }

    /// The most backups the rules can keep together: the sum of the counts.
    pub fn total(&self) -> u64 {
        [
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
        ]
        .into_iter()
        .map(u64::from)
        .sum()
    }
}

/// Where a policy's backups go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetSpec {
    /// A directory on the machine running ceso (content-addressed chunks).
    Directory {
        /// Absolute: relative paths in manifests are resolved against the inventory directory.
        path: PathBuf,
    },
    /// A folder on a datastore of the VM's own host (disks copied on the host).
    Datastore {
        /// The datastore's name, e.g. `datastore1`.
        datastore: String,
        /// The folder on it, relative to its root, e.g. `ceso-backups`.
        folder: String,
    },
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ScheduleRecord", into = "ScheduleRecord")]
pub struct Schedule {
    /// The expression as written in the manifest.
    expression: String,
    /// The expression in `jiff-cron`'s format.
    cron: jiff_cron::Schedule,
    time_zone: TimeZone,
    /// The IANA name of `time_zone`.
    time_zone_name: String,
}

/// How a schedule is stored (e.g. in a saved plan): as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRecord {
    cron: String,
    time_zone: String,
}

impl TryFrom<ScheduleRecord> for Schedule {
    type Error = ScheduleError;

    fn try_from(record: ScheduleRecord) -> Result<Self, Self::Error> {
        Schedule::parse(&record.cron, &record.time_zone)
    }
}

impl From<Schedule> for ScheduleRecord {
    fn from(schedule: Schedule) -> Self {
        ScheduleRecord {
            cron: schedule.expression,
            time_zone: schedule.time_zone_name,
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.time_zone_name == other.time_zone_name
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.time_zone_name)
    }
}

/// The time zone schedules use when the manifest names none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// An example of a valid schedule, for messages.
pub const SCHEDULE_EXAMPLE: &str =
    "\"30 2 * * *\" (02:30 every day), \"0 3 * * 1-5\" (03:00 Monday to Friday) or @daily";

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression {expression:?}: {problem}")]
    Cron {
        expression: String,
        problem: CronProblem,
    },
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone {
        name: String,
        /// The IANA name it probably means.
        suggestion: Option<String>,
    },
}

/// What is wrong with a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronProblem {
    #[error("it is empty")]
    Empty,
    #[error(
        "{found} fields: seconds and years are not supported; use the standard 5 fields (minute hour day-of-month month day-of-week)"
    )]
    SecondsOrYears { found: usize },
    #[error("{found} field(s) where cron has 5 (minute hour day-of-month month day-of-week)")]
    FieldCount { found: usize },
    #[error("unknown shorthand: use @hourly, @daily, @weekly, @monthly or @yearly")]
    UnknownShorthand,
    #[error(
        "{item:?} is not a day of the week: use 0-7 (0 and 7 are Sunday), ranges such as 1-5, or names such as mon-fri"
    )]
    DayOfWeek { item: String },
    #[error(
        "it restricts both the day of month and the day of week; crontab would run on either, which ceso does not support"
    )]
    DayOfMonthAndWeek,
    #[error("{reason}")]
    Field { reason: String },
    #[error("it matches no date (such as 30 February), so it never fires")]
    NeverFires,
}

impl Schedule {
    /// Parses a standard cron expression (5 fields, or `@daily` and the like) and an IANA time
    /// zone name such as `Europe/Berlin`.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let expression = expression.trim();
        let invalid = |problem| ScheduleError::Cron {
            expression: expression.to_owned(),
            problem,
        };
        let translated = to_jiff_cron(expression).map_err(invalid)?;
        let cron = jiff_cron::Schedule::from_str(&translated).map_err(|e| {
            // jiff-cron's message ends with its reason, after the expression and a caret
            // pointing into the translated form.
            let message = e.to_string();
            let reason = message
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("not a cron expression");
            invalid(CronProblem::Field {
                // jiff-cron names the inclusive maximum after "less than".
                reason: reason.replace(" must be less than ", " must be at most "),
            })
        })?;
        let (time_zone, time_zone_name) = resolve_time_zone(time_zone)?;
        let schedule = Schedule {
            expression: expression.to_owned(),
            cron,
            time_zone,
            time_zone_name,
        };
        if schedule.next_after(Timestamp::UNIX_EPOCH).is_none() {
            return Err(invalid(CronProblem::NeverFires));
        }
        Ok(schedule)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone fire times are computed in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The IANA name of the time zone, e.g. `Europe/Berlin`.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        // jiff-cron walks wall-clock times here in UTC, which has no daylight saving changes
        // (in a zone with them it may skip a day's fire time or yield a repeated time twice);
        // each match is then placed in the policy's zone: a time repeated when the clocks go
        // back at its first occurrence, a skipped one as far after the gap as it was into it.
        let wall_clock = t.to_zoned(self.time_zone.clone()).datetime();
        let start = wall_clock.to_zoned(TimeZone::UTC).ok()?;
        self.cron.after(start).find_map(|matched| {
            let fire = self
                .time_zone
                .to_zoned(matched.datetime())
                .ok()?
                .timestamp();
            (fire > t).then_some(fire)
        })
    }

    /// Whether a backup is due at `now` given the last good backup's time: the first fire time
    /// after `last` is at or before `now`. A VM never backed up is due at once (returns `now`).
    /// Returns the fire time that made it due.
    pub fn due_since(&self, last: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        match last {
            None => Some(now),
            Some(last) => self.next_after(last).filter(|fire| *fire <= now),
        }
    }
}

/// Turns a standard cron expression (trimmed) into `jiff-cron`'s format.
fn to_jiff_cron(expression: &str) -> Result<String, CronProblem> {
    if expression.is_empty() {
        return Err(CronProblem::Empty);
    }
    if expression.starts_with('@') {
        return match expression {
            "@yearly" | "@annually" => Ok("@yearly".to_owned()),
            "@monthly" | "@weekly" | "@hourly" => Ok(expression.to_owned()),
            "@daily" | "@midnight" => Ok("@daily".to_owned()),
            _ => Err(CronProblem::UnknownShorthand),
        };
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
        return Err(match fields.len() {
            found @ (6 | 7) => CronProblem::SecondsOrYears { found },
            found => CronProblem::FieldCount { found },
        });
    };
    let restricted = |field: &str| !field.starts_with('*') && field != "?";
    if restricted(day_of_month) && restricted(day_of_week) {
        return Err(CronProblem::DayOfMonthAndWeek);
    }
    let day_of_week = day_of_week
        .split(',')
        .map(translate_day_of_week)
        .collect::<Result<Vec<_>, _>>()?
        .join(",");
    Ok(format!(
        "0 {minute} {hour} {day_of_month} {month} {day_of_week}"
    ))
}

/// One item of a day-of-week list, from crontab's numbers (0–7, Sunday being 0 and 7) to
/// `jiff-cron`'s (1–7 from Sunday). Names and `*` mean the same in both and are kept.
fn translate_day_of_week(item: &str) -> Result<String, CronProblem> {
    if item.starts_with(['*', '?']) || item.contains(|c: char| c.is_ascii_alphabetic()) {
        return Ok(item.to_owned());
    }
    let invalid = || CronProblem::DayOfWeek {
        item: item.to_owned(),
    };
    let day = |text: &str| {
        text.parse::<u32>()
            .ok()
            .filter(|d| *d <= 7)
            .ok_or_else(invalid)
    };
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (
            range,
            Some(
                step.parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(invalid)?,
            ),
        ),
        None => (item, None),
    };
    let (first, last) = match range.split_once('-') {
        Some((first, last)) => (day(first)?, day(last)?),
        // `a/s` runs from `a` to the end of the week.
        None if step.is_some() => (day(range)?, 7),
        None => (day(range)?, day(range)?),
    };
    if first > last {
        return Err(invalid());
    }
    let days: BTreeSet<u32> = (first..=last)
        .step_by(step.unwrap_or(1))
        .map(|d| d % 7 + 1)
        .collect();
    Ok(days
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// The time zone named `name` and its canonical IANA name.
fn resolve_time_zone(name: &str) -> Result<(TimeZone, String), ScheduleError> {
    let name = name.trim();
    // UTC needs no time zone database.
    if name.eq_ignore_ascii_case("UTC") {
        return Ok((TimeZone::UTC, "UTC".to_owned()));
    }
    match TimeZone::get(name) {
        Ok(zone) if !name.is_empty() => {
            let canonical = zone.iana_name().unwrap_or(name).to_owned();
            Ok((zone, canonical))
        }
        _ => Err(ScheduleError::UnknownTimeZone {
            name: name.to_owned(),
            suggestion: suggest_time_zone(name),
        }),
    }
}

/// The IANA time zone a mistyped or partial name (`Europe/Berln`, `berlin`) probably means.
fn suggest_time_zone(name: &str) -> Option<String> {
    let wanted = name.to_lowercase();
    if wanted.is_empty() {
        return None;
    }
    let suffix = format!("/{wanted}");
    jiff::tz::db()
        .available()
        .map(|zone| zone.as_str().to_owned())
        .filter_map(|zone| {
            let lower = zone.to_lowercase();
            let distance = if lower.ends_with(&suffix) {
                0
            } else {
                strsim::levenshtein(&wanted, &lower)
            };
            (distance <= 2.min(lower.len() / 3).max(1)).then_some((distance, zone))
        })
        .min()
        .map(|(_, zone)| zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_fields_gain_seconds_and_days_of_the_week_are_renumbered() {
        assert_eq!(to_jiff_cron("30 2 * * *").unwrap(), "0 30 2 * * *");
        assert_eq!(
            to_jiff_cron(" 0 3 * * 1-5 ").unwrap(),
            "0 0 3 * * 2,3,4,5,6"
        );
        assert_eq!(to_jiff_cron("0 3 * * 0").unwrap(), "0 0 3 * * 1");
        assert_eq!(to_jiff_cron("0 3 * * 7").unwrap(), "0 0 3 * * 1");
        assert_eq!(to_jiff_cron("0 3 * * 5-7").unwrap(), "0 0 3 * * 1,6,7");
        assert_eq!(
            to_jiff_cron("0 3 * * 0-6/2,mon").unwrap(),
            "0 0 3 * * 1,3,5,7,mon"
        );
        assert_eq!(to_jiff_cron("0 3 * * 3/2").unwrap(), "0 0 3 * * 1,4,6");
        assert_eq!(to_jiff_cron("0 3 * * */2").unwrap(), "0 0 3 * * */2");
        assert_eq!(to_jiff_cron("@midnight").unwrap(), "@daily");
    }

    #[test]
    fn malformed_days_of_the_week_are_refused() {
        for item in ["8", "5-1", "1-", "1/0", "-1"] {
            assert_eq!(
                translate_day_of_week(item),
                Err(CronProblem::DayOfWeek { item: item.into() }),
                "{item}"
            );
        }
    }

    #[test]
    fn time_zone_suggestions() {
        assert_eq!(
            suggest_time_zone("Europe/Berln").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(
            suggest_time_zone("berlin").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(suggest_time_zone("Mars/Olympus_Mons"), None);
    }
}
