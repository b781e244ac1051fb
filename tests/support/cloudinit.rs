//! Feeds guestinfo values to cloud-init's own VMware datasource (Debian package `cloud-init`).
