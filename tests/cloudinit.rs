//! cloud-init through VMware guestinfo: the pure rendering (`ceso::cloudinit`) as a
//! specification, then the rendered values fed to cloud-init's own VMware datasource (Debian's
//! cloud-init 22.4, via `support::cloudinit::consume`) to prove a guest reads them as meant.

mod support;

use std::collections::BTreeMap;

use ceso::cloudinit::{
    self, CloudInitConfig, DecodeError, DecodedGuestinfo, InterfaceConfig, UserDataError,
    UserDataInput, decode, encode, guestinfo, instance_id, metadata, read_guestinfo,
    redact_user_data, user_data,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::cloudinit::consume;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8cJm4p0y5Yx0bQyq9Jm3xqkq5f7m8Yq1bV3u0bX0aA alice@laptop";
const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk";
const MAC_0: &str = "00:50:56:AB:CD:01";
const MAC_1: &str = "00:50:56:ab:cd:02";

fn static_nic() -> InterfaceConfig {
    InterfaceConfig {
        address: Some("192.168.1.100/24".into()),
        pool: Some("lan".into()),
        gateway: Some("192.168.1.1".into()),
        nameservers: vec!["192.168.1.53".into(), "1.1.1.1".into()],
        search: vec!["example.com".into()],
    }
}

fn dhcp_nic() -> InterfaceConfig {
    InterfaceConfig::default()
}

fn macs(macs: &[&str]) -> Vec<String> {
    macs.iter().map(|mac| mac.to_string()).collect()
}

/// A VM's configuration as the planner would build it: instance-id from hostname and network,
/// user-data from `users`, `packages` and `extra`.
fn config_with(
    hostname: &str,
    interfaces: Vec<InterfaceConfig>,
    keys: &[&str],
    users: &[Value],
    packages: &[&str],
    extra: Option<Value>,
) -> CloudInitConfig {
    let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let user_data = user_data(&UserDataInput {
        hostname,
        users,
        packages: &packages,
        extra: extra.as_ref(),
    })
    .expect("valid user-data");
    CloudInitConfig {
        instance_id: instance_id("web01", hostname, &interfaces),
        hostname: hostname.into(),
        ssh_authorized_keys: keys.iter().map(|k| k.to_string()).collect(),
        interfaces,
        user_data,
    }
}

fn config(hostname: &str, interfaces: Vec<InterfaceConfig>) -> CloudInitConfig {
    config_with(hostname, interfaces, &[KEY_A], &[], &[], None)
}

fn input<'a>(
    users: &'a [Value],
    packages: &'a [String],
    extra: Option<&'a Value>,
) -> UserDataInput<'a> {
    UserDataInput {
        hostname: "web01.example.com",
        users,
        packages,
        extra,
    }
}

fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).expect("test YAML")
}

// ------------------------------------------------------------------------------------------------
// guestinfo keys and encoding

#[test]
fn guestinfo_writes_metadata_and_userdata_gzip_base64_encoded() {
    let config = config("web01", vec![static_nic()]);
    let entries = guestinfo(&config, &macs(&[MAC_0]));

    let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "guestinfo.metadata",
            "guestinfo.metadata.encoding",
            "guestinfo.userdata",
            "guestinfo.userdata.encoding"
        ]
    );
    assert_eq!(entries[cloudinit::METADATA_ENCODING_KEY], "gzip+base64");
    assert_eq!(entries[cloudinit::USERDATA_ENCODING_KEY], "gzip+base64");
    let metadata_text = decode(&entries[cloudinit::METADATA_KEY], Some("gzip+base64")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&metadata_text).unwrap(),
        metadata(&config, &macs(&[MAC_0]))
    );
    assert_eq!(
        decode(&entries[cloudinit::USERDATA_KEY], Some("gzip+base64")).unwrap(),
        config.user_data
    );
}

#[test]
fn guestinfo_is_deterministic() {
    let config = config("web01", vec![static_nic(), dhcp_nic()]);
    let macs = macs(&[MAC_0, MAC_1]);
    assert_eq!(guestinfo(&config, &macs), guestinfo(&config, &macs));
}

#[test]
fn decode_accepts_the_encodings_cloud_init_accepts() {
    let text = "#cloud-config\nhostname: web01\n";
    let base64 = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViMDEK";
    assert_eq!(decode(text, None).unwrap(), text);
    assert_eq!(decode(text, Some("")).unwrap(), text);
    assert_eq!(decode(base64, Some("base64")).unwrap(), text);
    assert_eq!(decode(base64, Some("b64")).unwrap(), text);
    assert_eq!(decode(&encode(text), Some("gzip+base64")).unwrap(), text);
    assert_eq!(decode(&encode(text), Some("gz+b64")).unwrap(), text);
    // Line-wrapped base64 (as `base64` prints it) is fine.
    assert_eq!(
        decode(
            "I2Nsb3VkLWNvbmZpZwpo\nb3N0bmFtZTogd2ViMDEK\n",
            Some("base64")
        )
        .unwrap(),
        text
    );
}

#[test]
fn decode_refuses_unknown_encodings_and_broken_values() {
    let unknown = decode("abc", Some("gzip")).unwrap_err();
    assert!(matches!(unknown, DecodeError::UnknownEncoding(ref e) if e == "gzip"));
    assert!(unknown.to_string().contains("gzip+base64"), "{unknown}");
    assert!(matches!(
        decode("not base64!", Some("base64")),
        Err(DecodeError::Base64(_))
    ));
    // Valid base64, but not gzip inside.
    assert!(matches!(
        decode("aGVsbG8=", Some("gzip+base64")),
        Err(DecodeError::Gzip(_))
    ));
    assert!(matches!(
        decode("//79", Some("base64")),
        Err(DecodeError::NotUtf8)
    ));
}

proptest! {
    #[test]
    fn encoding_round_trips_any_text(text in any::<String>()) {
        prop_assert_eq!(decode(&encode(&text), Some("gzip+base64")).unwrap(), text);
    }
}

#[test]
fn read_guestinfo_reads_back_what_guestinfo_wrote() {
    let config = config("web01", vec![static_nic()]);
    let macs = macs(&[MAC_0]);
    let mut extra_config = guestinfo(&config, &macs);
    extra_config.insert("ceso.managed".into(), "web01".into());

    assert_eq!(
        read_guestinfo(&extra_config).unwrap(),
        DecodedGuestinfo {
            metadata: Some(metadata(&config, &macs)),
            user_data: Some(config.user_data.clone()),
        }
    );
}

#[test]
fn read_guestinfo_reads_yaml_metadata_and_plain_values() {
    let extra_config = BTreeMap::from([
        (
            "guestinfo.metadata".to_string(),
            "instance-id: vm-1\nlocal-hostname: db\n".to_string(),
        ),
        ("guestinfo.userdata".into(), "#cloud-config\n".into()),
    ]);
    let decoded = read_guestinfo(&extra_config).unwrap();
    assert_eq!(
        decoded.metadata,
        Some(json!({"instance-id": "vm-1", "local-hostname": "db"}))
    );
    // Like cloud-init, trailing whitespace of a value is dropped.
    assert_eq!(decoded.user_data.as_deref(), Some("#cloud-config"));
}

#[test]
fn read_guestinfo_treats_empty_and_redacted_values_as_absent() {
    // "" is how the simulator (and ceso) remove a key; "---" is what cloud-init leaves when it
    // redacts one.
    let extra_config = BTreeMap::from([
        ("guestinfo.metadata".to_string(), "".to_string()),
        ("guestinfo.metadata.encoding".into(), "gzip+base64".into()),
        ("guestinfo.userdata".into(), "---".into()),
        ("guestinfo.userdata.encoding".into(), "".into()),
    ]);
    assert_eq!(
        read_guestinfo(&extra_config).unwrap(),
        DecodedGuestinfo {
            metadata: None,
            user_data: None
        }
    );
    assert_eq!(
        read_guestinfo(&BTreeMap::new()).unwrap(),
        DecodedGuestinfo {
            metadata: None,
            user_data: None
        }
    );
}

#[test]
fn read_guestinfo_decodes_an_encoded_network_inside_the_metadata() {
    let network = r#"{"version": 2, "ethernets": {"nic0": {"dhcp4": true}}}"#;
    let metadata_text = json!({
        "instance-id": "vm-1",
        "network": encode(network),
        "network.encoding": "gzip+base64",
    })
    .to_string();
    let extra_config = BTreeMap::from([("guestinfo.metadata".to_string(), metadata_text)]);
    assert_eq!(
        read_guestinfo(&extra_config).unwrap().metadata,
        Some(json!({
            "instance-id": "vm-1",
            "network": {"version": 2, "ethernets": {"nic0": {"dhcp4": true}}},
        }))
    );
}

#[test]
fn read_guestinfo_errors_name_the_key() {
    let extra_config = BTreeMap::from([
        ("guestinfo.userdata".to_string(), "%%%".to_string()),
        ("guestinfo.userdata.encoding".into(), "base64".into()),
    ]);
    let error = read_guestinfo(&extra_config).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("guestinfo.userdata: not valid base64"),
        "{error}"
    );

    let extra_config = BTreeMap::from([("guestinfo.metadata".to_string(), "[1, 2]".to_string())]);
    let error = read_guestinfo(&extra_config).unwrap_err();
    assert_eq!(
        error.to_string(),
        "guestinfo.metadata: must be a mapping, not a list"
    );
}

// ------------------------------------------------------------------------------------------------
// metadata

#[test]
fn metadata_matches_a_static_nic_by_its_lowercased_mac() {
    let config = config_with("web01", vec![static_nic()], &[KEY_A, KEY_B], &[], &[], None);
    assert_eq!(
        metadata(&config, &macs(&[MAC_0])),
        json!({
            "instance-id": config.instance_id,
            "local-hostname": "web01",
            "public-keys-data": format!("{KEY_A}\n{KEY_B}"),
            "network": {
                "version": 2,
                "ethernets": {
                    "nic0": {
                        "match": {"macaddress": "00:50:56:ab:cd:01"},
                        "set-name": "nic0",
                        "addresses": ["192.168.1.100/24"],
                        "routes": [{"to": "0.0.0.0/0", "via": "192.168.1.1"}],
                        "nameservers": {
                            "addresses": ["192.168.1.53", "1.1.1.1"],
                            "search": ["example.com"],
                        },
                    },
                },
            },
        })
    );
}

#[test]
fn metadata_gives_a_nic_without_address_dhcp4_and_omits_absent_parts() {
    let config = config_with("web01", vec![dhcp_nic()], &[], &[], &[], None);
    assert_eq!(
        metadata(&config, &macs(&[MAC_0])),
        json!({
            "instance-id": config.instance_id,
            "local-hostname": "web01",
            "network": {
                "version": 2,
                "ethernets": {
                    "nic0": {
                        "match": {"macaddress": "00:50:56:ab:cd:01"},
                        "set-name": "nic0",
                        "dhcp4": true,
                    },
                },
            },
        })
    );
}

#[test]
fn metadata_routes_an_ipv6_gateway_as_the_ipv6_default() {
    let nic = InterfaceConfig {
        address: Some("2001:db8::10/64".into()),
        gateway: Some("2001:db8::1".into()),
        ..InterfaceConfig::default()
    };
    let config = config("web01", vec![nic]);
    assert_eq!(
        metadata(&config, &macs(&[MAC_0]))["network"]["ethernets"]["nic0"]["routes"],
        json!([{"to": "::/0", "via": "2001:db8::1"}])
    );
}

#[test]
fn metadata_names_nics_by_adapter_position_and_leaves_out_those_without_mac() {
    let config = config("web01", vec![static_nic(), dhcp_nic(), dhcp_nic()]);

    // The second and third adapters have no MAC (the caller passes all MACs; this is the
    // documented fallback): only nic0 is configured, never an unmatched entry.
    let network = &metadata(&config, &macs(&[MAC_0]))["network"];
    let names: Vec<&String> = network["ethernets"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["nic0"]);

    // No MAC at all: no network, so cloud-init falls back to DHCP on the first NIC.
    assert!(metadata(&config, &[]).get("network").is_none());
    // MACs beyond the adapters are ignored.
    let network = &metadata(&config, &macs(&[MAC_0, MAC_1, MAC_1, MAC_1]))["network"];
    assert_eq!(network["ethernets"].as_object().unwrap().len(), 3);
    assert_eq!(
        network["ethernets"]["nic2"]["match"]["macaddress"],
        "00:50:56:ab:cd:02"
    );
}

// ------------------------------------------------------------------------------------------------
// instance-id

#[test]
fn instance_id_is_the_vm_name_and_8_hex_digits_of_a_hash() {
    let id = instance_id("web01", "web01", &[static_nic()]);
    let (vm, hash) = id.rsplit_once('-').unwrap();
    assert_eq!(vm, "web01");
    assert_eq!(hash.len(), 8);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );
    assert_eq!(id, instance_id("web01", "web01", &[static_nic()]));
}

#[test]
fn instance_id_changes_with_hostname_and_every_network_setting() {
    let base = instance_id("web01", "web01", &[static_nic()]);
    let changed = |change: fn(&mut InterfaceConfig)| {
        let mut nic = static_nic();
        change(&mut nic);
        instance_id("web01", "web01", &[nic])
    };
    assert_ne!(base, instance_id("web01", "web02", &[static_nic()]));
    assert_ne!(
        base,
        instance_id("web01", "web01", &[static_nic(), dhcp_nic()])
    );
    assert_ne!(base, instance_id("web01", "web01", &[dhcp_nic()]));
    assert_ne!(
        base,
        changed(|nic| nic.address = Some("192.168.1.101/24".into()))
    );
    assert_ne!(
        base,
        changed(|nic| nic.address = Some("192.168.1.100/25".into()))
    );
    assert_ne!(
        base,
        changed(|nic| nic.gateway = Some("192.168.1.254".into()))
    );
    assert_ne!(base, changed(|nic| nic.gateway = None));
    assert_ne!(base, changed(|nic| nic.nameservers.reverse()));
    assert_ne!(
        base,
        changed(|nic| nic.search.push("corp.example.com".into()))
    );
    // The pool an address came from is not something the guest sees.
    assert_eq!(base, changed(|nic| nic.pool = Some("other".into())));
}

#[test]
fn instance_id_does_not_change_with_keys_users_or_packages() {
    let plain = config("web01", vec![static_nic()]);
    let loaded = config_with(
        "web01",
        vec![static_nic()],
        &[KEY_A, KEY_B],
        &[json!("default")],
        &["nginx"],
        Some(json!({"runcmd": ["echo hi"]})),
    );
    assert_eq!(plain.instance_id, loaded.instance_id);
}

// ------------------------------------------------------------------------------------------------
// user-data

#[test]
fn user_data_sets_hostname_and_fqdn_in_a_stable_order() {
    let users = [
        json!("default"),
        json!({"name": "deploy", "groups": ["sudo"]}),
    ];
    let packages = vec!["nginx".to_string(), "curl".to_string()];
    assert_eq!(
        user_data(&input(&users, &packages, None)).unwrap(),
        r#"#cloud-config
{
  "hostname": "web01",
  "fqdn": "web01.example.com",
  "preserve_hostname": false,
  "users": [
    "default",
    {
      "groups": [
        "sudo"
      ],
      "name": "deploy"
    }
  ],
  "packages": [
    "nginx",
    "curl"
  ],
  "package_update": true
}
"#
    );
}

#[test]
fn user_data_for_a_short_hostname_has_no_fqdn_and_nothing_optional() {
    let text = user_data(&UserDataInput {
        hostname: "web01",
        users: &[],
        packages: &[],
        extra: None,
    })
    .unwrap();
    assert_eq!(
        yaml(&text),
        yaml("{hostname: web01, preserve_hostname: false}")
    );
}

#[test]
fn user_data_appends_the_manifest_lists_and_passes_other_keys_through() {
    let users = [json!("default")];
    let packages = vec!["nginx".to_string()];
    let extra = json!({
        "packages": ["htop"],
        "users": [{"name": "ops"}],
        "runcmd": ["systemctl enable --now nginx"],
        "timezone": "Europe/Berlin",
        "hostname": "web01",
        "package_update": true,
    });
    let text = user_data(&input(&users, &packages, Some(&extra))).unwrap();
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    assert_eq!(
        yaml(&text),
        yaml(
            "hostname: web01
fqdn: web01.example.com
preserve_hostname: false
users: [default, {name: ops}]
packages: [nginx, htop]
package_update: true
runcmd: [systemctl enable --now nginx]
timezone: Europe/Berlin
"
        )
    );
}

#[test]
fn user_data_refuses_a_manifest_key_that_contradicts_a_generated_one() {
    let extra = json!({"hostname": "other"});
    let error = user_data(&input(&[], &[], Some(&extra))).unwrap_err();
    assert!(
        matches!(error, UserDataError::Conflict { ref key, .. } if key == "hostname"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "userData.hostname is \"other\", but ceso generates \"web01\" from the cloudInit \
         section; leave hostname out of userData"
    );

    let extra = json!({"preserve_hostname": true});
    let error = user_data(&input(&[], &[], Some(&extra))).unwrap_err();
    assert!(matches!(error, UserDataError::Conflict { ref key, .. } if key == "preserve_hostname"));
}

#[test]
fn user_data_refuses_extra_that_is_not_a_mapping_and_merged_keys_that_are_not_lists() {
    let extra = json!(["runcmd"]);
    let error = user_data(&input(&[], &[], Some(&extra))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "userData must be a mapping of cloud-config keys, not a list"
    );

    let extra = json!({"runcmd": "echo hi"});
    let error = user_data(&input(&[], &[], Some(&extra))).unwrap_err();
    assert!(
        matches!(error, UserDataError::NotAList { ref key, found: "a string" } if key == "runcmd"),
        "{error:?}"
    );
}

#[test]
fn user_data_refuses_passwords_naming_where_they_are() {
    let refused =
        |users: &[Value], extra: Option<Value>| match user_data(&input(users, &[], extra.as_ref()))
            .unwrap_err()
        {
            UserDataError::Password { path } => path,
            other => panic!("expected a password error, got {other:?}"),
        };
    let users = [json!("default"), json!({"name": "bob", "passwd": "$6$x"})];
    assert_eq!(refused(&users, None), "users[1].passwd");
    let users = [json!({"name": "bob", "hashed_passwd": "$6$x"})];
    assert_eq!(refused(&users, None), "users[0].hashed_passwd");
    let users = [json!({"name": "bob", "plain_text_passwd": "hunter2"})];
    assert_eq!(refused(&users, None), "users[0].plain_text_passwd");
    assert_eq!(
        refused(&[], Some(json!({"chpasswd": {"expire": false}}))),
        "userData.chpasswd"
    );
    assert_eq!(
        refused(
            &[],
            Some(json!({"users": [{"name": "x", "password": "y"}]}))
        ),
        "userData.users[0].password"
    );

    let users = [json!({"name": "bob", "passwd": "$6$x"})];
    let message = user_data(&input(&users, &[], None))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("users[0].passwd: manifests must not hold passwords"),
        "{message}"
    );
    assert!(message.contains("SSH keys"), "{message}");
}

#[test]
fn user_data_allows_password_settings_that_hold_no_password() {
    let users = [json!({"name": "bob", "lock_passwd": true})];
    let extra = json!({"ssh_pwauth": false});
    assert!(user_data(&input(&users, &[], Some(&extra))).is_ok());
}

// ------------------------------------------------------------------------------------------------
// redaction

#[test]
fn redact_user_data_hides_password_like_values_wherever_they_are() {
    let text = "#cloud-config
users:
- name: bob
  passwd: $6$abc
  lock_passwd: false
  plain_text_passwd: hunter2
chpasswd:
  list: |
    root:secret1
  users:
  - {name: alice, password: secret2}
ssh_keys:
  rsa_private: PRIVATE KEY
ubuntu_advantage:
  token: c0ffee
db_secret: s3cr3t
hostname: web01
";
    assert_eq!(
        yaml(&redact_user_data(text)),
        yaml(
            "users:
- name: bob
  passwd: (redacted)
  lock_passwd: false
  plain_text_passwd: (redacted)
chpasswd:
  list: (redacted)
  users:
  - {name: alice, password: (redacted)}
ssh_keys:
  rsa_private: (redacted)
ubuntu_advantage:
  token: (redacted)
db_secret: (redacted)
hostname: web01
"
        )
    );
    assert!(redact_user_data(text).starts_with("#cloud-config\n"));
}

#[test]
fn redact_user_data_hides_written_files_and_commands_that_handle_secrets() {
    let text = "#cloud-config
write_files:
- path: /etc/app.env
  permissions: '0600'
  content: |
    DB_PASS=hunter2
    AWS_SECRET_ACCESS_KEY=abc
- path: /root/.ssh/id_ed25519
  encoding: b64
  content: LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K
runcmd:
- echo 'root:S3cret!' | chpasswd
- [curl, -H, 'Authorization: Bearer abc', https://example.com]
- [systemctl, enable, --now, nginx]
";
    let shown = redact_user_data(text);
    for secret in ["hunter2", "AWS_SECRET", "LS0tLS1C", "S3cret", "Bearer abc"] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    for visible in [
        "/etc/app.env",
        "'0600'",
        "/root/.ssh/id_ed25519",
        "(redacted: 48 bytes)",
        "nginx",
    ] {
        assert!(shown.contains(visible), "{visible} missing from:\n{shown}");
    }
}

#[test]
fn redact_user_data_does_not_show_what_is_not_cloud_config() {
    let script = "#!/bin/sh\necho root:hunter2 | chpasswd\n";
    let shown = redact_user_data(script);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("not a #cloud-config"), "{shown}");
}

// ------------------------------------------------------------------------------------------------
// cloud-init's own VMware datasource reading what ceso writes

#[test]
fn cloud_init_reads_a_static_address_with_gateway_dns_and_search_matched_by_mac() {
    let config = config_with(
        "web01.example.com",
        vec![static_nic()],
        &[KEY_A],
        &[json!("default")],
        &[],
        None,
    );
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));

    assert_eq!(consumed.instance_id, config.instance_id);
    assert_eq!(consumed.local_hostname, "web01.example.com");
    assert_eq!(consumed.hostname, "web01");
    assert_eq!(consumed.fqdn, "web01.example.com");
    assert_eq!(consumed.network_error, "");
    assert_eq!(
        consumed.netplan(),
        yaml(
            "network:
  version: 2
  ethernets:
    nic0:
      match: {macaddress: '00:50:56:ab:cd:01'}
      set-name: nic0
      addresses: [192.168.1.100/24]
      routes: [{to: 0.0.0.0/0, via: 192.168.1.1}]
      nameservers:
        addresses: [192.168.1.53, 1.1.1.1]
        search: [example.com]
"
        )
    );
    assert!(consumed.user_data_valid, "{}", consumed.schema_errors);
}

#[test]
fn cloud_init_reads_a_dhcp_nic() {
    let config = config("web01", vec![dhcp_nic()]);
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));

    assert_eq!(consumed.network_error, "");
    assert_eq!(
        consumed.netplan(),
        yaml(
            "network:
  version: 2
  ethernets:
    nic0:
      match: {macaddress: '00:50:56:ab:cd:01'}
      set-name: nic0
      dhcp4: true
"
        )
    );
    assert_eq!(consumed.hostname, "web01");
}

#[test]
fn cloud_init_reads_two_nics_each_matched_by_its_own_mac() {
    let second = InterfaceConfig {
        address: Some("10.0.0.5/16".into()),
        ..InterfaceConfig::default()
    };
    let config = config("web01", vec![static_nic(), second]);
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0, MAC_1])));

    assert_eq!(consumed.network_error, "");
    let netplan = consumed.netplan();
    let ethernets = &netplan["network"]["ethernets"];
    assert_eq!(
        ethernets["nic0"]["match"]["macaddress"],
        "00:50:56:ab:cd:01"
    );
    assert_eq!(ethernets["nic0"]["addresses"], yaml("[192.168.1.100/24]"));
    assert_eq!(
        ethernets["nic1"],
        yaml(
            "{match: {macaddress: '00:50:56:ab:cd:02'}, set-name: nic1, addresses: [10.0.0.5/16]}"
        )
    );
}

#[test]
fn cloud_init_gives_the_default_user_the_public_keys() {
    let config = config_with("web01", vec![dhcp_nic()], &[KEY_A, KEY_B], &[], &[], None);
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));
    assert_eq!(consumed.public_keys, [KEY_A, KEY_B]);

    let config = config_with("web01", vec![dhcp_nic()], &[], &[], &[], None);
    assert!(
        consume(&guestinfo(&config, &macs(&[MAC_0])))
            .public_keys
            .is_empty()
    );
}

#[test]
fn cloud_init_accepts_user_data_with_packages_users_and_manifest_extras() {
    let users = [
        json!("default"),
        json!({
            "name": "deploy",
            "groups": ["sudo", "adm"],
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": true,
            "ssh_authorized_keys": [KEY_B],
        }),
    ];
    let extra = json!({
        "packages": ["htop"],
        "runcmd": [["systemctl", "enable", "--now", "nginx"], "echo done"],
        "write_files": [{
            "path": "/etc/motd",
            "content": "managed by ceso\nsecond line\n",
            "permissions": "0644",
            "owner": "root:root",
        }],
        "ssh_authorized_keys": [KEY_A],
        "timezone": "Europe/Berlin",
        "ntp": {"enabled": true, "servers": ["ntp.example.com"]},
    });
    let config = config_with(
        "web01.example.com",
        vec![static_nic()],
        &[KEY_A],
        &users,
        &["nginx", "curl"],
        Some(extra),
    );
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));

    assert!(consumed.user_data_valid, "{}", consumed.schema_errors);
    assert_eq!(consumed.schema_errors, "");
    assert_eq!(consumed.schema_deprecations, "");
    assert_eq!(
        consumed.user_data.as_deref(),
        Some(config.user_data.as_str())
    );
    let parsed = yaml(&config.user_data);
    assert_eq!(parsed["write_files"][0]["permissions"], "0644");
    assert_eq!(parsed["packages"], yaml("[nginx, curl, htop]"));
}

#[test]
fn cloud_init_reports_an_invalid_manifest_extra_as_invalid() {
    // ceso passes keys it does not know through; cloud-init's schema is the judge.
    let config = config_with(
        "web01",
        vec![dhcp_nic()],
        &[],
        &[],
        &[],
        Some(json!({"package_upgrade": "sometimes", "runcmd": [{"not": "a command"}]})),
    );
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));

    assert!(!consumed.user_data_valid);
    assert!(
        consumed.schema_errors.contains("package_upgrade"),
        "{}",
        consumed.schema_errors
    );
    assert!(
        consumed.schema_errors.contains("runcmd.0"),
        "{}",
        consumed.schema_errors
    );
}

#[test]
fn cloud_init_refuses_a_default_route_written_as_default() {
    // Why ceso writes `to: 0.0.0.0/0`: the form `to: default` is refused by Debian's
    // cloud-init 22.4 (proves the harness's network check can fail).
    let mut entries = guestinfo(&config("web01", vec![static_nic()]), &macs(&[MAC_0]));
    let mut document = read_guestinfo(&entries).unwrap().metadata.unwrap();
    document["network"]["ethernets"]["nic0"]["routes"][0]["to"] = json!("default");
    entries.insert(
        cloudinit::METADATA_KEY.into(),
        encode(&document.to_string()),
    );

    let consumed = consume(&entries);
    assert!(
        consumed.network_error.contains("default is not a valid ip"),
        "{}",
        consumed.network_error
    );
}

#[test]
fn cloud_init_sees_a_new_instance_id_when_hostname_or_network_change_but_not_packages() {
    let read = |config: &CloudInitConfig| consume(&guestinfo(config, &macs(&[MAC_0]))).instance_id;
    let base = read(&config("web01", vec![static_nic()]));

    let renamed = read(&config("web02", vec![static_nic()]));
    let readdressed = read(&config(
        "web01",
        vec![InterfaceConfig {
            address: Some("192.168.1.101/24".into()),
            ..static_nic()
        }],
    ));
    let with_packages = read(&config_with(
        "web01",
        vec![static_nic()],
        &[KEY_A],
        &[],
        &["nginx"],
        None,
    ));
    assert_ne!(base, renamed);
    assert_ne!(base, readdressed);
    assert_eq!(base, with_packages);
}

#[test]
fn cloud_init_reads_strings_that_yaml_1_1_would_misread_as_strings() {
    // cloud-init parses with PyYAML (YAML 1.1): `yes`, `on`, `12:30`, `1_000`, `2024-01-02`...
    // written plain would become booleans, numbers, dates or null; the schema wants strings.
    let words = [
        "yes",
        "on",
        "off",
        "y",
        "N",
        "0644",
        "12:30",
        "0x1F",
        "1_000",
        "0b101",
        "~",
        "null",
        ".inf",
        "1e3",
        "2024-01-02",
        "=",
    ];
    let config = config_with("web01", vec![dhcp_nic()], &[], &[], &words, None);
    let consumed = consume(&guestinfo(&config, &macs(&[MAC_0])));
    assert!(consumed.user_data_valid, "{}", consumed.schema_errors);
}
