//! Backup policies: when a schedule fires and when a backup is due (time zones, daylight saving
//! time, crontab's numbering), and which backups retention keeps.

use std::collections::BTreeSet;

use ceso::backup::policy::{
    BackupPolicy, CronProblem, Retention, Schedule, ScheduleError, TargetSpec,
};
use ceso::backup::retention::{Candidate, RetentionDecision, decide};
use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;

const BERLIN: &str = "Europe/Berlin";

fn berlin() -> TimeZone {
    TimeZone::get(BERLIN).expect("the time zone database has Europe/Berlin")
}

/// An instant given as Berlin wall-clock time, `2025-06-11 02:30`. In the hour repeated in
/// autumn this is the first occurrence.
fn local(text: &str) -> Timestamp {
    let civil: DateTime = text.parse().expect("a civil date and time");
    civil.to_zoned(berlin()).expect("a Berlin time").timestamp()
}

/// An instant with an explicit offset, `2025-10-26T02:30:00+01:00`.
fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 timestamp")
}

/// A fire time as Berlin wall-clock time with its offset.
fn in_berlin(t: Timestamp) -> String {
    t.to_zoned(berlin()).strftime("%F %a %H:%M %:z").to_string()
}

fn fire_times(schedule: &Schedule, after: Timestamp, count: usize) -> Vec<String> {
    std::iter::successors(schedule.next_after(after), |t| schedule.next_after(*t))
        .take(count)
        .map(in_berlin)
        .collect()
}

fn nightly() -> Schedule {
    Schedule::parse("30 2 * * *", BERLIN).unwrap()
}

#[test]
fn a_nightly_backup_is_due_at_the_first_fire_time_after_the_last_backup() {
    let schedule = nightly();
    let last = Some(local("2025-06-10 02:31"));
    assert_eq!(schedule.due_since(last, local("2025-06-11 02:29")), None);
    assert_eq!(
        schedule.due_since(last, local("2025-06-11 02:30")),
        Some(local("2025-06-11 02:30"))
    );
    assert_eq!(
        schedule.due_since(last, local("2025-06-13 09:00")),
        Some(local("2025-06-11 02:30")),
        "several missed nights make one backup due, since the first of them"
    );
}

#[test]
fn a_backup_made_after_the_fire_time_is_not_due_again_until_the_next_night() {
    let schedule = nightly();
    let last = Some(local("2025-06-11 02:45"));
    assert_eq!(schedule.due_since(last, local("2025-06-11 23:59")), None);
    assert_eq!(
        schedule.due_since(last, local("2025-06-12 02:30")),
        Some(local("2025-06-12 02:30"))
    );
}

#[test]
fn a_vm_never_backed_up_is_due_at_once() {
    let now = local("2025-06-11 14:00");
    assert_eq!(nightly().due_since(None, now), Some(now));
}

#[test]
fn the_next_fire_time_is_strictly_after_the_given_instant() {
    let schedule = nightly();
    assert_eq!(
        schedule.next_after(local("2025-06-11 02:30")),
        Some(local("2025-06-12 02:30"))
    );
    assert_eq!(
        schedule.next_after(local("2025-06-11 02:29:59.999")),
        Some(local("2025-06-11 02:30"))
    );
}

#[test]
fn the_time_zone_decides_the_instant() {
    let utc = Schedule::parse("30 2 * * *", "UTC").unwrap();
    assert_eq!(
        utc.next_after(at("2025-06-11T00:00:00Z")),
        Some(at("2025-06-11T02:30:00Z"))
    );
    assert_eq!(
        nightly().next_after(at("2025-06-11T00:00:00Z")),
        Some(at("2025-06-11T00:30:00Z")),
        "02:30 in Berlin in summer is 00:30 UTC"
    );
}

#[test]
fn when_clocks_go_forward_the_skipped_time_fires_once_after_the_gap() {
    for start in ["2025-03-29 12:00", "2025-03-30 00:00", "2025-03-30 01:59"] {
        assert_eq!(
            nightly().next_after(local(start)).map(in_berlin).as_deref(),
            Some("2025-03-30 Sun 03:30 +02:00"),
            "from {start}"
        );
    }
    // 30 March 2025: 02:00 CET becomes 03:00 CEST, so there is no 02:30.
    assert_eq!(
        fire_times(&nightly(), local("2025-03-28 12:00"), 3),
        [
            "2025-03-29 Sat 02:30 +01:00",
            "2025-03-30 Sun 03:30 +02:00",
            "2025-03-31 Mon 02:30 +02:00",
        ]
    );
    let hourly = Schedule::parse("@hourly", BERLIN).unwrap();
    assert_eq!(
        fire_times(&hourly, local("2025-03-30 00:30"), 3),
        [
            "2025-03-30 Sun 01:00 +01:00",
            "2025-03-30 Sun 03:00 +02:00",
            "2025-03-30 Sun 04:00 +02:00",
        ]
    );
    let last = Some(local("2025-03-29 02:31"));
    assert_eq!(nightly().due_since(last, local("2025-03-30 03:29")), None);
    assert_eq!(
        nightly().due_since(last, local("2025-03-30 03:30")),
        Some(local("2025-03-30 03:30"))
    );
}

#[test]
fn when_clocks_go_back_a_repeated_time_fires_once_at_its_first_occurrence() {
    // 26 October 2025: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    assert_eq!(
        fire_times(&nightly(), local("2025-10-24 12:00"), 3),
        [
            "2025-10-25 Sat 02:30 +02:00",
            "2025-10-26 Sun 02:30 +02:00",
            "2025-10-27 Mon 02:30 +01:00",
        ]
    );
    let last = Some(local("2025-10-25 02:31"));
    assert_eq!(
        nightly().due_since(last, at("2025-10-26T02:29:00+02:00")),
        None
    );
    assert_eq!(
        nightly().due_since(last, at("2025-10-26T02:30:00+02:00")),
        Some(at("2025-10-26T02:30:00+02:00"))
    );
    let backed_up_at_the_first = Some(at("2025-10-26T02:31:00+02:00"));
    assert_eq!(
        nightly().due_since(backed_up_at_the_first, at("2025-10-26T02:30:00+01:00")),
        None,
        "the second 02:30 does not make another backup due"
    );
    assert_eq!(
        nightly().next_after(at("2025-10-26T02:31:00+02:00")),
        Some(local("2025-10-27 02:30"))
    );
}

#[test]
fn an_hourly_schedule_fires_once_per_wall_clock_hour_through_the_autumn_change() {
    let hourly = Schedule::parse("@hourly", BERLIN).unwrap();
    assert_eq!(
        fire_times(&hourly, at("2025-10-26T00:30:00+02:00"), 4),
        [
            "2025-10-26 Sun 01:00 +02:00",
            "2025-10-26 Sun 02:00 +02:00",
            "2025-10-26 Sun 03:00 +01:00",
            "2025-10-26 Sun 04:00 +01:00",
        ]
    );
}

#[test]
fn days_of_the_week_are_numbered_as_in_crontab() {
    let weekdays = |expression: &str| -> Vec<Weekday> {
        let schedule = Schedule::parse(expression, BERLIN).unwrap();
        std::iter::successors(schedule.next_after(local("2025-06-08 12:00")), |t| {
            schedule.next_after(*t)
        })
        .take_while(|t| *t < local("2025-06-15 12:00"))
        .map(|t| t.to_zoned(berlin()).weekday())
        .collect()
    };
    use Weekday::*;
    assert_eq!(weekdays("0 3 * * 0"), [Sunday]);
    assert_eq!(weekdays("0 3 * * 7"), [Sunday]);
    assert_eq!(weekdays("0 3 * * 1"), [Monday]);
    assert_eq!(weekdays("0 3 * * sat"), [Saturday]);
    assert_eq!(
        weekdays("0 3 * * 1-5"),
        [Monday, Tuesday, Wednesday, Thursday, Friday]
    );
    assert_eq!(weekdays("0 3 * * mon-fri"), weekdays("0 3 * * 1-5"));
    assert_eq!(weekdays("0 3 * * 5-7"), [Friday, Saturday, Sunday]);
    assert_eq!(weekdays("0 3 * * 0,3"), [Wednesday, Sunday]);
    assert_eq!(
        weekdays("0 3 * * */2"),
        [Tuesday, Thursday, Saturday, Sunday],
        "every other day from Sunday (0)"
    );
}

#[test]
fn shorthands_and_names_mean_what_crontab_says() {
    let first = |expression: &str| {
        let schedule = Schedule::parse(expression, BERLIN).unwrap();
        in_berlin(schedule.next_after(local("2025-06-11 14:10")).unwrap())
    };
    assert_eq!(first("@hourly"), "2025-06-11 Wed 15:00 +02:00");
    assert_eq!(first("@daily"), "2025-06-12 Thu 00:00 +02:00");
    assert_eq!(first("@midnight"), first("@daily"));
    assert_eq!(first("@weekly"), "2025-06-15 Sun 00:00 +02:00");
    assert_eq!(first("@monthly"), "2025-07-01 Tue 00:00 +02:00");
    assert_eq!(first("@yearly"), "2026-01-01 Thu 00:00 +01:00");
    assert_eq!(first("@annually"), first("@yearly"));
    assert_eq!(first("0 3 1 jan *"), "2026-01-01 Thu 03:00 +01:00");
    assert_eq!(
        first("*/20 9-17 * * mon-fri"),
        "2025-06-11 Wed 14:20 +02:00"
    );
}

#[test]
fn the_time_zone_defaults_to_utc_and_takes_its_canonical_name() {
    let schedule = Schedule::parse(" 30 2 * * * ", "europe/berlin").unwrap();
    assert_eq!(schedule.expression(), "30 2 * * *");
    assert_eq!(schedule.time_zone_name(), BERLIN);
    assert_eq!(schedule.time_zone(), &berlin());
    assert_eq!(
        Schedule::parse("@daily", "UTC").unwrap().time_zone(),
        &TimeZone::UTC
    );
}

#[test]
fn schedules_that_cannot_be_used_say_why() {
    let problem = |expression: &str| match Schedule::parse(expression, "UTC") {
        Err(ScheduleError::Cron { problem, .. }) => problem,
        other => panic!("{expression}: {other:?}"),
    };
    assert_eq!(problem(""), CronProblem::Empty);
    assert_eq!(
        problem("0 30 2 * * *"),
        CronProblem::SecondsOrYears { found: 6 }
    );
    assert_eq!(
        problem("0 30 2 * * * 2030"),
        CronProblem::SecondsOrYears { found: 7 }
    );
    assert_eq!(problem("30 2 * *"), CronProblem::FieldCount { found: 4 });
    assert_eq!(problem("@reboot"), CronProblem::UnknownShorthand);
    assert_eq!(
        problem("0 3 * * 8"),
        CronProblem::DayOfWeek { item: "8".into() }
    );
    assert_eq!(problem("0 3 13 * fri"), CronProblem::DayOfMonthAndWeek);
    assert_eq!(problem("0 0 31 4 *"), CronProblem::NeverFires);
    assert_eq!(
        problem("60 2 * * *"),
        CronProblem::Field {
            reason: "Minutes must be at most 59. ('60' specified.)".into()
        }
    );
    assert!(matches!(
        problem("30 2 * * blursday"),
        CronProblem::Field { .. }
    ));
    assert_eq!(
        Schedule::parse("@daily", "Europe/Berln").unwrap_err(),
        ScheduleError::UnknownTimeZone {
            name: "Europe/Berln".into(),
            suggestion: Some(BERLIN.into())
        }
    );
    assert_eq!(
        Schedule::parse("0 3 * * 8", "UTC").unwrap_err().to_string(),
        "invalid cron expression \"0 3 * * 8\": \"8\" is not a day of the week: use 0-7 (0 and 7 are Sunday), ranges such as 1-5, or names such as mon-fri"
    );
    assert!(
        Schedule::parse("0 0 29 2 *", "UTC").is_ok(),
        "29 February comes every four years"
    );
}

#[test]
fn a_policy_round_trips_through_json_as_written() {
    let policy = BackupPolicy {
        name: "nightly".into(),
        schedule: nightly(),
        retention: Retention {
            keep_last: 3,
            keep_daily: 7,
            ..Retention::default()
        },
        target: TargetSpec::Datastore {
            datastore: "datastore1".into(),
            folder: "ceso-backups".into(),
        },
        quiesce: true,
    };
    let json = serde_json::to_value(&policy).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "nightly",
            "schedule": { "cron": "30 2 * * *", "timeZone": "Europe/Berlin" },
            "retention": { "keepLast": 3, "keepDaily": 7, "keepWeekly": 0, "keepMonthly": 0 },
            "target": { "datastore": { "datastore": "datastore1", "folder": "ceso-backups" } },
            "quiesce": true
        })
    );
    assert_eq!(
        serde_json::from_value::<BackupPolicy>(json).unwrap(),
        policy
    );
    let broken = serde_json::json!({ "cron": "0 30 2 * * *", "timeZone": "UTC" });
    assert!(serde_json::from_value::<Schedule>(broken).is_err());
}

// ---- retention ----

/// Backups made at these Berlin wall-clock times; each is its own id.
fn backups(times: &[&str]) -> Vec<Candidate> {
    times
        .iter()
        .map(|t| Candidate {
            id: (*t).to_owned(),
            created: local(t),
        })
        .collect()
}

fn retention(keep_last: u32, keep_daily: u32, keep_weekly: u32, keep_monthly: u32) -> Retention {
    Retention {
        keep_last,
        keep_daily,
        keep_weekly,
        keep_monthly,
    }
}

/// What is kept (with why), newest first, then what is deleted.
fn kept(decision: &RetentionDecision) -> Vec<String> {
    let mut kept: Vec<String> = decision
        .keep
        .iter()
        .map(|(id, rules)| format!("{id} {}", rules.join("+")))
        .collect();
    kept.sort();
    kept.reverse();
    kept
}

#[test]
fn keep_last_keeps_the_newest_and_deletes_the_rest_oldest_first() {
    let candidates = backups(&[
        "2025-06-01 02:30",
        "2025-06-03 02:30",
        "2025-06-02 02:30",
        "2025-06-04 02:30",
    ]);
    let decision = decide(&candidates, &retention(2, 0, 0, 0), &berlin());
    assert_eq!(
        kept(&decision),
        ["2025-06-04 02:30 last", "2025-06-03 02:30 last"]
    );
    assert_eq!(decision.delete, ["2025-06-01 02:30", "2025-06-02 02:30"]);
}

#[test]
fn keep_daily_keeps_the_newest_of_each_local_day_across_a_month_end_and_the_spring_change() {
    // 30 March 2025 is the day clocks go forward in Berlin; midnight local time is 22:00 or
    // 23:00 UTC, so counting days in UTC would merge and split these days differently.
    let candidates = backups(&[
        "2025-03-29 10:00",
        "2025-03-29 22:00",
        "2025-03-30 01:30",
        "2025-03-30 23:30",
        "2025-03-31 00:30",
        "2025-04-01 00:15",
    ]);
    let decision = decide(&candidates, &retention(0, 3, 0, 0), &berlin());
    assert_eq!(
        kept(&decision),
        [
            "2025-04-01 00:15 daily",
            "2025-03-31 00:30 daily",
            "2025-03-30 23:30 daily",
        ]
    );
    assert_eq!(
        decision.delete,
        ["2025-03-29 10:00", "2025-03-29 22:00", "2025-03-30 01:30"]
    );
}

#[test]
fn days_without_backups_do_not_count() {
    let candidates = backups(&["2025-06-01 02:30", "2025-06-05 02:30", "2025-06-20 02:30"]);
    let decision = decide(&candidates, &retention(0, 2, 0, 0), &berlin());
    assert_eq!(
        kept(&decision),
        ["2025-06-20 02:30 daily", "2025-06-05 02:30 daily"]
    );
}

#[test]
fn keep_daily_counts_the_autumn_change_day_once() {
    // 26 October 2025 has 25 hours; both 02:30s belong to it.
    let candidates = vec![
        Candidate {
            id: "first 02:30".into(),
            created: at("2025-10-26T02:30:00+02:00"),
        },
        Candidate {
            id: "second 02:30".into(),
            created: at("2025-10-26T02:30:00+01:00"),
        },
        Candidate {
            id: "saturday".into(),
            created: local("2025-10-25 23:59"),
        },
    ];
    let decision = decide(&candidates, &retention(0, 2, 0, 0), &berlin());
    assert_eq!(kept(&decision), ["second 02:30 daily", "saturday daily"]);
    assert_eq!(decision.delete, ["first 02:30"]);
}

#[test]
fn keep_weekly_uses_iso_weeks_across_the_new_year() {
    // Monday 30 December 2024 starts ISO week 1 of 2025.
    let candidates = backups(&[
        "2024-12-28 02:30",
        "2024-12-29 02:30",
        "2024-12-30 02:30",
        "2025-01-05 02:30",
        "2025-01-06 02:30",
    ]);
    let decision = decide(&candidates, &retention(0, 0, 3, 0), &berlin());
    assert_eq!(
        kept(&decision),
        [
            "2025-01-06 02:30 weekly",
            "2025-01-05 02:30 weekly",
            "2024-12-29 02:30 weekly",
        ]
    );
    assert_eq!(decision.delete, ["2024-12-28 02:30", "2024-12-30 02:30"]);
}

#[test]
fn keep_monthly_uses_the_local_month() {
    // 31 January 23:30 UTC is already 1 February in Berlin.
    let candidates = vec![
        Candidate {
            id: "december".into(),
            created: at("2024-12-20T10:00:00Z"),
        },
        Candidate {
            id: "mid-january".into(),
            created: at("2025-01-15T10:00:00Z"),
        },
        Candidate {
            id: "late-january-utc".into(),
            created: at("2025-01-31T23:30:00Z"),
        },
    ];
    let decision = decide(&candidates, &retention(0, 0, 0, 2), &berlin());
    assert_eq!(
        kept(&decision),
        ["mid-january monthly", "late-january-utc monthly"]
    );
    assert_eq!(decision.delete, ["december"]);
    let in_utc = decide(&candidates, &retention(0, 0, 0, 2), &TimeZone::UTC);
    assert_eq!(
        kept(&in_utc),
        ["late-january-utc monthly", "december monthly"]
    );
}

#[test]
fn a_backup_kept_by_several_rules_lists_them_all() {
    let candidates = backups(&["2025-05-31 02:30", "2025-06-01 02:30", "2025-06-02 02:30"]);
    let decision = decide(&candidates, &retention(1, 2, 1, 2), &berlin());
    assert_eq!(
        kept(&decision),
        [
            "2025-06-02 02:30 last+daily+weekly+monthly",
            "2025-06-01 02:30 daily",
            "2025-05-31 02:30 monthly",
        ]
    );
    assert!(decision.delete.is_empty());
}

#[test]
fn a_retention_without_rules_keeps_everything() {
    let candidates = backups(&["2025-06-01 02:30", "2025-06-02 02:30"]);
    let decision = decide(&candidates, &Retention::default(), &berlin());
    assert!(decision.delete.is_empty());
    assert_eq!(
        decision.keep.keys().collect::<Vec<_>>(),
        ["2025-06-01 02:30", "2025-06-02 02:30"]
    );
    assert!(decision.keep.values().all(Vec::is_empty));
}

#[test]
fn backups_made_at_the_same_instant_are_ordered_by_id() {
    let same = local("2025-06-01 02:30");
    let candidates: Vec<Candidate> = ["b", "a", "c"]
        .into_iter()
        .map(|id| Candidate {
            id: id.into(),
            created: same,
        })
        .collect();
    let decision = decide(&candidates, &retention(1, 0, 0, 0), &berlin());
    assert_eq!(kept(&decision), ["c last"]);
    assert_eq!(decision.delete, ["a", "b"]);
}

// ---- retention invariants ----

/// Up to 40 backups with unique ids over about 400 days, in 6-hour steps so that several share a
/// day, a week, or even an instant.
fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(0i64..1600, 0..40).prop_map(|steps| {
        let start = at("2024-10-01T00:00:00Z");
        steps
            .into_iter()
            .enumerate()
            .map(|(index, step)| Candidate {
                id: format!("backup-{index:02}"),
                created: start.checked_add((step * 6).hours()).unwrap(),
            })
            .collect()
    })
}

fn retentions() -> impl Strategy<Value = Retention> {
    (0u32..5, 0u32..5, 0u32..5, 0u32..5).prop_map(|(l, d, w, m)| retention(l, d, w, m))
}

fn ids(candidates: &[Candidate]) -> BTreeSet<String> {
    candidates.iter().map(|c| c.id.clone()).collect()
}

/// Any instant of 2024–2026, half of them on the days Berlin changes its clocks.
fn instants() -> impl Strategy<Value = Timestamp> {
    let change_days = [
        "2024-03-31",
        "2024-10-27",
        "2025-03-30",
        "2025-10-26",
        "2026-03-29",
        "2026-10-25",
    ];
    prop_oneof![
        (1_704_067_200i64..1_798_761_600).prop_map(|s| Timestamp::from_second(s).unwrap()),
        (prop::sample::select(change_days.to_vec()), 0i64..26 * 3600).prop_map(|(day, s)| {
            at(&format!("{day}T00:00:00+02:00"))
                .checked_add(s.seconds())
                .unwrap()
        }),
    ]
}

proptest! {
    #[test]
    fn a_nightly_schedule_fires_once_per_local_day_after_any_instant(start in instants()) {
        let fires: Vec<Timestamp> =
            std::iter::successors(nightly().next_after(start), |t| nightly().next_after(*t))
                .take(3)
                .collect();
        prop_assert!(fires[0] > start);
        prop_assert!(fires[0] <= start.checked_add(25.hours()).unwrap());
        let days: Vec<jiff::civil::Date> =
            fires.iter().map(|t| t.to_zoned(berlin()).date()).collect();
        for pair in days.windows(2) {
            prop_assert_eq!(pair[0].tomorrow().unwrap(), pair[1]);
        }
        for fire in &fires {
            let time = fire.to_zoned(berlin()).time();
            prop_assert!(
                time == jiff::civil::time(2, 30, 0, 0) || time == jiff::civil::time(3, 30, 0, 0),
                "{}", in_berlin(*fire)
            );
        }
    }

    #[test]
    fn the_decision_is_deterministic_and_independent_of_input_order(
        (candidates, shuffled) in candidates().prop_flat_map(|c| (Just(c.clone()), Just(c).prop_shuffle())),
        retention in retentions(),
    ) {
        let decision = decide(&candidates, &retention, &berlin());
        prop_assert_eq!(&decision, &decide(&candidates, &retention, &berlin()));
        prop_assert_eq!(&decision, &decide(&shuffled, &retention, &berlin()));
    }

    #[test]
    fn every_backup_is_either_kept_or_deleted(
        candidates in candidates(),
        retention in retentions(),
    ) {
        let decision = decide(&candidates, &retention, &berlin());
        let kept: BTreeSet<String> = decision.keep.keys().cloned().collect();
        let deleted: BTreeSet<String> = decision.delete.iter().cloned().collect();
        prop_assert_eq!(deleted.len(), decision.delete.len(), "nothing is deleted twice");
        prop_assert!(kept.is_disjoint(&deleted));
        prop_assert_eq!(&kept | &deleted, ids(&candidates));
    }

    #[test]
    fn deletions_come_oldest_first(
        candidates in candidates(),
        retention in retentions(),
    ) {
        let decision = decide(&candidates, &retention, &berlin());
        let created = |id: &String| candidates.iter().find(|c| &c.id == id).map(|c| (c.created, c.id.clone()));
        let order: Vec<_> = decision.delete.iter().map(created).collect();
        prop_assert!(order.windows(2).all(|w| w[0] <= w[1]), "{:?}", order);
    }

    #[test]
    fn the_newest_backup_is_never_deleted(
        candidates in candidates(),
        retention in retentions(),
    ) {
        let decision = decide(&candidates, &retention, &berlin());
        if let Some(newest) = candidates.iter().max_by_key(|c| (c.created, c.id.clone())) {
            prop_assert!(decision.keep.contains_key(&newest.id));
        }
    }

    #[test]
    fn no_more_is_kept_than_the_counts_add_up_to(
        candidates in candidates(),
        retention in retentions(),
    ) {
        prop_assume!(!retention.keeps_nothing());
        let decision = decide(&candidates, &retention, &berlin());
        prop_assert!(decision.keep.len() as u64 <= retention.total());
    }

    #[test]
    fn keeping_more_never_deletes_more(
        candidates in candidates(),
        retention in retentions(),
        rule in 0usize..4,
        more in 1u32..4,
    ) {
        prop_assume!(!retention.keeps_nothing());
        let mut larger = retention;
        match rule {
            0 => larger.keep_last += more,
            1 => larger.keep_daily += more,
            2 => larger.keep_weekly += more,
            _ => larger.keep_monthly += more,
        }
        let before: BTreeSet<String> = decide(&candidates, &retention, &berlin()).delete.into_iter().collect();
        let after: BTreeSet<String> = decide(&candidates, &larger, &berlin()).delete.into_iter().collect();
        prop_assert!(after.is_subset(&before), "{:?} deleted only with more kept", after.difference(&before));
    }
}
