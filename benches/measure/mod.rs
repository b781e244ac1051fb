//! Measuring one `ceso` run from a benchmark: wall time, CPU time and peak memory of the child
//! process (`wait4`), with its output kept in log files.

#![allow(dead_code)] // each benchmark uses part of it

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `ceso` run cost, as the kernel accounted it.
pub struct Measured {
    pub wall: Duration,
    /// User plus system CPU time of the `ceso` process.
    pub cpu: Duration,
    pub peak_rss_kib: i64,
    pub exit_code: i32,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `command` to its end with stdout and stderr in `log_dir/<label>.{out,err}`, and measures
/// it with `wait4`.
pub fn measure(command: &mut Command, log_dir: &Path, label: &str) -> Measured {
    let stdout = File::create(log_dir.join(format!("{label}.out"))).expect("creating the log");
    let stderr = File::create(log_dir.join(format!("{label}.err"))).expect("creating the log");
    let start = Instant::now();
    let child = command
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("ceso starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    let wall = start.elapsed();
    std::mem::forget(child); // already reaped
    Measured {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss,
        exit_code: libc::WEXITSTATUS(status),
    }
}

/// Panics with the run's output unless it exited with `expected`.
pub fn expect_exit(measured: &Measured, expected: i32, log_dir: &Path, label: &str) {
    if measured.exit_code != expected {
        let read = |ext: &str| {
            std::fs::read_to_string(log_dir.join(format!("{label}.{ext}"))).unwrap_or_default()
        };
        panic!(
            "`ceso {label}` exited {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            measured.exit_code,
            read("out"),
            read("err")
        );
    }
}

pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}
