//! End to end: the real `ceso` binary against the ESXi simulator (TLS, enforced credentials).
//! Results are checked by reading the host back over SOAP, never by trusting ceso's output.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::inventory::{Inventory, PASSWORD_ENV, Run, wait_for};
use support::{Simulator, find_vm, list_vms, soap_query};

/// A simulator whose guests run VMware Tools once powered on (so they can be shut down).
fn simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(20)
        .start()
}

fn vm(name: &str, cpu: u32, memory: &str, power: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: {cpu}\n  memory: {memory}\n  disks: [ {{ size: 1GiB }} ]\n  power: {power}\n  guestId: ubuntu64Guest\n{extra}"
    )
}

fn managed_names(sim: &Simulator) -> Vec<String> {
    list_vms(sim)
        .into_iter()
        .filter(|v| {
            v.extra_config
                .get("ceso.managed")
                .is_some_and(|m| !m.is_empty())
        })
        .map(|v| v.name)
        .collect()
}

#[test]
fn create_then_a_second_plan_has_no_changes() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &(vm("web-01", 2, "4GiB", "on", "") + &vm("db-01", 1, "1GiB", "off", "")),
    );
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("+ VirtualMachine/web-01"),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout()
            .contains("Plan: 2 to create, 0 to update, 0 to replace, 0 to delete.")
    );
    assert!(find_vm(&sim, "web-01").is_none(), "plan changes nothing");

    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let web = find_vm(&sim, "web-01").expect("web-01 exists on the host");
    assert_eq!(
        (web.num_cpu, web.memory_mb, web.power_state.as_str()),
        (2, 4096, "poweredOn")
    );
    assert_eq!(web.guest_id, "ubuntu64Guest");
    assert_eq!(web.disk_capacities, vec![1 << 30]);
    assert_eq!(web.nic_networks, vec!["VM Network"]);
    assert_eq!(web.extra_config["ceso.managed"], "web-01");
    let db = find_vm(&sim, "db-01").unwrap();
    assert_eq!(db.power_state, "poweredOff");

    let again = inv.ceso(&sim, &["plan", "DIR"]);
    again.expect(0);
    assert!(again.stdout().contains("No changes."), "{}", again.stdout());
    // The simulator's own VMs are listed as unmanaged and left alone.
    assert!(again.stdout().contains("ha-host_VM0"));

    let audit = inv.ceso(&sim, &["audit", "list", "--json"]);
    audit.expect(0);
    let runs: serde_json::Value = serde_json::from_str(&audit.stdout()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["steps_succeeded"], 3);
    let run_id = runs[0]["run_id"].as_str().unwrap();
    let show = inv.ceso(&sim, &["audit", "show", run_id, "--json"]);
    show.expect(0);
    let shown: serde_json::Value = serde_json::from_str(&show.stdout()).unwrap();
    let events: Vec<&str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.iter().filter(|e| **e == "succeeded").count(), 3);
    assert!(
        !show.stdout().contains(&sim.password),
        "no secret in the audit log"
    );
    inv.ceso(&sim, &["audit", "show", run_id]).expect(0);
}

#[test]
fn cpu_and_memory_changes_power_cycle_the_vm_and_power_follows_the_manifest() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("app-01", 1, "1GiB", "on", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);

    inv.set_vms(&vm("app-01", 4, "2GiB", "on", ""));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    let text = plan.stdout();
    assert!(
        text.contains("~ cpu    = 1 → 4   # requires power off"),
        "{text}"
    );
    assert!(text.contains("shut down for this change"), "{text}");
    let applied = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    applied.expect(0);
    let stdout = applied.stdout();
    let order: Vec<&str> = stdout.lines().filter(|l| l.ends_with("...")).collect();
    assert_eq!(
        order,
        [
            "VirtualMachine/app-01: shut down app-01...",
            "VirtualMachine/app-01: reconfigure app-01...",
            "VirtualMachine/app-01: power on app-01..."
        ]
    );
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!(
        (app.num_cpu, app.memory_mb, app.power_state.as_str()),
        (4, 2048, "poweredOn")
    );

    inv.set_vms(&vm("app-01", 4, "2GiB", "off", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "app-01").unwrap().power_state, "poweredOff");
    inv.set_vms(&vm("app-01", 4, "2GiB", "on", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "app-01").unwrap().power_state, "poweredOn");
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

fn reconfigure_behind_cesos_back(sim: &Simulator, moref: &str, cpu: u32) {
    let body = format!(
        r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><spec><numCPUs>{cpu}</numCPUs></spec></ReconfigVM_Task>"#
    );
    let answer = soap_query(sim, &body);
    assert!(answer.contains("returnval"), "{answer}");
}

#[test]
fn changes_made_outside_ceso_show_as_drift_and_are_corrected() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 2, "1GiB", "off", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let web = find_vm(&sim, "web-01").unwrap();
    reconfigure_behind_cesos_back(&sim, &web.moref, 3);
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("it was changed outside ceso"),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout()
            .contains("~ cpu = 3 → 2   # requires power off, changed outside ceso"),
        "{}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "web-01").unwrap().num_cpu, 2);
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn removed_vms_are_deleted_only_with_prune_and_never_when_protected() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &(vm("keep-01", 1, "1GiB", "on", "")
            + &vm("old-01", 1, "1GiB", "on", "")
            + &vm("db-01", 1, "1GiB", "on", "  protect: true\n")),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let unmanaged_before: Vec<_> = list_vms(&sim)
        .into_iter()
        .filter(|v| v.name.starts_with("ha-host"))
        .collect();

    inv.set_vms(&vm("keep-01", 1, "1GiB", "on", ""));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(0);
    assert!(
        plan.stdout().contains("deleted only with --prune"),
        "{}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert!(find_vm(&sim, "old-01").is_some(), "no prune, no delete");

    let pruned = inv.ceso(&sim, &["plan", "DIR", "--prune"]);
    pruned.expect(2);
    assert!(
        pruned.stdout().contains("- VirtualMachine/old-01"),
        "{}",
        pruned.stdout()
    );
    assert!(
        pruned.stdout().contains("protected: ceso never deletes it"),
        "{}",
        pruned.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve", "--prune"])
        .expect(0);
    assert!(find_vm(&sim, "old-01").is_none(), "pruned");
    assert_eq!(
        find_vm(&sim, "db-01").unwrap().power_state,
        "poweredOn",
        "protected VM kept"
    );
    assert_eq!(managed_names(&sim), vec!["db-01", "keep-01"]);
    let unmanaged_after: Vec<_> = list_vms(&sim)
        .into_iter()
        .filter(|v| v.name.starts_with("ha-host"))
        .collect();
    assert_eq!(unmanaged_before, unmanaged_after, "unmanaged VMs untouched");
}

#[test]
fn disks_are_never_shrunk_nor_deleted_and_a_clash_with_an_unmanaged_vm_is_refused() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &vm(
            "db-01",
            1,
            "1GiB",
            "off",
            "  protect: true\n  disks: [ { size: 2GiB } ]\n",
        )
        .replace("  disks: [ { size: 1GiB } ]\n", ""),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&vm("db-01", 1, "1GiB", "off", "  protect: true\n"));
    let shrink = inv.ceso(&sim, &["plan", "DIR"]);
    shrink.expect(1);
    assert!(
        shrink
            .stdout()
            .contains("disk 0 is 2GiB on the host, the manifest says 1GiB: disks never shrink"),
        "{}",
        shrink.stdout()
    );
    inv.set_vms(
        &vm("db-01", 1, "1GiB", "off", "  protect: true\n")
            .replace("  disks: [ { size: 1GiB } ]\n", "  disks: []\n"),
    );
    let removed = inv.ceso(&sim, &["plan", "DIR"]);
    removed.expect(1);
    assert!(
        removed.stdout().contains("ceso never deletes disks"),
        "{}",
        removed.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(1);
    assert_eq!(
        find_vm(&sim, "db-01").unwrap().disk_capacities,
        vec![2 << 30]
    );

    inv.set_vms(&vm("ha-host_VM0", 1, "1GiB", "off", ""));
    let clash = inv.ceso(&sim, &["plan", "DIR"]);
    clash.expect(1);
    assert!(
        clash.stdout().contains("was not created by ceso"),
        "{}",
        clash.stdout()
    );
    let vm0 = find_vm(&sim, "ha-host_VM0").unwrap();
    assert_eq!((vm0.num_cpu, vm0.power_state.as_str()), (1, "poweredOn"));
}

#[test]
fn a_saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let plan_file = inv.dir.path().join("plan.json");
    let plan_arg = plan_file.display().to_string();
    inv.ceso(&sim, &["plan", "DIR", "--out", &plan_arg])
        .expect(2);
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert!(!saved.contains(&sim.password), "no secret in a saved plan");
    inv.ceso(&sim, &["apply", &plan_arg]).expect(0);
    assert!(find_vm(&sim, "web-01").is_some());

    inv.set_vms(&vm("web-01", 2, "1GiB", "off", ""));
    inv.ceso(&sim, &["plan", "DIR", "--out", &plan_arg])
        .expect(2);
    reconfigure_behind_cesos_back(&sim, &find_vm(&sim, "web-01").unwrap().moref, 3);
    let stale = inv.ceso(&sim, &["apply", &plan_arg]);
    stale.expect(1);
    assert!(stale.stderr().contains("is stale"), "{}", stale.stderr());
    assert!(
        stale
            .stderr()
            .contains("VM web-01 on host esxi-01 changed since the plan was made: cpu 1 → 3"),
        "{}",
        stale.stderr()
    );
    assert_eq!(
        find_vm(&sim, "web-01").unwrap().num_cpu,
        3,
        "nothing applied"
    );
}

#[test]
fn apply_refuses_without_a_terminal_or_auto_approve() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let refused = inv.ceso(&sim, &["apply", "DIR"]);
    refused.expect(1);
    assert!(
        refused
            .stderr()
            .contains("refusing to apply without confirmation"),
        "{}",
        refused.stderr()
    );
    assert!(find_vm(&sim, "web-01").is_none());
}

#[test]
fn a_second_apply_is_refused_while_the_lock_is_held() {
    let sim = Simulator::builder()
        .method_delay("CreateVM_Task", 5000)
        .start();
    let inv = Inventory::new(&sim, &vm("slow-01", 1, "1GiB", "off", ""));
    let mut first = inv.apply_in_background(&sim, &[], "CreateVM_Task", 1);
    let second = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    second.expect(1);
    assert!(
        second.stderr().contains("another apply holds the lock"),
        "{}",
        second.stderr()
    );
    assert!(
        second.stderr().contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr()
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(managed_names(&sim), vec!["slow-01"]);
}

#[test]
fn killing_apply_mid_run_loses_nothing_and_the_next_apply_converges() {
    let sim = Simulator::builder()
        .method_delay("PowerOnVM_Task", 700)
        .start();
    let names: Vec<String> = (1..=6).map(|i| format!("vm-{i:02}")).collect();
    let manifests: String = names.iter().map(|n| vm(n, 1, "1GiB", "on", "")).collect();
    let inv = Inventory::new(&sim, &manifests);
    let mut apply = inv.apply_in_background(&sim, &["--parallelism", "1"], "PowerOnVM_Task", 2);
    apply.kill().unwrap(); // SIGKILL
    apply.wait().unwrap();
    let done_before = managed_names(&sim).len();
    assert!(done_before < names.len(), "killed before the end");

    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    let audit = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    audit.expect(0);
    assert!(
        audit.stderr().contains("took over the apply lock"),
        "{}",
        audit.stderr()
    );
    let vms = list_vms(&sim);
    for name in &names {
        let copies: Vec<_> = vms.iter().filter(|v| &v.name == name).collect();
        assert_eq!(copies.len(), 1, "{name} exists exactly once");
        assert_eq!(copies[0].power_state, "poweredOn");
    }
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
    let runs: serde_json::Value =
        serde_json::from_str(&inv.ceso(&sim, &["audit", "list", "--json"]).stdout()).unwrap();
    assert_eq!(runs[0]["status"], "interrupted");
    assert_eq!(runs[1]["status"], "succeeded");
    // The takeover marked the killed run interrupted through the audit chain too.
    inv.ceso(&sim, &["audit", "verify"]).expect(0);
}

#[test]
fn a_failed_step_stops_what_depends_on_it_and_is_audited() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &(vm("bad-01", 1, "1GiB", "on", "") + &vm("good-01", 1, "1GiB", "on", "")),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&(vm("bad-01", 2, "1GiB", "on", "") + &vm("good-01", 2, "1GiB", "on", "")));
    let bad = find_vm(&sim, "bad-01").unwrap();
    sim.inject_fault(&format!(
        "ShutdownGuest@{}=InsufficientResourcesFault*1",
        bad.moref
    ));
    let run = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    run.expect(1);
    assert!(
        run.stdout().contains("InsufficientResourcesFault"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("reconfigure bad-01 skipped"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        find_vm(&sim, "good-01").unwrap().num_cpu,
        2,
        "independent steps went on"
    );
    assert_eq!(find_vm(&sim, "bad-01").unwrap().num_cpu, 1);
    let runs: serde_json::Value =
        serde_json::from_str(&inv.ceso(&sim, &["audit", "list", "--json"]).stdout()).unwrap();
    let last = &runs[1];
    assert_eq!(
        (
            last["status"].as_str(),
            last["steps_failed"].as_u64(),
            last["steps_skipped"].as_u64()
        ),
        (Some("failed"), Some(1), Some(2))
    );
    let shown = inv.ceso(&sim, &["audit", "show", last["run_id"].as_str().unwrap()]);
    assert!(shown.stdout().contains("FAILED"), "{}", shown.stdout());
    assert!(
        shown.stdout().contains("InsufficientResourcesFault"),
        "{}",
        shown.stdout()
    );
    // The next apply finishes the job.
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "bad-01").unwrap().num_cpu, 2);
}

#[test]
fn a_read_only_licence_is_explained() {
    let sim = Simulator::builder()
        .fault("CreateVM_Task=RestrictedVersion")
        .start();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let run = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    run.expect(1);
    assert!(
        run.stdout().to_lowercase().contains("licence"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_wrong_thumbprint_is_refused_as_a_possible_impostor() {
    let sim = simulator();
    let wrong = format!("thumbprint: \"{}\"", ["AB"; 32].join(":"));
    let inv = Inventory::with_host(&sim, &vm("web-01", 1, "1GiB", "off", ""), &wrong);
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(1);
    assert!(plan.stderr().contains("impostor"), "{}", plan.stderr());
    assert!(
        plan.stderr().contains(&sim.thumbprint),
        "shows the thumbprint actually seen: {}",
        plan.stderr()
    );
    assert_eq!(
        sim.method_count("Login"),
        0,
        "no credentials sent to an impostor"
    );
}

#[test]
fn a_wrong_password_is_reported_without_echoing_it() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let mut command = inv.command(&sim, &["plan", inv.path().to_str().unwrap()]);
    command.env(PASSWORD_ENV, "not-the-password-42");
    let run = Run(command.output().unwrap());
    run.expect(1);
    assert!(
        run.stderr().to_lowercase().contains("login"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("not-the-password-42"));
}

#[test]
fn a_missing_password_variable_names_the_host_and_variable() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let mut command = inv.command(&sim, &["plan", inv.path().to_str().unwrap()]);
    command.env_remove(PASSWORD_ENV);
    let run = Run(command.output().unwrap());
    run.expect(1);
    assert!(
        run.stderr().contains(&format!(
            "cannot read the password of host esxi-01: environment variable {PASSWORD_ENV} is not set"
        )) && run.stderr().contains(&format!("hint: set {PASSWORD_ENV}")),
        "{}",
        run.stderr()
    );
}

#[test]
fn invalid_manifests_are_reported_by_validate_plan_and_apply_without_touching_the_host() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "3GB", "off", "  colour: red\n"));
    for args in [
        &["validate", "DIR"][..],
        &["plan", "DIR"],
        &["apply", "DIR", "--auto-approve"],
    ] {
        let run = inv.ceso(&sim, args);
        run.expect(1);
        assert!(
            run.stderr().contains(
                "vms.yaml:8:11: VirtualMachine/web-01: spec.memory: invalid size \"3GB\""
            ),
            "{args:?}: {}",
            run.stderr()
        );
    }
    assert_eq!(sim.method_count("Login"), 0);
    let valid = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let run = valid.ceso(&sim, &["validate", "DIR"]);
    run.expect(0);
    assert!(run.stdout().contains(
        "valid (1 host(s), 0 template(s), 0 IP pool(s), 0 backup policy(ies), 1 virtual machine(s))"
    ));
}

#[test]
fn an_expired_session_is_renewed_transparently() {
    let sim = Simulator::builder()
        .session_idle(Duration::from_secs(1))
        .method_delay("PowerOnVM_Task", 2500)
        .start();
    let inv = Inventory::new(
        &sim,
        &(vm("a-01", 1, "1GiB", "on", "") + &vm("b-01", 1, "1GiB", "on", "")),
    );
    inv.ceso(
        &sim,
        &["apply", "DIR", "--auto-approve", "--parallelism", "1"],
    )
    .expect(0);
    assert!(
        sim.method_count("Login") >= 2,
        "re-logged in: {}",
        sim.stats()
    );
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

/// Runs ceso on a pseudo-terminal (util-linux `script`), typing `answer` at the prompt.
fn ceso_on_terminal(inv: &Inventory, sim: &Simulator, args: &str, answer: &str) -> Run {
    let command_line = format!(
        "{} {args} {}",
        env!("CARGO_BIN_EXE_ceso"),
        inv.path().display()
    );
    let template = inv.command(sim, &[]);
    let mut script = Command::new("script");
    script
        .args(["-qec", &command_line, "/dev/null"])
        .envs(
            template
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .current_dir(template.get_current_dir().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().expect("util-linux script runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(answer.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    Run(child.wait_with_output().unwrap())
}

#[test]
fn on_a_terminal_apply_asks_and_only_yes_approves() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let declined = ceso_on_terminal(&inv, &sim, "apply", "no\n");
    assert!(
        declined.stdout().contains("Only 'yes' will be accepted"),
        "{}",
        declined.stdout()
    );
    assert!(
        declined
            .stdout()
            .contains("apply cancelled; nothing was changed"),
        "{}",
        declined.stdout()
    );
    assert!(find_vm(&sim, "web-01").is_none());

    let approved = ceso_on_terminal(&inv, &sim, "apply", "yes\n");
    assert!(
        approved.stdout().contains("Apply complete"),
        "{}",
        approved.stdout()
    );
    assert!(find_vm(&sim, "web-01").is_some());
}

#[test]
fn insecure_mode_works_but_warns_on_every_run() {
    let sim = simulator();
    let inv = Inventory::with_host(&sim, &vm("web-01", 1, "1GiB", "off", ""), "insecure: true");
    for _ in 0..2 {
        let run = inv.ceso(&sim, &["plan", "DIR"]);
        run.expect(2);
        assert!(
            run.stderr()
                .contains("certificate verification is disabled"),
            "{}",
            run.stderr()
        );
    }
}

#[test]
fn a_vm_power_cycled_for_a_change_that_fails_is_powered_back_on() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("app-01", 1, "1GiB", "on", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let app = find_vm(&sim, "app-01").unwrap();
    sim.inject_fault(&format!(
        // Two faults: the first hits the power-off's recording of `ceso.power` (only a warning),
        // the second the reconfiguration itself.
        "ReconfigVM_Task@{}=task:InvalidArgument*2",
        app.moref
    ));
    inv.set_vms(&vm("app-01", 2, "1GiB", "on", ""));
    let run = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    run.expect(1);
    assert!(
        run.stdout().contains("reconfigure app-01 FAILED"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("power on app-01 done"),
        "{}",
        run.stdout()
    );
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!((app.num_cpu, app.power_state.as_str()), (1, "poweredOn"));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "app-01").unwrap().num_cpu, 2);
}

#[test]
fn a_hand_edited_plan_that_targets_an_unmanaged_vm_is_refused() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&vm("web-01", 1, "1GiB", "on", ""));
    let plan_file = inv.dir.path().join("edited.plan");
    let plan_arg = plan_file.display().to_string();
    inv.ceso(&sim, &["plan", "DIR", "--out", &plan_arg])
        .expect(2);
    let mut edited: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    for step in edited["steps"].as_array_mut().unwrap() {
        step["op"]["moref"] = serde_json::json!("vm-9"); // the simulator's own ha-host_VM0
    }
    std::fs::write(&plan_file, edited.to_string()).unwrap();
    let run = inv.ceso(&sim, &["apply", &plan_arg]);
    run.expect(1);
    assert!(
        run.stderr()
            .contains("acts on VM vm-9, which the plan did not observe"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().power_state,
        "poweredOn"
    );
    assert_eq!(find_vm(&sim, "web-01").unwrap().power_state, "poweredOff");
}

#[test]
fn names_the_host_does_not_know_are_errors_at_their_place_in_the_manifests() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &vm(
            "web-01",
            1,
            "1GiB",
            "off",
            "  networks: [ { portGroup: Lab } ]\n",
        ),
    );
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(1);
    assert!(
        plan.stdout().contains("vms.yaml:12:28: VirtualMachine/web-01: spec.networks[0].portGroup: port group \"Lab\" does not exist on host esxi-01\n  hint: networks on the host: VM Network"),
        "{}",
        plan.stdout()
    );
    assert!(find_vm(&sim, "web-01").is_none());
}

#[test]
fn a_vm_still_being_created_by_a_killed_run_is_not_created_twice() {
    let sim = Simulator::builder()
        .method_delay("CreateVM_Task", 8000)
        .start();
    let inv = Inventory::new(&sim, &vm("d1", 1, "1GiB", "off", ""));
    let mut apply = inv.apply_in_background(&sim, &[], "CreateVM_Task", 1);
    apply.kill().unwrap(); // SIGKILL while the host is still creating the VM
    apply.wait().unwrap();

    let again = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    again.expect(1);
    assert!(
        again
            .stderr()
            .contains("while creating VirtualMachine/d1 on host esxi-01"),
        "{}",
        again.stderr()
    );
    assert!(
        again.stderr().contains("nothing was changed"),
        "{}",
        again.stderr()
    );

    wait_for(Duration::from_secs(30), || find_vm(&sim, "d1").is_some());
    // The VM the killed run created is now there: the plan has nothing left to create.
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(list_vms(&sim).iter().filter(|v| v.name == "d1").count(), 1);

    let runs: serde_json::Value =
        serde_json::from_str(&inv.ceso(&sim, &["audit", "list", "--json"]).stdout()).unwrap();
    let killed = runs[0]["run_id"].as_str().unwrap().to_owned();
    let shown = inv.ceso(&sim, &["audit", "show", &killed]);
    assert!(
        shown.stdout().contains("(interrupted)"),
        "{}",
        shown.stdout()
    );
    assert!(
        shown
            .stdout()
            .contains("1 step(s) started but never reported an outcome"),
        "{}",
        shown.stdout()
    );
}

#[test]
fn a_saved_plan_is_applied_once_and_exactly_as_saved() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let plan_file = inv.dir.path().join("plan.out");
    let plan_arg = plan_file.display().to_string();
    inv.ceso(&sim, &["plan", "DIR", "--out", &plan_arg])
        .expect(2);
    let pruning = inv.ceso(&sim, &["apply", &plan_arg, "--prune"]);
    pruning.expect(1);
    assert!(
        pruning
            .stderr()
            .contains("--prune cannot change a saved plan"),
        "{}",
        pruning.stderr()
    );
    inv.ceso(&sim, &["apply", &plan_arg]).expect(0);
    let again = inv.ceso(&sim, &["apply", &plan_arg]);
    again.expect(1);
    assert!(
        again.stderr().contains("was already applied in run"),
        "{}",
        again.stderr()
    );
}

#[test]
fn an_unreachable_suspended_host_does_not_stop_the_plan_of_the_others() {
    let sim = simulator();
    let away = "---\napiVersion: ceso/v1\nkind: Host\nmetadata: { name: esxi-02 }\nspec:\n  address: https://127.0.0.1:1\n  insecure: true\n  username: root\n  password: { env: CESO_E2E_PASSWORD }\n  datastore: datastore1\n  network: VM Network\n  suspend: true\n";
    let on_away = vm("db-09", 1, "1GiB", "off", "").replace("host: esxi-01", "host: esxi-02");
    let inv = Inventory::new(
        &sim,
        &format!("{away}{}{on_away}", vm("web-01", 1, "1GiB", "off", "")),
    );
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stderr()
            .contains("suspended host esxi-02 is not observed"),
        "{}",
        plan.stderr()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert!(find_vm(&sim, "web-01").is_some());
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

/// Whoever wrote the manifests decides where ceso sends the password: a Host in a directory
/// another account owns (an agent's, say) is refused before any secret is read or sent, and so
/// is a saved plan file another account owns.
#[test]
fn a_password_is_never_sent_on_the_word_of_a_file_another_account_wrote() {
    use std::os::unix::fs::PermissionsExt;
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, "1GiB", "off", ""));
    let plan_file = inv.dir.path().join("plan.json");
    let path = inv.path().display().to_string();
    inv.ceso(&sim, &["plan", &path, "--out", plan_file.to_str().unwrap()])
        .expect(2);
    let logins = sim.method_count("Login");

    // Another account's directory (uid 65534, nobody).
    std::os::unix::fs::chown(inv.path(), Some(65534), None).unwrap();
    let run = inv.ceso(&sim, &["plan", &path]);
    run.expect(1);
    assert!(
        run.stderr()
            .contains("may have been written by another account")
            && run.stderr().contains("not to you"),
        "{}",
        run.stderr()
    );
    // Ours again, but writable by others.
    std::os::unix::fs::chown(inv.path(), Some(nix_uid()), None).unwrap();
    std::fs::set_permissions(inv.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = inv.ceso(&sim, &["plan", &path]);
    run.expect(1);
    assert!(
        run.stderr().contains("writable by its group or others"),
        "{}",
        run.stderr()
    );
    std::fs::set_permissions(inv.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    std::os::unix::fs::chown(&plan_file, Some(65534), None).unwrap();
    let run = inv.ceso(
        &sim,
        &["apply", plan_file.to_str().unwrap(), "--auto-approve"],
    );
    run.expect(1);
    assert!(
        run.stderr()
            .contains("may have been written by another account"),
        "{}",
        run.stderr()
    );
    assert_eq!(sim.method_count("Login"), logins, "no login was attempted");
    assert!(find_vm(&sim, "web-01").is_none());
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
}
