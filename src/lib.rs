//! ceso (ESXi Commander): declarative management of standalone VMware ESXi hosts.

pub mod esxi;
pub mod host;
pub mod secret;
