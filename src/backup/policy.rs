//! Backup policies resolved from manifests: schedule, retention, target (being written).
