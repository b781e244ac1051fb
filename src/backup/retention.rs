//! Which backups a policy keeps: a pure function of the backups' times, the retention counts and
//! the policy's time zone, with restic's and borg's semantics.
//!
//! Backups are taken newest first. `keepLast` keeps the N newest. `keepDaily` keeps the newest
//! backup of each of the N most recent calendar days (in the time zone) that have backups;
//! `keepWeekly` does the same per ISO week and `keepMonthly` per month. A backup kept by any rule
//! is kept; every other one is deleted.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::policy::Retention;

/// A backup retention may keep or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The backup's id, unique among the candidates.
    pub id: String,
    /// When the backup was made.
    pub created: Timestamp,
}

/// What retention keeps and deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionDecision {
    /// The kept backups by id, with the rules keeping each: `"last"`, `"daily"`, `"weekly"`,
    /// `"monthly"`. The list is empty when the retention has no rule, which keeps everything.
    pub keep: BTreeMap<String, Vec<&'static str>>,
    /// The ids of the backups to delete, oldest first.
    pub delete: Vec<String>,
}

/// Decides which of `candidates` `retention` keeps, days, weeks and months being counted in
/// `tz`. A retention whose counts are all zero keeps everything (validation refuses such a
/// policy; this is the safe answer should one get here). Backups made at the same instant are
/// ordered by id, the greater id counting as the newer. An id listed twice counts once, at its
/// newest time.
pub fn decide(candidates: &[Candidate], retention: &Retention, tz: &TimeZone) -> RetentionDecision {
    let mut newest_first: Vec<&Candidate> = candidates.iter().collect();
    newest_first.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let mut seen = BTreeSet::new();
    newest_first.retain(|c| seen.insert(c.id.as_str()));

    let mut keep: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    if retention.keeps_nothing() {
        keep.extend(newest_first.iter().map(|c| (c.id.clone(), Vec::new())));
        return RetentionDecision {
            keep,
            delete: Vec::new(),
        };
    }

    for candidate in newest_first.iter().take(count(retention.keep_last)) {
        keep.entry(candidate.id.clone()).or_default().push("last");
    }
    let rules = [
        (Calendar::Day, retention.keep_daily),
        (Calendar::Week, retention.keep_weekly),
        (Calendar::Month, retention.keep_monthly),
    ];
    for (calendar, limit) in rules {
        let mut last_period = None;
        let mut kept = 0;
        for candidate in &newest_first {
            if kept == count(limit) {
                break;
            }
            let period = calendar.period_of(candidate.created.to_zoned(tz.clone()).date());
            if last_period != Some(period) {
                // The newest backup of a period it has not seen yet.
                last_period = Some(period);
                kept += 1;
                keep.entry(candidate.id.clone())
                    .or_default()
                    .push(calendar.rule());
            }
        }
    }

    let delete = newest_first
        .iter()
        .rev()
        .filter(|c| !keep.contains_key(&c.id))
        .map(|c| c.id.clone())
        .collect();
    RetentionDecision { keep, delete }
}

/// How a rule groups backups.
#[derive(Debug, Clone, Copy)]
enum Calendar {
    Day,
    Week,
    Month,
}

impl Calendar {
    /// The rule's name in [`RetentionDecision::keep`].
    fn rule(self) -> &'static str {
        match self {
            Calendar::Day => "daily",
            Calendar::Week => "weekly",
            Calendar::Month => "monthly",
        }
    }

    fn period_of(self, date: jiff::civil::Date) -> Period {
        match self {
            Calendar::Day => Period::Day(date),
            Calendar::Week => {
                let week = date.iso_week_date();
                Period::Week(week.year(), week.week())
            }
            Calendar::Month => Period::Month(date.year(), date.month()),
        }
    }
}

/// A calendar period backups are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day(jiff::civil::Date),
    /// ISO week-numbering year and week.
    Week(i16, i8),
    Month(i16, i8),
}

fn count(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}
