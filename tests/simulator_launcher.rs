//! Checks of the test infrastructure itself: the esxsim launcher and tests/support.

mod support;

use std::time::{Duration, Instant};

use support::{
    Simulator, find_vm, list_vms, retrieve_properties, soap_login, soap_post, soap_query,
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
