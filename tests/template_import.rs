//! `ceso template import` and the client's OVA import against the ESXi simulator: an
//! Ubuntu-cloud-image-shaped OVA (built here with qemu-img) becomes a powered-off VM marked
//! `ceso.template`, its disk streamed over NFC; refusals change nothing, and failures after
//! the host created the VM leave no VM behind. Results are read back from the simulator over
//! SOAP, independently of ceso's client.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use ceso::esxi::{EsxiClient, ImportError, ImportOptions, ImportProgress, ImportedTemplate};
use ceso::host::{Firmware, TEMPLATE_KEY};
use support::ova::{OvaSpec, build_ova, build_ova_with, ova_disk_size, ova_files, write_tar};
use support::{Simulator, find_vm, list_vms};

const MIB: u64 = 1 << 20;
const NAME: &str = "ubuntu-24.04";
const PASSWORD_ENV: &str = "CESO_TEMPLATE_PASSWORD";

fn options(sim: &Simulator, name: &str) -> ImportOptions {
    ImportOptions {
        name: name.to_owned(),
        datastore: sim.datastore.clone(),
        network: "VM Network".to_owned(),
    }
}

/// Imports, collecting every progress report.
async fn import(
    client: &EsxiClient,
    ova: &Path,
    options: &ImportOptions,
) -> (Result<ImportedTemplate, ImportError>, Vec<ImportProgress>) {
    let reports = Mutex::new(Vec::new());
    let record = |p: ImportProgress| reports.lock().unwrap().push(p);
    let result = client.import_ova(ova, options, &record).await;
    (result, reports.into_inner().unwrap())
}

fn vm_names(sim: &Simulator) -> Vec<String> {
    list_vms(sim).into_iter().map(|v| v.name).collect()
}

#[tokio::test]
async fn an_ova_becomes_a_powered_off_vm_marked_as_template() {
    let sim = Simulator::start();
    let ova = build_ova(sim.temp_dir(), "noble", 3 * MIB as usize, "efi");
    let disk_size = ova_disk_size(&ova);
    let client = sim.client().await;

    let (result, reports) = import(&client, &ova, &options(&sim, NAME)).await;
    let template = result.expect("import succeeds");

    // What the client reports is what the host says.
    assert_eq!(template.vm_name, NAME);
    assert_eq!((template.cpu, template.memory_mib), (2, 2048));
    assert_eq!(template.guest_id, "ubuntu64Guest");
    assert_eq!(template.firmware, Firmware::Efi);
    assert_eq!(template.capacity_bytes, 3 * MIB);
    assert!(
        template
            .disk
            .starts_with(&format!("[{}] {NAME}/", sim.datastore))
            && template.disk.ends_with(".vmdk"),
        "{}",
        template.disk
    );
    assert_eq!(template.uploaded_bytes, disk_size);

    let vm = find_vm(&sim, NAME).expect("the VM exists on the host");
    assert_eq!(vm.moref, template.moref);
    assert_eq!(vm.power_state, "poweredOff");
    assert_eq!((vm.num_cpu, vm.memory_mb), (2, 2048));
    assert_eq!(vm.guest_id, "ubuntu64Guest");
    assert_eq!(vm.disk_capacities, vec![3 * MIB]);
    assert_eq!(vm.disk_files, vec![template.disk.clone()]);
    assert_eq!(vm.nic_networks, vec!["VM Network"]);
    assert_eq!(
        vm.extra_config.get(TEMPLATE_KEY).map(String::as_str),
        Some(NAME)
    );
    // The product section's cloud-init properties were not passed (ceso uses guestinfo).
    assert!(
        !vm.extra_config
            .keys()
            .any(|k| k == "user-data" || k == "password"),
        "{:?}",
        vm.extra_config
    );
    let firmware =
        support::retrieve_properties(&sim, "VirtualMachine", &vm.moref, &["config.firmware"]);
    assert_eq!(firmware["config.firmware"].text, "efi");

    // Progress reaches the disk's full size, then the host finishes.
    let uploading: Vec<(u64, u64)> = reports
        .iter()
        .filter_map(|p| match p {
            ImportProgress::Uploading {
                sent_bytes,
                total_bytes,
                ..
            } => Some((*sent_bytes, *total_bytes)),
            ImportProgress::Finishing => None,
        })
        .collect();
    assert!(
        uploading.iter().all(|(_, total)| *total == disk_size),
        "{uploading:?}"
    );
    assert!(
        uploading.windows(2).all(|w| w[0].0 <= w[1].0),
        "{uploading:?}"
    );
    assert_eq!(uploading.last().map(|(sent, _)| *sent), Some(disk_size));
    assert_eq!(reports.last(), Some(&ImportProgress::Finishing));
    // The simulator received every byte (it logs each NFC transfer, then discards it).
    assert!(
        sim.stderr()
            .contains(&format!("transferred {disk_size} bytes")),
        "{}",
        sim.stderr()
    );
    assert_eq!(sim.method_count("HttpNfcLeaseComplete"), 1);
    assert_eq!(sim.method_count("HttpNfcLeaseAbort"), 0);

    // A BIOS image over plain http (the lease still says https): firmware as the descriptor says.
    let plain = Simulator::builder().tls(false).start();
    let bios = build_ova(plain.temp_dir(), "jammy", MIB as usize, "bios");
    let client = plain.client().await;
    let (result, _) = import(&client, &bios, &options(&plain, "ubuntu-22.04")).await;
    let template = result.expect("import over http succeeds");
    assert_eq!(template.firmware, Firmware::Bios);
    assert_eq!(template.uploaded_bytes, ova_disk_size(&bios));
}

#[tokio::test]
async fn a_second_import_under_the_same_name_is_refused_and_changes_nothing() {
    let sim = Simulator::start();
    let ova = build_ova(sim.temp_dir(), "noble", MIB as usize, "efi");
    let client = sim.client().await;
    import(&client, &ova, &options(&sim, NAME))
        .await
        .0
        .expect("first import");
    let before = list_vms(&sim);
    sim.reset_stats();

    let (result, reports) = import(&client, &ova, &options(&sim, NAME)).await;
    let err = result.expect_err("refused");
    assert!(
        matches!(&err, ImportError::VmExists { name, .. } if name == NAME),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    assert!(reports.is_empty());
    assert_eq!(list_vms(&sim), before, "nothing changed on the host");
    for method in [
        "CreateImportSpec",
        "ImportVApp",
        "ReconfigVM_Task",
        "Destroy_Task",
    ] {
        assert_eq!(sim.method_count(method), 0, "{method}");
    }
}

#[tokio::test]
async fn files_that_are_not_intact_ovas_are_refused_with_the_reason() {
    let sim = Simulator::start();
    let dir = sim.temp_dir();
    let client = sim.client().await;
    let before = vm_names(&sim);

    let garbage = dir.join("garbage.ova");
    std::fs::write(&garbage, b"<html>404 Not Found</html>".repeat(40)).unwrap();
    let err = import(&client, &garbage, &options(&sim, NAME))
        .await
        .0
        .expect_err("garbage");
    assert!(matches!(err, ImportError::NotAnOva { .. }), "{err}");
    assert!(err.to_string().contains("is not an OVA"), "{err}");

    let err = import(&client, &dir.join("missing.ova"), &options(&sim, NAME))
        .await
        .0
        .expect_err("missing file");
    assert!(matches!(err, ImportError::Read { .. }), "{err}");

    // A download cut short: the descriptor names a disk the archive lacks.
    let good = build_ova(dir, "noble", MIB as usize, "efi");
    let files = tar_contents(&good);
    let truncated = dir.join("truncated.ova");
    write_tar(&truncated, &files[..files.len() - 1]);
    let err = import(&client, &truncated, &options(&sim, NAME))
        .await
        .0
        .expect_err("truncated");
    assert!(
        matches!(&err, ImportError::MissingFile { file, .. } if file == "noble-disk1.vmdk"),
        "{err}"
    );
    assert_eq!(
        sim.method_count("CreateImportSpec"),
        0,
        "refused before asking the host"
    );

    // A damaged disk: found by the manifest's checksum while streaming; the VM goes again.
    let mut damaged_files = files.clone();
    let disk = &mut damaged_files.last_mut().unwrap().1;
    let middle = disk.len() / 2;
    disk[middle] ^= 0xff;
    let damaged = dir.join("damaged.ova");
    write_tar(&damaged, &damaged_files);
    let err = import(&client, &damaged, &options(&sim, NAME))
        .await
        .0
        .expect_err("damaged");
    assert!(
        matches!(&err, ImportError::ChecksumMismatch { file, .. } if file == "noble-disk1.vmdk"),
        "{err}"
    );
    assert_eq!(
        sim.method_count("HttpNfcLeaseComplete"),
        0,
        "never completed"
    );
    assert_eq!(sim.method_count("HttpNfcLeaseAbort"), 1);
    assert_eq!(vm_names(&sim), before, "no VM left behind");

    // Unknown datastore or network: refused before anything is created.
    let mut wrong = options(&sim, NAME);
    wrong.datastore = "nope".into();
    let err = import(&client, &good, &wrong)
        .await
        .0
        .expect_err("datastore");
    assert!(
        matches!(&err, ImportError::DatastoreNotFound { available, .. } if available.contains(&sim.datastore)),
        "{err}"
    );
    let mut wrong = options(&sim, NAME);
    wrong.network = "nope".into();
    let err = import(&client, &good, &wrong).await.0.expect_err("network");
    assert!(matches!(err, ImportError::NetworkNotFound { .. }), "{err}");
    assert_eq!(
        sim.method_count("ImportVApp"),
        1,
        "only the damaged OVA got that far"
    );
    assert_eq!(vm_names(&sim), before);
}

#[tokio::test]
async fn a_failure_at_any_step_after_the_vm_exists_leaves_no_vm_behind() {
    let sim = Simulator::start();
    let ova = build_ova(sim.temp_dir(), "noble", MIB as usize, "efi");
    let client = sim.client().await;
    let before = vm_names(&sim);
    for rule in [
        "ImportVApp=SystemError*1",
        "HttpNfcLeaseComplete=SystemError*1",
        "ReconfigVM_Task=task:InvalidState*1",
    ] {
        sim.inject_fault(rule);
        let (result, _) = import(&client, &ova, &options(&sim, NAME)).await;
        let err = result.expect_err(rule);
        assert!(matches!(err, ImportError::Host { .. }), "{rule}: {err}");
        assert!(
            find_vm(&sim, NAME).is_none(),
            "{rule}: the half-imported VM was removed ({err})"
        );
        assert_eq!(vm_names(&sim), before, "{rule}");
    }
    // And then it works.
    import(&client, &ova, &options(&sim, NAME))
        .await
        .0
        .expect("import after the faults");
    assert!(find_vm(&sim, NAME).is_some());
}

#[tokio::test]
async fn an_interrupted_import_removes_the_vm() {
    let sim = Simulator::builder().tls(false).start();
    let ova = build_ova(sim.temp_dir(), "noble", 2 * MIB as usize, "efi");
    let client = sim.client().await;
    let interrupt = tokio::sync::Notify::new();
    let on_progress = |_: ImportProgress| interrupt.notify_one();
    let err = client
        .import_ova_cancellable(
            &ova,
            &options(&sim, NAME),
            &on_progress,
            interrupt.notified(),
        )
        .await
        .expect_err("interrupted");
    assert!(matches!(err, ImportError::Cancelled), "{err}");
    assert!(
        find_vm(&sim, NAME).is_none(),
        "the partly imported VM was removed"
    );
    assert_eq!(sim.method_count("HttpNfcLeaseAbort"), 1);
}

// ------------------------------------------------------------------------------------------------
// the command line

fn tar_contents(ova: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(ova).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// An inventory directory with one Host pointed at the simulator.
fn inventory(sim: &Simulator) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory");
    std::fs::create_dir(&inventory).unwrap();
    std::fs::write(
        inventory.join("hosts.yaml"),
        format!(
            "apiVersion: ceso/v1\nkind: Host\nmetadata: {{ name: esxi-01 }}\nspec:\n  address: {}\n  thumbprint: \"{}\"\n  username: {}\n  password: {{ env: {PASSWORD_ENV} }}\n  datastore: {}\n  network: VM Network\n",
            sim.url, sim.thumbprint, sim.user, sim.datastore
        ),
    )
    .unwrap();
    (dir, inventory)
}

fn ceso(sim: &Simulator, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(args)
        .env(PASSWORD_ENV, &sim.password)
        .env("CESO_STATE", dir.join("state.redb"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn expect_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn ceso_template_import_writes_the_template_manifest() {
    let sim = Simulator::start();
    let (dir, inventory) = inventory(&sim);
    let ova = build_ova_with(
        sim.temp_dir(),
        &OvaSpec {
            cpu: 4,
            memory_mib: 4096,
            ..OvaSpec::new("noble-server-cloudimg-amd64", 5 * MIB as usize, "efi")
        },
    );
    let ova_arg = ova.display().to_string();
    let inventory_arg = inventory.display().to_string();
    let args = [
        "template",
        "import",
        &ova_arg,
        "--name",
        NAME,
        "--host",
        "esxi-01",
        "--inventory",
        &inventory_arg,
    ];

    let output = ceso(&sim, dir.path(), &args);
    expect_code(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let manifest = inventory.join("templates").join(format!("{NAME}.yaml"));
    assert!(
        stdout.contains(&format!("Wrote {}", manifest.display())),
        "{stdout}"
    );
    assert!(stdout.contains("Commit it"), "{stdout}");
    assert!(
        stderr.contains("uploading noble-server-cloudimg-amd64-disk1.vmdk"),
        "{stderr}"
    );
    assert!(stderr.contains("(100%)"), "{stderr}");

    let vm = find_vm(&sim, NAME).expect("the template VM exists");
    assert_eq!(vm.extra_config[TEMPLATE_KEY], NAME);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(yaml["apiVersion"], "ceso/v1");
    assert_eq!(yaml["kind"], "Template");
    assert_eq!(yaml["metadata"]["name"], NAME);
    let spec = &yaml["spec"];
    assert_eq!(spec["host"], "esxi-01");
    assert_eq!(
        spec["disk"].as_str(),
        vm.disk_files.first().map(String::as_str)
    );
    assert_eq!(spec["guestId"], "ubuntu64Guest");
    assert_eq!(spec["firmware"], "efi");
    assert_eq!(spec["cpu"], 4);
    assert_eq!(spec["memory"], "4GiB");
    assert_eq!(spec["diskSize"], "5MiB");
    assert!(
        !dir.path()
            .join("inventory/templates")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with('.') }),
        "no temporary file left"
    );
    // The inventory with the new manifest is valid.
    let validate = ceso(&sim, dir.path(), &["validate", &inventory_arg]);
    expect_code(&validate, 0);

    // Again: refused before connecting, the manifest and the host unchanged.
    let vms = list_vms(&sim);
    let again = ceso(&sim, dir.path(), &args);
    expect_code(&again, 1);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already declared"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
    assert_eq!(list_vms(&sim), vms);

    // Not an OVA: a clear error, no manifest, no VM.
    let bogus = sim.temp_dir().join("bogus.ova");
    std::fs::write(&bogus, "not a tar archive at all, just text").unwrap();
    let bogus_arg = bogus.display().to_string();
    let refused = ceso(
        &sim,
        dir.path(),
        &[
            "template",
            "import",
            &bogus_arg,
            "--name",
            "other",
            "--host",
            "esxi-01",
            "--inventory",
            &inventory_arg,
        ],
    );
    expect_code(&refused, 1);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not an OVA"), "{stderr}");
    assert!(!inventory.join("templates/other.yaml").exists());
    assert!(find_vm(&sim, "other").is_none());
    assert_eq!(
        ova_files(&ova).first().map(|(n, _)| n.ends_with(".ovf")),
        Some(true)
    );
}
