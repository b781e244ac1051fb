//! IP allocations: the addresses ceso gave VMs, recorded when apply creates or reconfigures a
//! VM and released when apply destroys it. The hosts hold the same facts (each managed VM's
//! `ceso.applied`), so this table can be lost without ever causing a duplicate address; it adds
//! the addresses of VMs whose host could not confirm them yet (e.g. a create that was cut off).

use std::net::Ipv4Addr;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore, corrupt, to_json};
use crate::ipam::{HolderKind, Holding};

/// Allocations by (VM name, adapter index): JSON [`AddressRecord`].
pub(super) const ADDRESSES: TableDefinition<(&str, u64), &str> =
    TableDefinition::new("ip_allocations");

/// One recorded address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressRecord {
    pub vm: String,
    pub host: String,
    pub nic: usize,
    pub address: Ipv4Addr,
    /// With prefix length, as given to the guest.
    pub cidr: String,
    pub pool: Option<String>,
    /// The apply run that recorded it.
    pub run_id: String,
}

impl AddressRecord {
    /// The record as an IPAM holding.
    pub fn holding(&self) -> Holding {
        Holding {
            host: self.host.clone(),
            vm: self.vm.clone(),
            nic: Some(self.nic),
            address: self.address,
            kind: HolderKind::Recorded,
        }
    }
}

impl StateStore {
    /// Replaces every recorded address of `vm` with `records`.
    pub fn record_addresses(&self, vm: &str, records: &[AddressRecord]) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(ADDRESSES)?;
            table.retain_in((vm, 0)..=(vm, u64::MAX), |_, _| false)?;
            for record in records {
                table.insert((vm, record.nic as u64), to_json(record).as_str())?;
            }
            Ok(())
        })
    }

    /// Forgets every address of `vm` (it was destroyed).
    pub fn release_addresses(&self, vm: &str) -> Result<(), StateError> {
        self.record_addresses(vm, &[])
    }

    /// The recorded addresses as the allocator's holdings (kind `Recorded`).
    pub fn recorded_holdings(&self) -> Result<Vec<Holding>, StateError> {
        Ok(self
            .addresses()?
            .iter()
            .map(AddressRecord::holding)
            .collect())
    }

    /// Every recorded address, by VM then adapter.
    pub fn addresses(&self) -> Result<Vec<AddressRecord>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(ADDRESSES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            Ok(out)
        })
    }
}
