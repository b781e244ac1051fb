//! The bytes in VMs' disks and their snapshots, read and written on the simulator's datastore
//! directory (its `-flat.vmdk` files are real files), independent of ceso.

use std::path::{Path, PathBuf};

use super::{Simulator, find_vm, retrieve_properties};

/// The data file (`-flat.vmdk`) of each disk of `vm`, in device order.
pub fn disk_data_files(sim: &Simulator, vm: &str) -> Vec<PathBuf> {
    find_vm(sim, vm)
        .expect("the VM")
        .disk_files
        .iter()
        .map(|file| {
            let relative = file.split_once("] ").map_or(file.as_str(), |(_, p)| p);
            sim.datastore_dir
                .join(relative.replace(".vmdk", "-flat.vmdk"))
        })
        .collect()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of every disk's data file of `vm`, in device order.
pub fn disk_digests(sim: &Simulator, vm: &str) -> Vec<String> {
    disk_data_files(sim, vm)
        .iter()
        .map(|p| sha256_file(p))
        .collect()
}

/// Fills every disk of `vm` with `len` pseudo-random bytes (plus a few per disk, so no two
/// disks are alike), different for each `seed`; returns their SHA-256.
pub fn write_disks(sim: &Simulator, vm: &str, seed: u64, len: usize) -> Vec<String> {
    disk_data_files(sim, vm)
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let mut state = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i as u64 + 1);
            let bytes: Vec<u8> = (0..len + i * 4099)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) as u8
                })
                .collect();
            std::fs::write(path, &bytes).expect("writing the disk");
            sha256_file(path)
        })
        .collect()
}

/// Names of the snapshots of `vm`, read from the host.
pub fn snapshot_names(sim: &Simulator, vm: &str) -> Vec<String> {
    let moref = find_vm(sim, vm).expect("the VM").moref;
    let props = retrieve_properties(sim, "VirtualMachine", &moref, &["snapshot"]);
    props
        .get("snapshot")
        .map(|snapshot| {
            snapshot
                .descendants("name")
                .into_iter()
                .map(|n| n.text.clone())
                .collect()
        })
        .unwrap_or_default()
}
