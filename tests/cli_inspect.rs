//! End to end: `ceso vm list`, `ceso vm info` and `ceso ip list` (the real binary) against the
//! ESXi simulator with emulated VMware Tools. What ceso shows is checked against what the host
//! holds, read back independently over SOAP.

mod support;

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use serde_json::Value;
use support::inventory::Inventory;
use support::{GuestOverride, Simulator};

/// A public key (generated for these tests) and what `ssh-keygen -l` prints for it.
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGwSQXvqKwdxxT9ObEiFqTWFpQ5ezQHq7Xx2cAScfmE5 ops@example";
const PUBLIC_KEY_FINGERPRINT: &str = "SHA256:1DdYNlXLbVP5MtMpAM0nPdHX9nOg6Og+Z3xtEc5VAZQ";
const PUBLIC_KEY_BLOB: &str =
    "AAAAC3NzaC1lZDI1NTE5AAAAIGwSQXvqKwdxxT9ObEiFqTWFpQ5ezQHq7Xx2cAScfmE5";
/// The start of a private key's body: written into guestinfo, never to be printed.
const PRIVATE_KEY_BODY: &str =
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";

/// The pool every test uses: ten addresses, one of them reserved, so nine for VMs.
const POOL: &str = "---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: lan }
spec:
  cidr: 192.168.1.0/24
  gateway: 192.168.1.1
  nameservers: [ 192.168.1.53 ]
  searchDomains: [ lab.example ]
  ranges: [ { start: 192.168.1.100, end: 192.168.1.109 } ]
  reservations: [ 192.168.1.105 ]
";

/// A VM manifest on host `esxi-01` with one adapter configured by `network` (YAML flow
/// mapping, e.g. `{ ip: auto, pool: lan }`) and `extra` spec lines.
fn vm(name: &str, power: &str, network: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 2\n  memory: 1GiB\n  disks: [ {{ size: 1GiB }} ]\n  power: {power}\n  guestId: ubuntu64Guest\n  networks: [ {network} ]\n{extra}"
    )
}

/// The line of a table whose first column is `name`, split into columns (two or more spaces
/// apart).
#[track_caller]
fn table_line(table: &str, name: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|line| line.split("  ").next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|column| !column.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A guestinfo value as cloud-init decodes it (`gzip+base64`).
fn decode_guestinfo(extra_config: &BTreeMap<String, String>, key: &str) -> String {
    assert_eq!(
        extra_config
            .get(&format!("{key}.encoding"))
            .map(String::as_str),
        Some("gzip+base64")
    );
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(&extra_config[key])
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn vm_list_shows_unmanaged_managed_and_missing_vms_with_their_addresses() {
    let sim = Simulator::builder().guest_tools(true).start();
    let manifests = POOL.to_owned()
        + &vm("web-01", "on", "{ ip: 192.168.1.104/24 }", "")
        + &vm("db-01", "off", "{ ip: auto, pool: lan }", "");
    let inv = Inventory::new(&sim, &manifests);
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    // Declared after the apply: not on the host.
    inv.set_vms(&(manifests + &vm("cache-01", "on", "{ ip: 192.168.1.108/24 }", "")));

    let list = inv.ceso(&sim, &["vm", "list", "--inventory", "DIR"]);
    list.expect(0);
    let table = list.stdout();
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "HOST", "POWER", "CPU", "MEMORY", "IP", "MANAGED"]
    );
    // Sorted by host, then name.
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cache-01", "db-01", "ha-host_VM0", "ha-host_VM1", "web-01"]
    );
    // The guest of the running VM reports the address cloud-init gave it; the powered-off one
    // reports nothing, so the address ceso recorded is shown, marked as such.
    assert_eq!(
        table_line(&table, "web-01"),
        [
            "web-01",
            "esxi-01",
            "on",
            "2",
            "1GiB",
            "192.168.1.104",
            "yes"
        ]
    );
    assert_eq!(
        table_line(&table, "db-01"),
        [
            "db-01",
            "esxi-01",
            "off",
            "2",
            "1GiB",
            "192.168.1.100 (declared)",
            "yes"
        ]
    );
    assert_eq!(
        table_line(&table, "cache-01"),
        [
            "cache-01",
            "esxi-01",
            "-",
            "2",
            "1GiB",
            "192.168.1.108 (declared)",
            "missing"
        ]
    );
    // The simulator's own VMs: unmanaged, with the DHCP lease their emulated guest reports.
    let vm0 = table_line(&table, "ha-host_VM0");
    assert_eq!(vm0[..5], ["ha-host_VM0", "esxi-01", "on", "1", "32MiB"]);
    assert_eq!(vm0[6], "no");
    let facts = support::find_vm(&sim, "ha-host_VM0").unwrap();
    assert_eq!(Some(vm0[5].as_str()), facts.guest_ip.as_deref());
    assert_eq!(table_line(&table, "ha-host_VM1")[6], "no");
}

#[test]
fn vm_list_json_describes_every_vm() {
    let sim = Simulator::builder().guest_tools(true).start();
    let inv = Inventory::new(
        &sim,
        &(POOL.to_owned() + &vm("web-01", "on", "{ ip: 192.168.1.104/24 }", "")),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);

    let list = inv.ceso(&sim, &["vm", "list", "--inventory", "DIR", "--json"]);
    list.expect(0);
    let json = list.json();
    let vms = json["vms"].as_array().expect("a list of VMs");
    let by_name = |name: &str| {
        vms.iter()
            .find(|vm| vm["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {json:#}"))
    };
    let web = by_name("web-01");
    let facts = support::find_vm(&sim, "web-01").unwrap();
    assert_eq!(web["host"], "esxi-01");
    assert_eq!(web["moref"], facts.moref.as_str());
    assert_eq!(web["management"], "managed");
    assert_eq!(web["cesoName"], "web-01");
    assert_eq!(web["declared"], true);
    assert_eq!(web["power"], "on");
    assert_eq!(web["cpu"], 2);
    assert_eq!(web["memoryMib"], 1024);
    assert_eq!(web["ip"], "192.168.1.104");
    assert_eq!(web["ipSource"], "guest");
    assert_eq!(web["guestIps"][0], "192.168.1.104");
    let vm0 = by_name("ha-host_VM0");
    assert_eq!(vm0["management"], "unmanaged");
    assert_eq!(vm0["cesoName"], Value::Null);
    assert_eq!(vm0["memoryMib"], 32);

    // --host narrows the list; an unknown host is refused with the known ones.
    let only = inv.ceso(
        &sim,
        &[
            "vm",
            "list",
            "--inventory",
            "DIR",
            "--host",
            "esxi-01",
            "--json",
        ],
    );
    only.expect(0);
    assert_eq!(only.json()["vms"].as_array().unwrap().len(), vms.len());
    let unknown = inv.ceso(
        &sim,
        &["vm", "list", "--inventory", "DIR", "--host", "esxi-9"],
    );
    unknown.expect(1);
    assert!(
        unknown.stderr().contains("no host named esxi-9") && unknown.stderr().contains("esxi-01"),
        "{}",
        unknown.stderr()
    );
}

#[test]
fn vm_info_decodes_the_cloud_init_guestinfo_and_shows_no_private_material() {
    let sim = Simulator::builder().guest_tools(true).start();
    let cloud_init = format!(
        "  cloudInit:\n    hostname: web-01.lab.example\n    sshAuthorizedKeys: [ \"{PUBLIC_KEY}\" ]\n    packages: [ nginx ]\n    userData:\n      runcmd: [ [ systemctl, enable, --now, nginx ] ]\n"
    );
    let inv = Inventory::new(
        &sim,
        &(POOL.to_owned() + &vm("web-01", "on", "{ ip: auto, pool: lan }", &cloud_init)),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    // What the host holds, decoded independently of ceso.
    let extra_config = sim.extra_config("web-01");
    let metadata: Value =
        serde_json::from_str(&decode_guestinfo(&extra_config, "guestinfo.metadata")).unwrap();
    let instance_id = metadata["instance-id"].as_str().unwrap().to_owned();
    assert!(instance_id.starts_with("web-01-"), "{instance_id}");

    let info = inv.ceso(&sim, &["vm", "info", "web-01", "--inventory", "DIR"]);
    info.expect(0);
    let text = info.stdout();
    for expected in [
        "VM web-01 on host esxi-01",
        "managed:     yes, as web-01",
        "cpu:         2",
        "memory:      1GiB",
        "guest id:    ubuntu64Guest",
        "power:       on",
        "[LocalDS_0] web-01/",
        "VM Network",
        &format!("instance-id: {instance_id}"),
        "hostname:    web-01.lab.example",
        &format!("ssh-ed25519 ops@example ({PUBLIC_KEY_FINGERPRINT})"),
        "- 192.168.1.100/24",
        "via: 192.168.1.1",
        "nic0:        192.168.1.100/24 from pool lan, gateway 192.168.1.1, DNS 192.168.1.53, search lab.example",
        "guest IPs:   192.168.1.100",
        "user-data:   (secrets redacted)",
        "- nginx",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(
        !text.contains(PUBLIC_KEY_BLOB),
        "whole keys are not printed:\n{text}"
    );
    assert!(!text.contains(&sim.password), "{text}");

    let json_run = inv.ceso(
        &sim,
        &["vm", "info", "web-01", "--inventory", "DIR", "--json"],
    );
    json_run.expect(0);
    let json = json_run.json();
    assert_eq!(json["cloudInit"]["instanceId"], instance_id.as_str());
    assert_eq!(json["cloudInit"]["hostname"], "web-01.lab.example");
    assert_eq!(
        json["cloudInit"]["publicKeys"][0]["fingerprint"],
        PUBLIC_KEY_FINGERPRINT
    );
    assert_eq!(
        json["cloudInit"]["network"]["ethernets"]["nic0"]["addresses"][0],
        "192.168.1.100/24"
    );
    assert_eq!(
        json["applied"]["interfaces"][0]["address"],
        "192.168.1.100/24"
    );
    assert_eq!(json["applied"]["instanceId"], instance_id.as_str());
    assert_eq!(json["nics"][0]["portGroup"], "VM Network");
    assert!(
        !json_run.stdout().contains(PUBLIC_KEY_BLOB),
        "{}",
        json_run.stdout()
    );

    // An unmanaged VM by its host name: no cloud-init, nothing recorded.
    let vm0 = inv.ceso(&sim, &["vm", "info", "ha-host_VM0", "--inventory", "DIR"]);
    vm0.expect(0);
    assert!(vm0.stdout().contains("managed:     no"), "{}", vm0.stdout());
    assert!(
        vm0.stdout()
            .contains("ceso never applied settings to this VM"),
        "{}",
        vm0.stdout()
    );
}

/// Writes plain-text (unencoded) guestinfo into a VM, as something other than ceso might.
fn write_guestinfo(sim: &Simulator, vm: &str, entries: &[(&str, &str)]) {
    let moref = support::find_vm(sim, vm).unwrap().moref;
    let options: String = entries
        .iter()
        .map(|(key, value)| {
            format!(
                "<extraConfig><key>{}</key><value xsi:type=\"xsd:string\">{}</value></extraConfig>",
                support::xml_escape(key),
                support::xml_escape(value)
            )
        })
        .collect();
    let response = support::soap_query_response(
        sim,
        &format!(
            r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><spec>{options}</spec></ReconfigVM_Task>"#
        ),
    );
    assert_eq!(response.status, 200, "ReconfigVM_Task: {}", response.body);
}

#[test]
fn vm_info_redacts_secrets_found_in_guestinfo_written_outside_ceso() {
    let sim = Simulator::start();
    let inv = Inventory::new(&sim, POOL);
    let user_data = "#cloud-config\nusers:\n  - name: admin\n    passwd: $6$rounds=4096$hunter2hash\nchpasswd:\n  list: |\n    root:hunter2-plain\nruncmd:\n  - [ touch, /var/tmp/visible-command ]\n";
    write_guestinfo(&sim, "ha-host_VM0", &[("guestinfo.userdata", user_data)]);
    let private_key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----"
    );
    let metadata = serde_json::json!({
        "instance-id": "vm1-by-hand",
        "local-hostname": "vm1",
        "public-keys-data": format!("{PUBLIC_KEY}\n{private_key}"),
    });
    let key_file = format!(
        "#cloud-config\nwrite_files:\n  - path: /root/.ssh/id_ed25519\n    content: |\n      {}\n",
        private_key.replace('\n', "\n      ")
    );
    write_guestinfo(
        &sim,
        "ha-host_VM1",
        &[
            ("guestinfo.metadata", &metadata.to_string()),
            ("guestinfo.userdata", &key_file),
        ],
    );

    let vm0 = inv.ceso(&sim, &["vm", "info", "ha-host_VM0", "--inventory", "DIR"]);
    vm0.expect(0);
    let text = vm0.stdout();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("passwd: (redacted)"), "{text}");
    assert!(text.contains("/var/tmp/visible-command"), "{text}");

    for args in [
        &["vm", "info", "ha-host_VM1", "--inventory", "DIR"][..],
        &["vm", "info", "ha-host_VM1", "--inventory", "DIR", "--json"][..],
    ] {
        let vm1 = inv.ceso(&sim, args);
        vm1.expect(0);
        let text = vm1.stdout();
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(PRIVATE_KEY_BODY), "{text}");
        assert!(text.contains("vm1-by-hand"), "{text}");
        assert!(text.contains(PUBLIC_KEY_FINGERPRINT), "{text}");
    }
}

#[test]
fn vm_info_of_an_unknown_vm_fails_and_names_close_ones() {
    let sim = Simulator::start();
    let inv = Inventory::new(&sim, &(POOL.to_owned() + &vm("web-01", "off", "{}", "")));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);

    let typo = inv.ceso(&sim, &["vm", "info", "web-1", "--inventory", "DIR"]);
    typo.expect(1);
    assert!(typo.stdout().is_empty(), "{}", typo.stdout());
    assert!(
        typo.stderr()
            .contains("no VM named web-1 on host(s) esxi-01"),
        "{}",
        typo.stderr()
    );
    assert!(
        typo.stderr().contains("did you mean web-01?"),
        "{}",
        typo.stderr()
    );

    // Declared but not created yet: said so, with what to do.
    inv.set_vms(
        &(POOL.to_owned() + &vm("web-01", "off", "{}", "") + &vm("web-02", "off", "{}", "")),
    );
    let missing = inv.ceso(&sim, &["vm", "info", "web-02", "--inventory", "DIR"]);
    missing.expect(1);
    assert!(
        missing
            .stderr()
            .contains("VM web-02 is declared in the manifests"),
        "{}",
        missing.stderr()
    );
}

#[test]
fn ip_list_shows_each_pool_with_its_counts_and_every_address_in_use() {
    let sim = Simulator::builder().guest_tools(true).start();
    // A VM ceso does not manage uses the lowest address of the range.
    sim.set_guest("ha-host_VM0", GuestOverride::Ip("192.168.1.100".into()));
    let inv = Inventory::new(
        &sim,
        &(POOL.to_owned()
            + &vm("app-01", "off", "{ ip: auto, pool: lan }", "")
            + &vm("app-02", "off", "{ ip: 192.168.1.104/24 }", "")),
    );

    // Before the apply the addresses are planned, and the automatic one avoids the address the
    // unmanaged VM's guest reports.
    let before = inv.ceso(&sim, &["ip", "list", "--inventory", "DIR"]);
    before.expect(0);
    let text = before.stdout();
    assert_eq!(
        table_line(&text, "lan"),
        ["lan", "192.168.1.0/24", "192.168.1.1", "9", "3", "6"]
    );
    let entries: Vec<Vec<String>> = text
        .lines()
        .skip_while(|line| !line.starts_with("POOL  ADDRESS"))
        .skip(1)
        .map(|line| table_line(line, "lan"))
        .collect();
    assert_eq!(
        entries,
        [
            [
                "lan",
                "192.168.1.100",
                "ha-host_VM0",
                "esxi-01",
                "-",
                "unmanaged"
            ],
            ["lan", "192.168.1.101", "app-01", "esxi-01", "0", "planned"],
            ["lan", "192.168.1.104", "app-02", "esxi-01", "0", "planned"],
            ["lan", "192.168.1.105", "-", "-", "-", "reserved"],
        ]
    );

    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let after = inv.ceso(&sim, &["ip", "list", "--inventory", "DIR", "--json"]);
    after.expect(0);
    let json = after.json();
    assert_eq!(json["problems"], serde_json::json!([]));
    let pool = &json["pools"][0];
    assert_eq!(
        (&pool["name"], &pool["network"], &pool["gateway"]),
        (
            &"lan".into(),
            &"192.168.1.0/24".into(),
            &"192.168.1.1".into()
        )
    );
    assert_eq!(
        (&pool["size"], &pool["used"], &pool["free"]),
        (&9.into(), &3.into(), &6.into())
    );
    let states: Vec<(&str, &str)> = pool["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["address"].as_str().unwrap(),
                entry["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("192.168.1.100", "unmanaged"),
            ("192.168.1.101", "allocated"),
            ("192.168.1.104", "allocated"),
            ("192.168.1.105", "reserved"),
        ]
    );
    assert_eq!(pool["addresses"][1]["vm"], "app-01");
    assert_eq!(pool["addresses"][3]["vm"], Value::Null);
}

#[test]
fn ip_list_warns_about_addresses_it_cannot_allocate_and_exits_1() {
    let sim = Simulator::start();
    let tiny_pool = POOL.replace("end: 192.168.1.109", "end: 192.168.1.100");
    let inv = Inventory::new(
        &sim,
        &(tiny_pool
            + &vm("app-01", "off", "{ ip: auto, pool: lan }", "")
            + &vm("app-02", "off", "{ ip: auto, pool: lan }", "")),
    );
    let list = inv.ceso(&sim, &["ip", "list", "--inventory", "DIR"]);
    list.expect(1);
    assert_eq!(
        table_line(&list.stdout(), "lan"),
        ["lan", "192.168.1.0/24", "192.168.1.1", "1", "1", "0"]
    );
    let stderr = list.stderr();
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("VirtualMachine/app-02: spec.networks[0].ip: pool lan is exhausted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("vms.yaml:"),
        "the warning names the manifest: {stderr}"
    );
    assert!(stderr.contains("1 address problem(s)"), "{stderr}");

    let json = inv.ceso(&sim, &["ip", "list", "--inventory", "DIR", "--json"]);
    json.expect(1);
    let problems = json.json()["problems"].clone();
    assert_eq!(problems[0]["resource"], "VirtualMachine/app-02");
    assert_eq!(problems[0]["field"], "spec.networks[0].ip");
}
