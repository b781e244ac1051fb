//! The pure parts of `ceso watch`, the controller: what triggers a reconcile, how file events
//! are debounced, how drift checks are spread (jitter) and how errors turn into a delay before
//! the next try (backoff). The loop that does I/O is `cli::watch`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// Why a reconcile runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `ceso watch` started (also runs every backup missed while it was down).
    Start,
    /// Files of the inventory changed (paths relative to it).
    ManifestChanged(Vec<PathBuf>),
    /// The periodic drift check (`--interval`).
    DriftCheck,
    /// A backup's scheduled time came.
    BackupDue { vm: String, policy: String },
    /// The previous reconcile failed; this is try `attempt` (2 = the first retry).
    Retry { attempt: u32 },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Start => write!(f, "start"),
            Trigger::ManifestChanged(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                const SHOWN: usize = 5;
                if names.len() > SHOWN {
                    write!(
                        f,
                        "manifest changed: {} and {} more",
                        names[..SHOWN].join(", "),
                        names.len() - SHOWN
                    )
                } else {
                    write!(f, "manifest changed: {}", names.join(", "))
                }
            }
            Trigger::DriftCheck => write!(f, "drift check"),
            Trigger::BackupDue { vm, policy } => write!(f, "backup due: {vm} ({policy})"),
            Trigger::Retry { attempt } => write!(f, "retry (try {attempt}) after an error"),
        }
    }
}

/// Whether a changed path is part of the inventory: hidden files and directories (`.git`,
/// `.ceso` with the state file) and editors' temporary files are not.
pub fn is_inventory_file(root: &Path, path: &Path) -> bool {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let hidden = relative
        .components()
        .any(|c| c.as_os_str().to_str().is_some_and(|s| s.starts_with('.')));
    let Some(name) = relative.file_name().and_then(|n| n.to_str()) else {
        return !hidden;
    };
    let temporary = name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name.starts_with('#')
        || name == "4913"; // vim's probe file
    !hidden && !temporary
}

/// Collects changed paths until the inventory has been quiet for a while, so that an editor's
/// save (several events) or a `git pull` (many files) makes one reconcile.
#[derive(Debug)]
pub struct Debounce {
    quiet: Duration,
    changed: BTreeSet<PathBuf>,
    deadline: Option<Instant>,
}

impl Debounce {
    /// Fires `quiet` after the last change.
    pub fn new(quiet: Duration) -> Self {
        Debounce {
            quiet,
            changed: BTreeSet::new(),
            deadline: None,
        }
    }

    /// Notes a change at `now`.
    pub fn changed(&mut self, path: PathBuf, now: Instant) {
        self.changed.insert(path);
        self.deadline = Some(now + self.quiet);
    }

    /// When the collected changes are due, if any were collected.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The collected paths (sorted), starting over.
    pub fn take(&mut self) -> Vec<PathBuf> {
        self.deadline = None;
        std::mem::take(&mut self.changed).into_iter().collect()
    }
}

/// The delay before the next try after consecutive failures: `initial`, doubling, at most
/// `max` (kube-rs's error policy; Flux retries the same way).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// Notes a failure; returns the delay before the next try.
    pub fn failed(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.failures = self.failures.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Notes a success: the next failure starts from `initial` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The number of the next try (1 when nothing failed).
    pub fn next_attempt(&self) -> u32 {
        self.failures + 1
    }
}

/// `interval` give or take up to 10 % (`unit` is a random number in `[0, 1)`), so that
/// several watchers do not all check their hosts at the same moment.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    let offset = spread * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.0))
}

/// Parses a duration like `5m`, `90s`, `1h 30m` or `500ms` (for `--interval`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 30s, 5m or 1h ({e})"))?;
    Duration::try_from(duration).map_err(|_| format!("{text:?} is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_temporary_files_are_not_the_inventory() {
        let root = Path::new("/inv");
        assert!(is_inventory_file(root, Path::new("/inv/vms/web.yaml")));
        assert!(is_inventory_file(root, Path::new("/inv/keys/ops.pub")));
        assert!(!is_inventory_file(root, Path::new("/inv/.git/index")));
        assert!(!is_inventory_file(root, Path::new("/inv/.ceso/state.redb")));
        assert!(!is_inventory_file(
            root,
            Path::new("/inv/vms/.web.yaml.swp")
        ));
        assert!(!is_inventory_file(root, Path::new("/inv/vms/web.yaml~")));
        assert!(!is_inventory_file(root, Path::new("/inv/4913")));
    }

    #[test]
    fn debounce_waits_for_quiet_and_collects_every_path_once() {
        let start = Instant::now();
        let mut debounce = Debounce::new(Duration::from_millis(300));
        assert_eq!(debounce.deadline(), None);
        debounce.changed("b.yaml".into(), start);
        debounce.changed("a.yaml".into(), start + Duration::from_millis(100));
        debounce.changed("b.yaml".into(), start + Duration::from_millis(200));
        assert_eq!(
            debounce.deadline(),
            Some(start + Duration::from_millis(500))
        );
        assert_eq!(
            debounce.take(),
            vec![PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
        assert_eq!(debounce.deadline(), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let delays: Vec<u64> = (0..6).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff.next_attempt(), 7);
        backoff.succeeded();
        assert_eq!(backoff.failed().as_secs(), 5);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(300);
        assert_eq!(jittered(interval, 0.0).as_secs(), 270);
        assert_eq!(jittered(interval, 0.5).as_secs(), 300);
        assert!(jittered(interval, 0.999_999) <= Duration::from_secs(330));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("five minutes").is_err());
    }

    #[test]
    fn reasons_name_what_happened() {
        let changed = Trigger::ManifestChanged(vec!["vms/web.yaml".into()]);
        assert_eq!(changed.to_string(), "manifest changed: vms/web.yaml");
        let due = Trigger::BackupDue {
            vm: "db-01".into(),
            policy: "nightly".into(),
        };
        assert_eq!(due.to_string(), "backup due: db-01 (nightly)");
    }
}
