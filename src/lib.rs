//! ceso (ESXi Commander): declarative management of standalone VMware ESXi hosts.

pub mod access;
pub mod apply;
pub mod backup;
pub mod cli;
pub mod cloudinit;
pub mod config;
pub mod desired;
pub mod diagnostic;
pub mod esxi;
pub mod host;
pub mod ipam;
pub mod manifest;
pub mod mcp;
pub mod plan;
pub mod secret;
pub mod ssh;
pub mod state;
pub mod watch;
