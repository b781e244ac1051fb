//! The audit log's hash chain: every write of a run record or a step event is also appended,
//! in the same transaction, as an entry that carries the SHA-256 of the entry before it. The
//! runs and steps tables stay what commands read; the chain is what proves them:
//! [`StateStore::verify_audit`] finds an entry changed, removed or reordered, and a run or step
//! whose table row differs from what was recorded, was added outside ceso, or went missing.
//!
//! Security events (refusals, promotions and their use; `promotions.rs`) are chained the same
//! way, and the promotions table is checked against the last state of each promotion an event
//! recorded.
//!
//! What it cannot prove on its own: someone who rewrites the whole chain consistently. Keep the
//! head hash (`ceso audit verify` prints it) somewhere else, e.g. in the CI log, and pass it back
//! with `--expect-head`.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::promotions::{PROMOTIONS, PromotionRecord, SECURITY_EVENTS, SecurityEvent};
use super::{RUNS, STEPS, StateError, StateStore, corrupt, to_json};

/// Chain entries by sequence number (0 is the genesis): JSON [`ChainEntry`].
pub(super) const CHAIN: TableDefinition<u64, &str> = TableDefinition::new("audit_chain");

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The start of the chain; `record` lists the runs recorded before it (not covered).
    Genesis,
    /// A run record as written (created or updated).
    Run,
    /// A step event, `step_seq` its position in its run.
    Step,
    /// A security event (a refusal, a promotion's step or use), `event` its number.
    Security,
}

/// One entry of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    pub seq: u64,
    pub kind: EntryKind,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_seq: Option<u64>,
    /// The number of a security event (`kind` = `security`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    /// The record exactly as stored in its table (JSON text).
    pub record: String,
    /// The hash of the entry before (64 zeros for the genesis).
    pub prev: String,
    /// SHA-256 of this entry's other fields.
    pub hash: String,
}

impl ChainEntry {
    fn digest(&self) -> String {
        let kind = match self.kind {
            EntryKind::Genesis => "genesis",
            EntryKind::Run => "run",
            EntryKind::Step => "step",
            EntryKind::Security => {
                let text = format!(
                    "{}\n{}\nsecurity\n{}\n{}",
                    self.prev,
                    self.seq,
                    self.event.map(|e| e.to_string()).unwrap_or_default(),
                    self.record
                );
                return hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
            }
        };
        let text = format!(
            "{}\n{}\n{kind}\n{}\n{}\n{}",
            self.prev,
            self.seq,
            self.run_id,
            self.step_seq.map(|s| s.to_string()).unwrap_or_default(),
            self.record
        );
        hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
    }
}

/// What [`StateStore::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Entries in the chain.
    pub entries: u64,
    /// The hash of the last entry.
    pub head: String,
    /// Runs recorded before the chain began (not covered by it).
    pub uncovered_runs: Vec<String>,
    /// Everything that does not match, one sentence each; empty when the log is intact.
    pub problems: Vec<String>,
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends an entry (creating the genesis first when the chain is new), in `txn`.
pub(super) fn append(
    txn: &redb::WriteTransaction,
    kind: EntryKind,
    run_id: &str,
    step_seq: Option<u64>,
    record: &str,
) -> Result<(), redb::Error> {
    append_entry(txn, kind, run_id, step_seq, None, record)
}

/// Appends security event number `event` (its record as stored), in `txn`.
pub(super) fn append_security(
    txn: &redb::WriteTransaction,
    event: u64,
    record: &str,
) -> Result<(), redb::Error> {
    append_entry(txn, EntryKind::Security, "", None, Some(event), record)
}

fn append_entry(
    txn: &redb::WriteTransaction,
    kind: EntryKind,
    run_id: &str,
    step_seq: Option<u64>,
    event: Option<u64>,
    record: &str,
) -> Result<(), redb::Error> {
    let mut chain = txn.open_table(CHAIN)?;
    let last: Option<ChainEntry> = match chain.last()? {
        Some((_, value)) => Some(serde_json::from_str(value.value()).map_err(corrupt)?),
        None => None,
    };
    let last = match last {
        Some(last) => last,
        None => {
            let earlier: Vec<String> = txn
                .open_table(RUNS)?
                .iter()?
                .map(|entry| entry.map(|(key, _)| key.value().to_owned()))
                .collect::<Result<_, _>>()?;
            let genesis = seal(ChainEntry {
                seq: 0,
                kind: EntryKind::Genesis,
                run_id: String::new(),
                step_seq: None,
                event: None,
                record: to_json(&earlier),
                prev: ZERO.to_owned(),
                hash: String::new(),
            });
            chain.insert(0, to_json(&genesis).as_str())?;
            genesis
        }
    };
    let entry = seal(ChainEntry {
        seq: last.seq + 1,
        kind,
        run_id: run_id.to_owned(),
        step_seq,
        event,
        record: record.to_owned(),
        prev: last.hash,
        hash: String::new(),
    });
    chain.insert(entry.seq, to_json(&entry).as_str())?;
    Ok(())
}

fn seal(mut entry: ChainEntry) -> ChainEntry {
    entry.hash = entry.digest();
    entry
}

impl StateStore {
    /// Every entry of the chain, in order (for `ceso audit export`).
    pub fn audit_chain(&self) -> Result<Vec<ChainEntry>, StateError> {
        self.read(|txn| {
            let chain = match txn.open_table(CHAIN) {
                Ok(chain) => chain,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in chain.iter()? {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            Ok(out)
        })
    }

    /// Checks the chain link by link, then the runs and steps tables against it.
    pub fn verify_audit(&self) -> Result<AuditVerification, StateError> {
        let chain = self.audit_chain()?;
        let mut problems = Vec::new();
        let mut prev = ZERO.to_owned();
        let mut uncovered: BTreeSet<String> = BTreeSet::new();
        let mut runs: BTreeMap<String, String> = BTreeMap::new();
        let mut steps: BTreeMap<(String, u64), String> = BTreeMap::new();
        let mut events: BTreeMap<u64, String> = BTreeMap::new();
        // The last state of each promotion an event recorded.
        let mut promotions: BTreeMap<String, PromotionRecord> = BTreeMap::new();
        for (position, entry) in chain.iter().enumerate() {
            let expected_seq = position as u64;
            if entry.seq != expected_seq {
                problems.push(format!(
                    "entry {expected_seq} is missing or out of order (found entry {} there)",
                    entry.seq
                ));
            }
            if entry.prev != prev {
                problems.push(format!(
                    "entry {} does not follow the entry before it: an entry was removed, inserted or reordered",
                    entry.seq
                ));
            }
            if entry.digest() != entry.hash {
                problems.push(format!(
                    "entry {} ({}) was changed after it was written",
                    entry.seq,
                    describe(entry)
                ));
            }
            prev = entry.hash.clone();
            match entry.kind {
                EntryKind::Genesis => {
                    let earlier: Vec<String> =
                        serde_json::from_str(&entry.record).unwrap_or_default();
                    uncovered.extend(earlier);
                }
                EntryKind::Run => {
                    runs.insert(entry.run_id.clone(), entry.record.clone());
                }
                EntryKind::Step => {
                    if let Some(seq) = entry.step_seq {
                        steps.insert((entry.run_id.clone(), seq), entry.record.clone());
                    }
                }
                EntryKind::Security => {
                    if let Some(number) = entry.event {
                        events.insert(number, entry.record.clone());
                    }
                    match serde_json::from_str::<SecurityEvent>(&entry.record) {
                        Ok(event) => {
                            if let Some(record) = event.record {
                                promotions.insert(record.id.clone(), record);
                            }
                        }
                        Err(_) => problems.push(format!(
                            "entry {} ({}) is not a readable security event",
                            entry.seq,
                            describe(entry)
                        )),
                    }
                }
            }
        }
        self.verify_security_tables(&events, &promotions, &mut problems)?;
        let (table_runs, table_steps) = self.read(|txn| {
            let mut table_runs = BTreeMap::new();
            for entry in txn.open_table(RUNS)?.iter()? {
                let (key, value) = entry?;
                table_runs.insert(key.value().to_owned(), value.value().to_owned());
            }
            let mut table_steps = BTreeMap::new();
            for entry in txn.open_table(STEPS)?.iter()? {
                let (key, value) = entry?;
                let (run, seq) = key.value();
                table_steps.insert((run.to_owned(), seq), value.value().to_owned());
            }
            Ok((table_runs, table_steps))
        })?;
        for (run, text) in &table_runs {
            match runs.get(run) {
                Some(recorded) if recorded == text => {}
                Some(_) => problems.push(format!(
                    "run {run} differs from what was recorded (its record was changed)"
                )),
                None if uncovered.contains(run) => {}
                None => problems.push(format!(
                    "run {run} is not in the chain: it was added outside ceso"
                )),
            }
        }
        for run in runs.keys() {
            if !table_runs.contains_key(run) {
                problems.push(format!("run {run} was removed from the audit log"));
            }
        }
        for ((run, seq), text) in &table_steps {
            match steps.get(&(run.clone(), *seq)) {
                Some(recorded) if recorded == text => {}
                Some(_) => problems.push(format!(
                    "step event {seq} of run {run} differs from what was recorded"
                )),
                None if uncovered.contains(run) => {}
                None => problems.push(format!(
                    "step event {seq} of run {run} is not in the chain: it was added outside ceso"
                )),
            }
        }
        for (run, seq) in steps.keys() {
            if !table_steps.contains_key(&(run.clone(), *seq)) {
                problems.push(format!(
                    "step event {seq} of run {run} was removed from the audit log"
                ));
            }
        }
        Ok(AuditVerification {
            entries: chain.len() as u64,
            head: prev,
            uncovered_runs: uncovered.into_iter().collect(),
            problems,
        })
    }
}

impl StateStore {
    /// Compares the security events and promotions tables with what the chain recorded.
    fn verify_security_tables(
        &self,
        events: &BTreeMap<u64, String>,
        promotions: &BTreeMap<String, PromotionRecord>,
        problems: &mut Vec<String>,
    ) -> Result<(), StateError> {
        let (table_events, table_promotions) = self.read(|txn| {
            let mut table_events = BTreeMap::new();
            for entry in txn.open_table(SECURITY_EVENTS)?.iter()? {
                let (key, value) = entry?;
                table_events.insert(key.value(), value.value().to_owned());
            }
            let mut table_promotions = BTreeMap::new();
            for entry in txn.open_table(PROMOTIONS)?.iter()? {
                let (key, value) = entry?;
                table_promotions.insert(key.value().to_owned(), value.value().to_owned());
            }
            Ok((table_events, table_promotions))
        })?;
        for (number, text) in &table_events {
            match events.get(number) {
                Some(recorded) if recorded == text => {}
                Some(_) => problems.push(format!(
                    "security event {number} differs from what was recorded"
                )),
                None => problems.push(format!(
                    "security event {number} is not in the chain: it was added outside ceso"
                )),
            }
        }
        for number in events.keys() {
            if !table_events.contains_key(number) {
                problems.push(format!(
                    "security event {number} was removed from the audit log"
                ));
            }
        }
        for (id, text) in &table_promotions {
            let stored = serde_json::from_str::<PromotionRecord>(text).ok();
            match (promotions.get(id), stored) {
                (Some(recorded), Some(stored)) if *recorded == stored => {}
                (Some(_), _) => problems.push(format!(
                    "promotion {id} differs from what was recorded (its record was changed)"
                )),
                (None, _) => problems.push(format!(
                    "promotion {id} is not in the chain: it was added outside ceso"
                )),
            }
        }
        for id in promotions.keys() {
            if !table_promotions.contains_key(id) {
                problems.push(format!("promotion {id} was removed from the state file"));
            }
        }
        Ok(())
    }
}

fn describe(entry: &ChainEntry) -> String {
    match (&entry.kind, entry.step_seq) {
        (EntryKind::Security, _) => format!(
            "security event {}",
            entry.event.map(|e| e.to_string()).unwrap_or_default()
        ),
        (EntryKind::Genesis, _) => "the start of the chain".to_owned(),
        (EntryKind::Run, _) => format!("run {}", entry.run_id),
        (EntryKind::Step, Some(seq)) => format!("step event {seq} of run {}", entry.run_id),
        (EntryKind::Step, None) => format!("a step event of run {}", entry.run_id),
    }
}
