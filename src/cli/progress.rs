//! Progress of long transfers on stderr: a bar on a terminal, a plain line every few seconds
//! (and when a file is done) otherwise, so logs of CI jobs stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use crate::backup::target::TransferProgress;

/// How often a plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Shows the progress of one command's transfers.
pub(super) struct TransferDisplay {
    verb: &'static str,
    bar: Option<ProgressBar>,
    /// The file shown, and when (and at how many bytes) the last plain line was printed.
    last: Mutex<Option<(String, Instant, u64)>>,
}

impl TransferDisplay {
    /// `verb` says what is happening, e.g. `reading`.
    pub(super) fn new(verb: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        TransferDisplay {
            verb,
            bar,
            last: Mutex::new(None),
        }
    }

    /// Shows one progress report.
    pub(super) fn report(&self, progress: TransferProgress<'_>) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new_file = last
            .as_ref()
            .is_none_or(|(file, _, _)| file != progress.file);
        if let Some(bar) = &self.bar {
            if new_file {
                bar.set_message(format!("{} {}", self.verb, progress.file));
                bar.set_length(progress.total);
            }
            bar.set_position(progress.done);
            *last = Some((progress.file.to_owned(), Instant::now(), progress.done));
            return;
        }
        let finished = progress.total > 0 && progress.done == progress.total;
        let due = match last.as_ref() {
            None => true,
            Some(_) if new_file => true,
            Some((_, _, printed)) if *printed == progress.done => false,
            Some((_, at, _)) => finished || at.elapsed() >= PLAIN_EVERY,
        };
        if !due || (progress.done == 0 && progress.total == 0) {
            if new_file {
                *last = Some((progress.file.to_owned(), Instant::now(), progress.done));
            }
            return;
        }
        *last = Some((progress.file.to_owned(), Instant::now(), progress.done));
        if progress.total > 0 {
            eprintln!(
                "{} {}: {} of {} ({}%)",
                self.verb,
                progress.file,
                HumanBytes(progress.done),
                HumanBytes(progress.total),
                progress.done * 100 / progress.total
            );
        } else {
            eprintln!(
                "{} {}: {}",
                self.verb,
                progress.file,
                HumanBytes(progress.done)
            );
        }
    }

    /// Removes the bar.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The running steps of an apply: on a terminal, a spinner with the elapsed time for each one
/// above the lines of the steps that ended; otherwise one line per event.
pub(super) struct StepDisplay {
    multi: Option<indicatif::MultiProgress>,
    running: Mutex<std::collections::BTreeMap<usize, ProgressBar>>,
}

impl StepDisplay {
    /// Spinners when standard output is a terminal and `lines_only` is false.
    pub(super) fn new(lines_only: bool) -> Self {
        let multi = (!lines_only && std::io::stdout().is_terminal()).then(|| {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout())
        });
        StepDisplay {
            multi,
            running: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// A step started: its spinner, or `line`.
    pub(super) fn started(&self, step: usize, message: String, line: &str) {
        let Some(multi) = &self.multi else {
            println!("{line}");
            return;
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(step, bar);
    }

    /// A step ended (or was skipped): its spinner goes, `line` stays.
    pub(super) fn ended(&self, step: usize, line: &str) {
        let Some(multi) = &self.multi else {
            println!("{line}");
            return;
        };
        if let Some(bar) = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&step)
        {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
        let _ = multi.println(line);
    }
}
