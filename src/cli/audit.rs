//! `ceso audit list|show|verify|export`: the runs, the security events (refusals, promotions and
//! their use) and the hash chain over both.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Subcommand;

use super::{CommandError, Outcome};
use crate::access::profiles::format_duration;
use crate::plan::ResourceChange;
use crate::state::{
    RunRecord, RunStatus, SecurityEvent, SecurityEventKind, StateStore, StepEvent, StepRecord,
};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List every apply run, oldest first, then the security events (refusals, promotions).
    List {
        /// Print JSON (the runs; with --events, the security events).
        #[arg(long)]
        json: bool,
        /// Only the security events: refusals, promotion requests, approvals, denials,
        /// revocations, ends, expiries and uses.
        #[arg(long)]
        events: bool,
    },
    /// Check the audit log's hash chain: reports an entry changed, removed or reordered, and a
    /// run or step that differs from what was recorded. Exit code 1 when anything is wrong.
    Verify {
        /// The head hash a previous verify printed: also check that the log still contains it
        /// (nothing was cut off or rewritten from there).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every audit entry as a JSON line (oldest first), for a log collector.
    Export {
        /// Write into this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Show one run and every step event; or a promotion and every event about it; or one
    /// security event by its number.
    Show {
        /// A run id, a promotion id, or a security event number (from `ceso audit list`).
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AuditCommand, state: &Path) -> Result<Outcome, CommandError> {
    if !state.exists() {
        return Err(CommandError::with_hint(
            format!("no state file at {}", state.display()),
            "nothing has been applied with this state file yet; pass --state to use another",
        ));
    }
    let store = StateStore::open(state)?;
    let lock = LockState::of(&store);
    match command {
        AuditCommand::Verify { expect_head, json } => {
            return verify(&store, expect_head.as_deref(), json);
        }
        AuditCommand::Export { out } => return export(&store, out.as_deref()),
        AuditCommand::List { json, events } => {
            let security = store.security_events()?;
            if events {
                print_events(&security, json);
                return Ok(Outcome::Success);
            }
            let promoted = promoted_runs(&security);
            let mut runs = Vec::new();
            for run in store.runs()? {
                let run = lock.effective_status(run);
                let run = if run.finished_at.is_none() {
                    let (_, events) = store.run(&run.run_id)?;
                    counted(run, &events).0
                } else {
                    run
                };
                runs.push(run);
            }
            if json {
                let runs: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|run| with_promotion(run, &promoted))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).expect("runs serialize")
                );
            } else if runs.is_empty() && security.is_empty() {
                println!("No runs recorded in {}.", state.display());
            } else if runs.is_empty() {
                println!("No runs recorded in {}.\n", state.display());
                print_events(&security, false);
            } else {
                println!(
                    "{:<27} {:<11} {:<24} {:<10} {:>5} {:>6} {:>7}  SOURCE",
                    "RUN", "STATUS", "STARTED", "USER", "OK", "FAILED", "SKIPPED"
                );
                for run in &runs {
                    let promotion = promoted
                        .get(&run.run_id)
                        .map(|id| format!(" (under promotion {id})"))
                        .unwrap_or_default();
                    println!(
                        "{:<27} {:<11} {:<24} {:<10} {:>5} {:>6} {:>7}  {}{promotion}",
                        run.run_id,
                        run.status,
                        run.started_at,
                        run.os_user,
                        run.steps_succeeded,
                        run.steps_failed,
                        run.steps_skipped,
                        run.source
                    );
                }
                if !security.is_empty() {
                    println!();
                    print_events(&security, false);
                }
            }
        }
        AuditCommand::Show { run, json } => {
            let security = store.security_events()?;
            if let Ok(number) = run.parse::<u64>() {
                return show_event(&security, number, json);
            }
            if store.promotion(&run)?.is_some() {
                return show_promotion(&store, &security, &run, json);
            }
            let (record, steps) = store.run(&run)?;
            let (record, unknown) = counted(lock.effective_status(record), &steps);
            let promotion = promoted_runs(&security).remove(&record.run_id);
            if json {
                let value = serde_json::json!({
                    "run": with_promotion(&record, &promoted_runs(&security)),
                    "steps": steps,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("audit serializes")
                );
            } else {
                println!("Run {} ({})", record.run_id, record.status);
                println!("  plan:     {}", record.plan_id);
                println!("  source:   {}", record.source);
                println!(
                    "  by:       {} on {} (pid {})",
                    record.os_user, record.hostname, record.pid
                );
                if let Some(promotion) = promotion {
                    println!("  under:    promotion {promotion} (`ceso audit show {promotion}`)");
                }
                println!("  started:  {}", record.started_at);
                if let Some(finished) = &record.finished_at {
                    println!("  finished: {finished}");
                }
                println!(
                    "  steps:    {} planned, {} succeeded, {} failed, {} skipped\n",
                    record.steps_total,
                    record.steps_succeeded,
                    record.steps_failed,
                    record.steps_skipped
                );
                if !record.changes.is_empty() {
                    println!("  changes:");
                    for change in &record.changes {
                        print_change(change);
                    }
                    println!();
                }
                for step in steps {
                    let what = match &step.event {
                        StepEvent::Started => "started".to_owned(),
                        StepEvent::Succeeded { duration_ms } => {
                            format!("succeeded in {duration_ms} ms")
                        }
                        StepEvent::Failed { duration_ms, fault } => {
                            format!("FAILED after {duration_ms} ms: {fault}")
                        }
                        StepEvent::Skipped { reason } => format!("skipped: {reason}"),
                    };
                    println!(
                        "  {} step {} {} ({}, host {}): {what}",
                        step.at, step.step, step.description, step.resource, step.host
                    );
                }
                if unknown > 0 {
                    println!(
                        "\n  {unknown} step(s) started but never reported an outcome: the run ended while they ran.\n  The host has the last word: `ceso plan` shows what is left."
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// A run that never finished (it was killed) has no totals: count them from its step events.
/// Also returns how many steps started without an outcome.
fn counted(mut run: RunRecord, events: &[StepRecord]) -> (RunRecord, usize) {
    let mut last: BTreeMap<usize, &StepEvent> = BTreeMap::new();
    for event in events {
        last.insert(event.step, &event.event);
    }
    let count = |pick: fn(&StepEvent) -> bool| last.values().filter(|e| pick(e)).count();
    if run.finished_at.is_some() {
        return (run, 0);
    }
    run.steps_succeeded = count(|e| matches!(e, StepEvent::Succeeded { .. }));
    run.steps_failed = count(|e| matches!(e, StepEvent::Failed { .. }));
    run.steps_skipped = count(|e| matches!(e, StepEvent::Skipped { .. }));
    (run, count(|e| matches!(e, StepEvent::Started)))
}

fn print_change(change: &ResourceChange) {
    println!(
        "  {:>3} {} (host {})",
        change.action.glyph(),
        change.address,
        change.host
    );
    for field in &change.fields {
        let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        println!(
            "        {}: {} → {}",
            field.field,
            value(&field.before),
            value(&field.after)
        );
    }
}

/// Who holds the apply lock while the audit is read, as far as runs still marked `running` go.
enum LockState {
    /// Nobody: every run still marked `running` was interrupted.
    Free,
    /// This run: only it can still be running.
    HeldBy(String),
    /// Someone whose record cannot be read: runs marked `running` are left as they are.
    HeldUnnamed,
}

impl LockState {
    fn of(store: &StateStore) -> Self {
        if !store.apply_lock_is_held() {
            return LockState::Free;
        }
        match store.apply_lock_holder() {
            Ok(Some(holder)) => LockState::HeldBy(holder.run_id),
            Ok(None) | Err(_) => LockState::HeldUnnamed,
        }
    }

    /// A run still marked running that does not hold the apply lock was interrupted (its process
    /// died before it could say so; the next apply records it too when it takes the lock).
    fn effective_status(&self, mut run: RunRecord) -> RunRecord {
        let running = match self {
            LockState::Free => false,
            LockState::HeldBy(run_id) => *run_id == run.run_id,
            LockState::HeldUnnamed => true,
        };
        if run.status == RunStatus::Running && !running {
            run.status = RunStatus::Interrupted;
        }
        run
    }
}

/// `ceso audit verify`
fn verify(
    store: &StateStore,
    expect_head: Option<&str>,
    json: bool,
) -> Result<Outcome, CommandError> {
    let mut report = store.verify_audit()?;
    if let Some(expected) = expect_head {
        let chain = store.audit_chain()?;
        // Entries after the expected head are new since then; its absence is the problem.
        if !chain.iter().any(|e| e.hash.eq_ignore_ascii_case(expected)) {
            report.problems.push(format!(
                "the expected head {expected} is not in the chain: entries were removed or the log was rewritten since it was taken"
            ));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        println!(
            "{} entries; head {}",
            report.entries,
            if report.head.is_empty() {
                "(none)"
            } else {
                &report.head
            }
        );
        if !report.uncovered_runs.is_empty() {
            let runs = &report.uncovered_runs;
            let shown = if runs.len() > 3 {
                format!(
                    "{} ... {} (`--json` lists them all)",
                    runs[0],
                    runs[runs.len() - 1]
                )
            } else {
                runs.join(", ")
            };
            println!(
                "{} run(s) were recorded before the chain began and are not covered: {shown}",
                runs.len()
            );
        }
        for problem in &report.problems {
            println!("  - {problem}");
        }
    }
    if report.problems.is_empty() {
        if !json {
            println!(
                "The audit log is intact. Keep the head hash elsewhere and pass it to `--expect-head` next time."
            );
        }
        Ok(Outcome::Success)
    } else {
        Err(CommandError::with_hint(
            format!(
                "the audit log does not match its hash chain: {} problem(s)",
                report.problems.len()
            ),
            "the state file was changed outside ceso; compare with a backup of it or with an export (`ceso audit export`)",
        ))
    }
}

/// `ceso audit export`
fn export(store: &StateStore, out: Option<&std::path::Path>) -> Result<Outcome, CommandError> {
    let mut text = String::new();
    for entry in store.audit_chain()? {
        let record: serde_json::Value =
            serde_json::from_str(&entry.record).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "seq": entry.seq,
            "kind": entry.kind,
            "run_id": entry.run_id,
            "step_seq": entry.step_seq,
            "event": entry.event,
            "record": record,
            // The exact text the hash covers: `record` above is re-serialized and its keys may
            // come in another order.
            "record_text": entry.record,
            "prev": entry.prev,
            "hash": entry.hash,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    match out {
        Some(path) => super::files::write_atomically(path, &text)?,
        None => print!("{text}"),
    }
    Ok(Outcome::Success)
}

/// The promotion each run recorded under one ran under, by run id.
fn promoted_runs(security: &[(u64, SecurityEvent)]) -> BTreeMap<String, String> {
    security
        .iter()
        .filter(|(_, e)| e.event == SecurityEventKind::PromotionRun)
        .filter_map(|(_, e)| Some((e.run_id.clone()?, e.promotion.clone()?)))
        .collect()
}

/// A run as JSON, with `promotion` when it ran under one.
fn with_promotion(run: &RunRecord, promoted: &BTreeMap<String, String>) -> serde_json::Value {
    let mut value = serde_json::to_value(run).expect("runs serialize");
    if let (Some(id), Some(object)) = (promoted.get(&run.run_id), value.as_object_mut()) {
        object.insert("promotion".to_owned(), serde_json::Value::from(id.clone()));
    }
    value
}

/// A security event as JSON, with its number first.
fn event_json(number: u64, event: &SecurityEvent) -> serde_json::Value {
    let mut value = serde_json::json!({ "number": number });
    if let (Some(object), serde_json::Value::Object(fields)) = (
        value.as_object_mut(),
        serde_json::to_value(event).expect("events serialize"),
    ) {
        object.extend(fields);
    }
    value
}

/// One line of text about a security event.
fn event_line(event: &SecurityEvent) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(command) = &event.command {
        parts.push(format!("ceso {command}"));
    }
    if let Some(promotion) = &event.promotion {
        parts.push(format!("promotion {promotion}"));
    }
    if let Some(run) = &event.run_id {
        parts.push(format!("run {run}"));
    }
    if let Some(record) = &event.record {
        match event.event {
            SecurityEventKind::PromotionRequested => parts.push(format!(
                "for {}: {}",
                format_duration(Duration::from_secs(record.ttl_secs)),
                record.reason
            )),
            SecurityEventKind::PromotionApproved => {
                if let Some(approval) = &record.approval {
                    parts.push(format!("until {}", approval.expires_at));
                }
            }
            _ => {}
        }
    }
    if let Some(reason) = &event.reason {
        parts.push(reason.clone());
    }
    parts.join("; ")
}

/// The security events, as a table or JSON.
fn print_events(security: &[(u64, SecurityEvent)], json: bool) {
    if json {
        let values: Vec<serde_json::Value> = security
            .iter()
            .map(|(number, event)| event_json(*number, event))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&values).expect("events serialize")
        );
        return;
    }
    if security.is_empty() {
        println!("No security events recorded.");
        return;
    }
    println!("Security events:");
    println!(
        "{:>5} {:<24} {:<19} {:<12} {:<10} {:<10}  WHAT",
        "#", "AT", "EVENT", "USER", "PROFILE", "ROLE"
    );
    for (number, event) in security {
        println!(
            "{:>5} {:<24} {:<19} {:<12} {:<10} {:<10}  {}",
            number,
            event.at,
            event.event,
            event.actor.os_user,
            event.actor.profile.as_deref().unwrap_or("-"),
            event.actor.role,
            event_line(event)
        );
    }
}

/// `ceso audit show N`: one security event.
fn show_event(
    security: &[(u64, SecurityEvent)],
    number: u64,
    json: bool,
) -> Result<Outcome, CommandError> {
    let Some((_, event)) = security.iter().find(|(n, _)| *n == number) else {
        return Err(CommandError::with_hint(
            format!("no security event {number} in the audit log"),
            "`ceso audit list --events` lists them",
        ));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&event_json(number, event)).expect("events serialize")
        );
        return Ok(Outcome::Success);
    }
    print_event_detail(number, event);
    Ok(Outcome::Success)
}

fn print_event_detail(number: u64, event: &SecurityEvent) {
    println!("Security event {number}: {}", event.event);
    println!("  at:       {}", event.at);
    println!(
        "  by:       {} (uid {}) on {} (pid {}), role {}, profile {}",
        event.actor.os_user,
        event.actor.uid,
        event.actor.hostname,
        event.actor.pid,
        event.actor.role,
        event.actor.profile.as_deref().unwrap_or("none")
    );
    let detail = event_line(event);
    if !detail.is_empty() {
        println!("  what:     {detail}");
    }
}

/// `ceso audit show PROMOTION`: the promotion as it is and every event about it.
fn show_promotion(
    store: &StateStore,
    security: &[(u64, SecurityEvent)],
    id: &str,
    json: bool,
) -> Result<Outcome, CommandError> {
    let record = store.promotion(id)?;
    let events: Vec<&(u64, SecurityEvent)> = security
        .iter()
        .filter(|(_, e)| e.promotion.as_deref() == Some(id))
        .collect();
    if json {
        let value = serde_json::json!({
            "promotion": record,
            "events": events.iter().map(|(n, e)| event_json(*n, e)).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("promotion serializes")
        );
        return Ok(Outcome::Success);
    }
    if let Some(record) = &record {
        println!("Promotion {} ({})", record.id, record.status);
        println!(
            "  requested by: {} (uid {}, profile {}) on {} at {}",
            record.requester,
            record.requester_uid,
            record.profile.as_deref().unwrap_or("none"),
            record.hostname,
            record.requested_at
        );
        println!("  reason:       {}", record.reason);
        println!(
            "  ttl:          {}",
            format_duration(Duration::from_secs(record.ttl_secs))
        );
        if let Some(approval) = &record.approval {
            println!(
                "  approved by:  {} (profile {}, key {}) at {}, until {}",
                approval.approver,
                approval.approver_profile,
                approval.key,
                approval.approved_at,
                approval.expires_at
            );
        }
        if let (Some(at), Some(by)) = (&record.closed_at, &record.closed_by) {
            println!("  {:<13} {at} by {by}", format!("{}:", record.status));
        }
        println!();
    }
    for (number, event) in events {
        println!(
            "  #{number} {} {} by {}: {}",
            event.at,
            event.event,
            event.actor.os_user,
            event_line(event)
        );
    }
    Ok(Outcome::Success)
}
