//! Retention: which backups a policy keeps (being written).
