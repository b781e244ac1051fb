//! Checks of the test infrastructure itself: the esxsim launcher and tests/support.

mod support;

use std::time::{Duration, Instant};

use support::{
    GuestOverride, Simulator, VmFacts, find_vm, list_vms, retrieve_properties, set_extra_config,
    soap_login, soap_post, soap_query, task_outcome, vm_call, wait_for_vm,
};

const CURRENT_TIME: &str = r#"<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>"#;

#[test]
fn starts_with_tls_and_lists_the_default_vms() {
    let sim = Simulator::start();

    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
    assert!(sim.url.ends_with("/sdk"), "{}", sim.url);
    let groups: Vec<&str> = sim.thumbprint.split(':').collect();
    assert_eq!(groups.len(), 32, "{}", sim.thumbprint);
    assert!(
        groups.iter().all(|g| g.len() == 2
            && g.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))),
        "{}",
        sim.thumbprint
    );
    assert!(sim.ca_file.as_ref().is_some_and(|p| p.is_file()));
    assert_eq!(sim.datastore, "LocalDS_0");
    assert_eq!(sim.user, "root");
    assert!(sim.password.len() >= 16);
    assert!(sim.datastore_dir.join("ha-host_VM0").is_dir());
    assert!(
        sim.datastore_dir
            .join("ha-host_VM1/disk1-flat.vmdk")
            .is_file()
    );

    // The CA file verifies the server (no -k).
    let status = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(sim.ca_file.as_ref().unwrap())
        .arg(format!("{}/sdk/vimServiceVersions.xml", sim.base_url()))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");

    let vms = list_vms(&sim);
    let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["ha-host_VM0", "ha-host_VM1"]);
    let vm0 = &vms[0];
    assert_eq!(vm0.moref, "vm-9");
    assert_eq!(vms[1].moref, "vm-12");
    assert_eq!(vm0.num_cpu, 1);
    assert_eq!(vm0.memory_mb, 32);
    assert_eq!(vm0.power_state, "poweredOn");
    assert_eq!(vm0.guest_id, "otherGuest");
    assert_eq!(
        vm0.extra_config.get("govcsim").map(String::as_str),
        Some("TRUE")
    );
    assert_eq!(vm0.disk_capacities, [1024 * 1024]);
    assert_eq!(vm0.disk_files, ["[LocalDS_0] ha-host_VM0/disk1.vmdk"]);
    assert_eq!(vm0.nic_networks, ["VM Network"]);

    // The dangling datastore reference of the plain simulator is gone.
    let dc = retrieve_properties(&sim, "Datacenter", "ha-datacenter", &["datastore"]);
    let refs: Vec<String> = dc["datastore"]
        .children
        .iter()
        .map(|r| r.text.clone())
        .collect();
    assert_eq!(
        refs,
        [format!(
            "{}@ha-folder-datastore",
            sim.datastore_dir.display()
        )]
    );

    // Hidden helper requests are not counted.
    assert_eq!(sim.stats()["total"], 0);
}

#[test]
fn login_enforces_the_credentials() {
    let sim = Simulator::builder().password("p&ss<w>rd'\"").start();

    let err = soap_login(&sim, "root", "wrong").expect_err("wrong password accepted");
    assert_eq!(err.status, 500);
    assert_eq!(err.fault().as_deref(), Some("InvalidLogin"));
    let err = soap_login(&sim, "admin", &sim.password).expect_err("wrong user accepted");
    assert_eq!(err.fault().as_deref(), Some("InvalidLogin"));

    // Without a session: NotAuthenticated.
    let r = soap_post(&sim, None, CURRENT_TIME);
    assert_eq!(r.fault().as_deref(), Some("NotAuthenticated"));

    let session = soap_login(&sim, &sim.user, &sim.password).expect("login");
    let r = soap_post(&sim, Some(&session), CURRENT_TIME);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.returnval().is_some_and(|t| t.starts_with("20")),
        "{}",
        r.body
    );

    let stats = sim.stats();
    assert_eq!(stats["methods"]["Login"], 3);
    assert_eq!(stats["methods"]["CurrentTime"], 2);
    assert_eq!(stats["total"], 5);
    sim.reset_stats();
    assert_eq!(sim.stats()["total"], 0);
}

#[test]
fn fault_injection_and_stats() {
    let sim = Simulator::builder()
        .fault("CloneVM_Task=NotSupported")
        .start();
    let session = soap_login(&sim, &sim.user, &sim.password).expect("login");

    let clone = r#"<CloneVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-9</_this><folder type="Folder">ha-folder-vm</folder><name>copy</name><spec><location></location><powerOn>false</powerOn><template>false</template></spec></CloneVM_Task>"#;
    let r = soap_post(&sim, Some(&session), clone);
    assert_eq!(r.status, 500);
    assert_eq!(r.fault().as_deref(), Some("NotSupported"));
    assert_eq!(r.fault_string().as_deref(), Some("injected NotSupported"));

    // Task fault, limited to one call on vm-9.
    sim.inject_fault("PowerOffVM_Task@vm-9=task:InvalidPowerState*1");
    let power_off = |moref: &str| {
        format!(
            r#"<PowerOffVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this></PowerOffVM_Task>"#
        )
    };
    let r = soap_post(&sim, Some(&session), &power_off("vm-9"));
    assert_eq!(r.status, 200, "{}", r.body);
    let task = r.returnval().expect("task moref");
    let info = retrieve_properties(
        &sim,
        "Task",
        &task,
        &["info.state", "info.error", "info.entity"],
    );
    assert_eq!(info["info.state"].text, "error");
    let fault = info["info.error"].child("fault").expect("fault");
    assert_eq!(fault.xsi_type(), Some("InvalidPowerState"));
    assert_eq!(info["info.entity"].text, "vm-9");
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().power_state,
        "poweredOn"
    );

    // The rule is used up: the next call really powers the VM off.
    let r = soap_post(&sim, Some(&session), &power_off("vm-9"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().power_state,
        "poweredOff"
    );

    // Invalid rules are refused.
    let err = sim
        .try_inject_fault("PowerOnVM_Task=NoSuchFault")
        .unwrap_err();
    assert!(err.contains("400"), "{err}");

    // Hidden helper calls neither hit the rules nor count.
    sim.inject_fault("RetrievePropertiesEx=SystemError");
    assert_eq!(list_vms(&sim).len(), 2);
    let r = soap_post(
        &sim,
        Some(&session),
        r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">ha-property-collector</_this><specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet></propSet><objectSet><obj type="VirtualMachine">vm-9</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#,
    );
    assert_eq!(r.fault().as_deref(), Some("SystemError"));

    let stats = sim.stats();
    assert_eq!(stats["methods"]["Login"], 1);
    assert_eq!(stats["methods"]["CloneVM_Task"], 1);
    assert_eq!(stats["methods"]["PowerOffVM_Task"], 2);
    assert_eq!(stats["methods"]["RetrievePropertiesEx"], 1);
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["injected"], 3);

    // Cleared rules: the simulator's own CloneVM_Task answers again.
    sim.clear_faults();
    let r = soap_post(&sim, Some(&session), clone);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(find_vm(&sim, "copy").is_some());
}

#[test]
fn simulator_panics_become_system_error_without_ghost_vms() {
    let sim = Simulator::builder().tls(false).vms(3).start();
    assert!(sim.url.starts_with("http://127.0.0.1:"), "{}", sim.url);
    assert!(sim.thumbprint.is_empty());
    assert!(sim.ca_file.is_none());

    let vms = list_vms(&sim);
    let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bench-0000",
            "bench-0001",
            "bench-0002",
            "ha-host_VM0",
            "ha-host_VM1"
        ]
    );
    assert!(vms[..3].iter().all(|v| v.power_state == "poweredOff"
        && v.disk_capacities == [1024 * 1024]
        && v.nic_networks == ["VM Network"]));

    // An unknown datastore makes the simulator's CreateVM_Task panic.
    let session = soap_login(&sim, &sim.user, &sim.password).expect("login");
    let create = r#"<CreateVM_Task xmlns="urn:vim25"><_this type="Folder">ha-folder-vm</_this><config><name>ghost</name><files><vmPathName>[nope]</vmPathName></files></config><pool type="ResourcePool">ha-root-pool</pool></CreateVM_Task>"#;
    let r = soap_post(&sim, Some(&session), create);
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.fault().as_deref(), Some("SystemError"));
    assert_eq!(list_vms(&sim).len(), 5, "ghost VM left behind");
    assert_eq!(sim.stats()["panics"], 1);

    // The simulator keeps working.
    let r = soap_post(&sim, Some(&session), CURRENT_TIME);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn session_expiry_and_delays() {
    let sim = Simulator::builder()
        .session_idle(Duration::from_millis(500))
        .method_delay("CurrentTime", 300)
        .start();
    let session = soap_login(&sim, &sim.user, &sim.password).expect("login");

    let t = Instant::now();
    let r = soap_post(&sim, Some(&session), CURRENT_TIME);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    std::thread::sleep(Duration::from_millis(1500));
    let r = soap_post(&sim, Some(&session), CURRENT_TIME);
    assert_eq!(r.fault().as_deref(), Some("NotAuthenticated"), "{}", r.body);

    // soap_query logs in on its own.
    assert!(soap_query(&sim, CURRENT_TIME).contains("CurrentTimeResponse"));
}

#[test]
#[should_panic(expected = "is not a vim25 MethodFault type")]
fn a_launcher_that_cannot_start_fails_the_test_with_its_stderr() {
    Simulator::builder().fault("Login=NoSuchFault").start();
}

// ------------------------------------------------------------------------------------------------
// VMware Tools emulation (-guest-tools)

/// `guestinfo.metadata` as ceso writes it: JSON with a netplan v2 network matched by MAC.
fn metadata(instance_id: &str, hostname: &str, ethernets: serde_json::Value) -> String {
    serde_json::json!({
        "instance-id": instance_id,
        "local-hostname": hostname,
        "network": {"version": 2, "ethernets": ethernets},
    })
    .to_string()
}

fn static_nic(mac: &str, address: &str) -> serde_json::Value {
    serde_json::json!({
        "match": {"macaddress": mac},
        "addresses": [address],
        "gateway4": "192.168.1.1",
        "nameservers": {"addresses": ["192.168.1.1"]},
    })
}

fn gzip_base64(text: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"))
}

/// Writes metadata onto the VM with ReconfigVM_Task, gzip+base64 encoded like ceso does.
fn put_metadata(sim: &Simulator, vm: &str, json: &str) {
    set_extra_config(
        sim,
        vm,
        &[
            ("guestinfo.metadata", &gzip_base64(json)),
            ("guestinfo.metadata.encoding", "gzip+base64"),
        ],
    );
}

fn call_ok(sim: &Simulator, vm: &str, method: &str) {
    let r = vm_call(sim, vm, method);
    if method.ends_with("_Task") {
        assert_eq!(
            task_outcome(sim, &r),
            ("success".to_string(), None),
            "{method}"
        );
    } else {
        assert_eq!(r.status, 200, "{method}: {}", r.body);
    }
}

const GUEST_WAIT: Duration = Duration::from_secs(3);

fn tools_up(vm: &VmFacts) -> bool {
    vm.tools_running && vm.power_state == "poweredOn"
}

#[test]
fn the_guest_reports_the_static_address_of_its_gzip_base64_metadata_after_power_on() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(1000)
        .vms(1)
        .start();
    let vm = find_vm(&sim, "bench-0000").expect("bench VM");
    let mac = vm.nic_macs[0].clone();
    assert!(!vm.tools_running);
    assert_eq!(vm.guest_ip, None);
    assert_eq!(vm.firmware.as_deref(), Some("bios"));

    let json = metadata(
        "i-web-01",
        "web-01",
        serde_json::json!({"nic0": static_nic(&mac.to_ascii_uppercase(), "192.168.1.100/24")}),
    );
    put_metadata(&sim, "bench-0000", &json);
    let extra = sim.extra_config("bench-0000");
    assert_eq!(extra["guestinfo.metadata.encoding"], "gzip+base64");
    assert_eq!(extra["guestinfo.metadata"], gzip_base64(&json));

    let t = Instant::now();
    call_ok(&sim, "bench-0000", "PowerOnVM_Task");
    let booting = find_vm(&sim, "bench-0000").unwrap();
    assert_eq!(booting.power_state, "poweredOn");
    if t.elapsed() < Duration::from_millis(900) {
        assert!(!booting.tools_running, "Tools up before -guest-delay");
        assert_eq!(booting.guest_ip, None);
    }

    let up = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(up.guest_ip.as_deref(), Some("192.168.1.100"));
    assert_eq!(up.guest_host_name.as_deref(), Some("web-01"));
    assert_eq!(
        up.guest_nic_ips,
        [(mac.clone(), vec!["192.168.1.100".to_string()])].into()
    );
    let summary = retrieve_properties(
        &sim,
        "VirtualMachine",
        &up.moref,
        &[
            "guest.toolsStatus",
            "guest.guestState",
            "summary.guest.ipAddress",
            "summary.guest.hostName",
            "summary.guest.toolsRunningStatus",
            "guestHeartbeatStatus",
        ],
    );
    let text = |p: &str| summary.get(p).map(|v| v.text.as_str());
    assert_eq!(text("guest.toolsStatus"), Some("toolsOk"));
    assert_eq!(text("guest.guestState"), Some("running"));
    assert_eq!(text("summary.guest.ipAddress"), Some("192.168.1.100"));
    assert_eq!(text("summary.guest.hostName"), Some("web-01"));
    assert_eq!(
        text("summary.guest.toolsRunningStatus"),
        Some("guestToolsRunning")
    );
    assert_eq!(text("guestHeartbeatStatus"), Some("green"));

    // Power-off stops Tools and clears the addresses.
    call_ok(&sim, "bench-0000", "PowerOffVM_Task");
    let off = find_vm(&sim, "bench-0000").unwrap();
    assert!(!off.tools_running);
    assert_eq!((off.guest_ip, off.guest_host_name), (None, None));
    assert_eq!(off.guest_nic_ips, [(mac, vec![])].into());
}

#[test]
fn wait_for_updates_sees_the_guest_address_arrive() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(500)
        .vms(1)
        .start();
    let vm = find_vm(&sim, "bench-0000").unwrap();
    let session = soap_login(&sim, &sim.user, &sim.password).expect("login");
    let filter = format!(
        r#"<CreateFilter xmlns="urn:vim25"><_this type="PropertyCollector">ha-property-collector</_this><spec><propSet><type>VirtualMachine</type><pathSet>guest.ipAddress</pathSet><pathSet>guest.toolsRunningStatus</pathSet></propSet><objectSet><obj type="VirtualMachine">{}</obj></objectSet></spec><partialUpdates>false</partialUpdates></CreateFilter>"#,
        vm.moref
    );
    let r = soap_post(&sim, Some(&session), &filter);
    assert_eq!(r.status, 200, "{}", r.body);
    let wait = |version: &str| {
        soap_post(
            &sim,
            Some(&session),
            &format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25"><_this type="PropertyCollector">ha-property-collector</_this><version>{version}</version><options><maxWaitSeconds>5</maxWaitSeconds></options></WaitForUpdatesEx>"#
            ),
        )
    };
    let first = wait("");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("guestToolsNotRunning"),
        "{}",
        first.body
    );

    call_ok(&sim, "bench-0000", "PowerOnVM_Task");
    let update = wait("-");
    assert_eq!(update.status, 200, "{}", update.body);
    let changes: Vec<(String, String)> = update
        .xml()
        .descendants("changeSet")
        .into_iter()
        .map(|c| {
            (
                c.child("name").map(|n| n.text.clone()).unwrap_or_default(),
                c.child("val").map(|v| v.text.clone()).unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("guest.ipAddress".into(), "10.99.0.3".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&(
            "guest.toolsRunningStatus".into(),
            "guestToolsRunning".into()
        )),
        "{changes:?}"
    );
}

#[test]
fn nics_without_a_static_address_get_stable_dhcp_leases() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(100)
        .vms(3)
        .start();

    // VMs powered on at start run Tools at once; leases are handed out in name order.
    let vm0 = find_vm(&sim, "ha-host_VM0").unwrap();
    assert!(vm0.tools_running);
    assert_eq!(vm0.guest_ip.as_deref(), Some("10.99.0.1"));
    assert_eq!(vm0.guest_host_name.as_deref(), Some("ha-host_VM0"));
    assert_eq!(
        find_vm(&sim, "ha-host_VM1").unwrap().guest_ip.as_deref(),
        Some("10.99.0.2")
    );

    // bench-0000: no metadata at all. bench-0001: dhcp4 in base64 metadata.
    // bench-0002: a network that names only other MACs: its NIC is left unconfigured.
    let mac1 = find_vm(&sim, "bench-0001").unwrap().nic_macs[0].clone();
    use base64::Engine;
    let dhcp = metadata(
        "i-1",
        "dhcp-vm",
        serde_json::json!({"id0": {"match": {"macaddress": mac1}, "dhcp4": true}}),
    );
    set_extra_config(
        &sim,
        "bench-0001",
        &[
            (
                "guestinfo.metadata",
                &base64::engine::general_purpose::STANDARD.encode(&dhcp),
            ),
            ("guestinfo.metadata.encoding", "base64"),
        ],
    );
    let other = metadata(
        "i-2",
        "other",
        serde_json::json!({"id0": static_nic("00:50:56:aa:bb:cc", "192.168.1.9/24")}),
    );
    put_metadata(&sim, "bench-0002", &other);

    for name in ["bench-0000", "bench-0001", "bench-0002"] {
        call_ok(&sim, name, "PowerOnVM_Task");
    }
    let b0 = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    let b1 = wait_for_vm(&sim, "bench-0001", GUEST_WAIT, tools_up);
    let b2 = wait_for_vm(&sim, "bench-0002", GUEST_WAIT, tools_up);
    let ip0 = b0.guest_ip.clone().expect("bench-0000 lease");
    let ip1 = b1.guest_ip.clone().expect("bench-0001 lease");
    assert!(ip0.starts_with("10.99.0.") && ip1.starts_with("10.99.0."));
    assert_ne!(ip0, ip1);
    assert_eq!(b1.guest_host_name.as_deref(), Some("dhcp-vm"));
    assert_eq!(b2.guest_ip, None, "an unconfigured NIC has no address");
    assert_eq!(b2.guest_host_name.as_deref(), Some("other"));

    // The same address after a power cycle.
    call_ok(&sim, "bench-0000", "PowerOffVM_Task");
    call_ok(&sim, "bench-0000", "PowerOnVM_Task");
    let again = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    assert_eq!(again.guest_ip, Some(ip0));
}

#[test]
fn a_changed_network_applies_only_with_a_new_instance_id() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(100)
        .vms(1)
        .start();
    let mac = find_vm(&sim, "bench-0000").unwrap().nic_macs[0].clone();
    let with = |id: &str, host: &str, address: &str| {
        metadata(
            id,
            host,
            serde_json::json!({
                "other": static_nic("00:50:56:00:00:01", "192.168.1.50/24"),
                "nic0": static_nic(&mac, address),
            }),
        )
    };
    put_metadata(&sim, "bench-0000", &with("i-1", "a", "192.168.1.100/24"));
    call_ok(&sim, "bench-0000", "PowerOnVM_Task");
    let vm = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    assert_eq!(
        vm.guest_ip.as_deref(),
        Some("192.168.1.100"),
        "matched by MAC"
    );

    // Same instance-id: cloud-init keeps the network it applied, but renames the host.
    put_metadata(&sim, "bench-0000", &with("i-1", "b", "192.168.1.101/24"));
    call_ok(&sim, "bench-0000", "RebootGuest");
    let vm = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, |vm| {
        tools_up(vm) && vm.guest_host_name.as_deref() == Some("b")
    });
    assert_eq!(vm.guest_ip.as_deref(), Some("192.168.1.100"));

    // A new instance-id: the new network is applied on the next boot.
    put_metadata(&sim, "bench-0000", &with("i-2", "b", "192.168.1.101/24"));
    call_ok(&sim, "bench-0000", "ResetVM_Task");
    let vm = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    assert_eq!(vm.guest_ip.as_deref(), Some("192.168.1.101"));
}

#[test]
fn set_guest_overrides_what_the_guest_reports() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(100)
        .start();
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().guest_ip.as_deref(),
        Some("10.99.0.1")
    );

    // Applied at once to a running guest.
    sim.set_guest("ha-host_VM0", GuestOverride::Ip("192.0.2.7".into()));
    let vm = find_vm(&sim, "ha-host_VM0").unwrap();
    assert!(vm.tools_running);
    assert_eq!(vm.guest_ip.as_deref(), Some("192.0.2.7"));

    sim.set_guest("ha-host_VM0", GuestOverride::NoIp);
    let vm = find_vm(&sim, "ha-host_VM0").unwrap();
    assert!(vm.tools_running);
    assert_eq!(vm.guest_ip, None);
    assert_eq!(vm.guest_nic_ips.values().flatten().count(), 0);

    // Tools off: stopped now, and not started by a power cycle.
    sim.set_guest("ha-host_VM1", GuestOverride::ToolsOff);
    assert!(!find_vm(&sim, "ha-host_VM1").unwrap().tools_running);
    call_ok(&sim, "ha-host_VM1", "PowerOffVM_Task");
    call_ok(&sim, "ha-host_VM1", "PowerOnVM_Task");
    std::thread::sleep(Duration::from_millis(500));
    let vm1 = find_vm(&sim, "ha-host_VM1").unwrap();
    assert_eq!(vm1.power_state, "poweredOn");
    assert!(!vm1.tools_running);
    assert_eq!(vm1.guest_ip, None);

    // Cleared: the running guest reports its lease again; Tools start at the next power-on.
    sim.clear_guest_overrides();
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().guest_ip.as_deref(),
        Some("10.99.0.1")
    );
    assert!(!find_vm(&sim, "ha-host_VM1").unwrap().tools_running);
    call_ok(&sim, "ha-host_VM1", "ResetVM_Task");
    let vm1 = wait_for_vm(&sim, "ha-host_VM1", GUEST_WAIT, tools_up);
    assert_eq!(vm1.guest_ip.as_deref(), Some("10.99.0.2"));

    // An override set before power-on applies at power-on.
    sim.set_guest("ha-host_VM1", GuestOverride::Ip("192.0.2.8/24".into()));
    call_ok(&sim, "ha-host_VM1", "SuspendVM_Task");
    assert!(!find_vm(&sim, "ha-host_VM1").unwrap().tools_running);
    call_ok(&sim, "ha-host_VM1", "PowerOnVM_Task");
    let vm1 = wait_for_vm(&sim, "ha-host_VM1", GUEST_WAIT, tools_up);
    assert_eq!(vm1.guest_ip.as_deref(), Some("192.0.2.8"));
}

#[test]
fn guest_shutdown_and_reboot_need_running_tools() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(600)
        .vms(1)
        .start();

    let r = vm_call(&sim, "bench-0000", "ShutdownGuest");
    assert_eq!(
        r.fault().as_deref(),
        Some("InvalidPowerState"),
        "{}",
        r.body
    );

    sim.set_guest("bench-0000", GuestOverride::ToolsOff);
    call_ok(&sim, "bench-0000", "PowerOnVM_Task");
    for method in ["ShutdownGuest", "RebootGuest"] {
        let r = vm_call(&sim, "bench-0000", method);
        assert_eq!(r.status, 500, "{method}: {}", r.body);
        assert_eq!(r.fault().as_deref(), Some("ToolsUnavailable"), "{method}");
    }
    assert_eq!(
        find_vm(&sim, "bench-0000").unwrap().power_state,
        "poweredOn"
    );

    // Without a session, NotAuthenticated as for any method.
    let moref = find_vm(&sim, "bench-0000").unwrap().moref;
    let r = soap_post(
        &sim,
        None,
        &format!(
            r#"<ShutdownGuest xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this></ShutdownGuest>"#
        ),
    );
    assert_eq!(r.fault().as_deref(), Some("NotAuthenticated"), "{}", r.body);

    sim.clear_guest_overrides();
    call_ok(&sim, "bench-0000", "ResetVM_Task");
    let up = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);

    // RebootGuest: Tools go down at once and come back with the same address.
    let t = Instant::now();
    call_ok(&sim, "bench-0000", "RebootGuest");
    let rebooting = find_vm(&sim, "bench-0000").unwrap();
    if t.elapsed() < Duration::from_millis(500) {
        assert!(
            !rebooting.tools_running,
            "Tools up again before -guest-delay"
        );
        assert_eq!(rebooting.guest_ip, None);
    }
    let back = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, tools_up);
    assert_eq!(back.guest_ip, up.guest_ip);

    // ShutdownGuest returns at once; the guest powers off after the delay.
    call_ok(&sim, "bench-0000", "ShutdownGuest");
    assert!(!find_vm(&sim, "bench-0000").unwrap().tools_running);
    let off = wait_for_vm(&sim, "bench-0000", GUEST_WAIT, |vm| {
        vm.power_state == "poweredOff"
    });
    assert_eq!(off.guest_ip, None);
}

#[test]
fn without_guest_tools_the_simulator_keeps_its_own_guest_behaviour() {
    let sim = Simulator::start();
    let vm = find_vm(&sim, "ha-host_VM0").unwrap();
    assert!(!vm.tools_running);
    assert_eq!(vm.guest_ip, None);

    let r = vm_call(&sim, "ha-host_VM0", "RebootGuest");
    assert_eq!(r.fault().as_deref(), Some("MethodNotFound"), "{}", r.body);
    // The plain simulator powers off at once, Tools or not.
    call_ok(&sim, "ha-host_VM0", "ShutdownGuest");
    assert_eq!(
        find_vm(&sim, "ha-host_VM0").unwrap().power_state,
        "poweredOff"
    );
}

#[test]
#[should_panic(expected = "the launcher runs without -guest-tools")]
fn set_guest_without_guest_tools_is_refused() {
    Simulator::start().set_guest("ha-host_VM0", GuestOverride::NoIp);
}
