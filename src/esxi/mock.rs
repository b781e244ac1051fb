//! Tests against a scripted loopback SOAP server, for the behaviour of real hosts that the
//! simulator never shows: paging tokens, tasks that are still running, session cookies in the
//! real format, faults on write methods.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::host::{HostOp, PowerState, VmCreateSpec};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    cookie: Option<String>,
    soap_action: Option<String>,
}

type Handler = Box<dyn FnMut(&str, &str) -> (u16, String) + Send>;

/// Serves one request per connection (`Connection: close`) until the test ends.
async fn serve(mut handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            let method = body
                .split_once("<soapenv:Body><")
                .and_then(|(_, rest)| rest.split([' ', '>']).next())
                .unwrap_or_default()
                .to_owned();
            log.lock().expect("log").push(Seen {
                method: method.clone(),
                cookie: header("cookie"),
                soap_action: header("soapaction"),
            });
            let (status, mut reply) = handler(&method, &body);
            let mut extra = String::new();
            if let Some(rest) = reply.strip_prefix("SET-COOKIE ") {
                let (cookie, xml) = rest.split_once('\n').expect("cookie line");
                extra = format!("Set-Cookie: {cookie}\r\n");
                reply = xml.to_owned();
            }
            let reason = if status == 200 {
                "OK"
            } else {
                "Internal Server Error"
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml; charset=utf-8\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}"), seen)
}

fn env(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"#
    )
}

fn fault(kind: &str, message: &str) -> (u16, String) {
    (
        500,
        env(&format!(
            r#"<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{message}</faultstring><detail><{kind}Fault xmlns="urn:vim25" xsi:type="{kind}"></{kind}Fault></detail></soapenv:Fault>"#
        )),
    )
}

fn response(method: &str, returnval: &str) -> (u16, String) {
    (
        200,
        env(&format!(
            r#"<{method}Response xmlns="urn:vim25">{returnval}</{method}Response>"#
        )),
    )
}

/// Answers the connect sequence; `None` for anything else.
fn connect_reply(method: &str) -> Option<(u16, String)> {
    match method {
        "RetrieveServiceContent" => Some((
            200,
            include_str!("testdata/service_content.xml").replace(
                "<apiVersion>6.5</apiVersion>",
                "<apiVersion>8.0.2.0</apiVersion>",
            ),
        )),
        "Login" => {
            let (s, body) = response(
                "Login",
                "<returnval><key>k</key><userName>root</userName></returnval>",
            );
            Some((
                s,
                format!(
                    "SET-COOKIE vmware_soap_session=\"52a1-b2\"; Path=/; HttpOnly; Secure\n{body}"
                ),
            ))
        }
        "Logout" => Some(response("Logout", "")),
        "CreateContainerView" => Some(response(
            "CreateContainerView",
            r#"<returnval type="ContainerView">session[52a1]view-1</returnval>"#,
        )),
        "DestroyView" => Some(response("DestroyView", "")),
        _ => None,
    }
}

fn options(address: String, task_timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        address,
        thumbprint: None,
        insecure: false,
        username: "root".into(),
        password: Secret::new("pw"),
        task_timeout,
    }
}

fn task_info(task: &str, state: &str, extra: &str) -> (u16, String) {
    let x = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
    response(
        "RetrievePropertiesEx",
        &format!(
            r#"<returnval><objects><obj type="Task">{task}</obj>{extra}<propSet><name>info.state</name><val {x} XMLSchema-instance:type="TaskInfoState">{state}</val></propSet></objects></returnval>"#
        ),
    )
}

#[tokio::test]
async fn paging_tokens_are_followed() {
    let x = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
    let vm = move |moref: &str, name: &str| {
        format!(
            r#"<objects><obj type="VirtualMachine">{moref}</obj><propSet><name>name</name><val {x} XMLSchema-instance:type="xsd:string">{name}</val></propSet><propSet><name>runtime.powerState</name><val {x} XMLSchema-instance:type="VirtualMachinePowerState">poweredOff</val></propSet></objects>"#
        )
    };
    let page1 = format!(
        "<returnval><token>tok-1</token>{}</returnval>",
        vm("2", "b")
    );
    let page2 = format!(
        r#"<returnval>{}<objects><obj type="Datastore">5f3-ds</obj><propSet><name>name</name><val {x} XMLSchema-instance:type="xsd:string">datastore1</val></propSet></objects></returnval>"#,
        vm("1", "a")
    );
    let (url, seen) = serve(Box::new(move |method, body| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        match method {
            "RetrievePropertiesEx" => response(method, &page1),
            "ContinueRetrievePropertiesEx" if body.contains("<token>tok-1</token>") => {
                response(method, &page2)
            }
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect("connect");
    assert_eq!(client.about().api_version, "8.0.2.0");
    let before = client.round_trips();
    let host = client.observe().await.expect("observe");
    assert_eq!(client.round_trips() - before, 4);
    assert_eq!(
        host.vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(host.vms[0].power, Some(PowerState::PoweredOff));
    assert_eq!(host.datastores, ["datastore1"]);
    client.logout().await.expect("logout");

    let seen = seen.lock().expect("seen").clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "RetrieveServiceContent",
            "Login",
            "CreateContainerView",
            "RetrievePropertiesEx",
            "ContinueRetrievePropertiesEx",
            "DestroyView",
            "Logout"
        ]
    );
    // The quoted real-ESXi cookie is echoed verbatim; Login itself goes without a cookie.
    assert_eq!(seen[1].cookie, None);
    assert_eq!(
        seen[2].cookie.as_deref(),
        Some("vmware_soap_session=\"52a1-b2\"")
    );
    // The host's own API version is announced once known.
    assert_eq!(seen[0].soap_action.as_deref(), Some("urn:vim25"));
    assert_eq!(seen[2].soap_action.as_deref(), Some("urn:vim25/8.0.2.0"));
}

#[tokio::test]
async fn running_tasks_are_polled_until_done() {
    let polls = Arc::new(Mutex::new(0));
    let p = Arc::clone(&polls);
    let (url, _) = serve(Box::new(move |method, _| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        match method {
            "PowerOnVM_Task" => response(method, r#"<returnval type="Task">haTask-1</returnval>"#),
            "RetrievePropertiesEx" => {
                let mut n = p.lock().expect("polls");
                *n += 1;
                match *n {
                    1 => task_info("haTask-1", "queued", ""),
                    2 => task_info("haTask-1", "running", ""),
                    _ => task_info("haTask-1", "success", ""),
                }
            }
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(5)))
        .await
        .expect("connect");
    let op = HostOp::PowerOn {
        moref: Some("3".into()),
        vm: "web".into(),
    };
    client.execute(&op).await.expect("power on");
    assert_eq!(*polls.lock().expect("polls"), 3);
}

#[tokio::test]
async fn task_timeout_and_task_errors() {
    let (url, _) = serve(Box::new(move |method, body| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        match method {
            "PowerOnVM_Task" => response(method, r#"<returnval type="Task">haTask-1</returnval>"#),
            "PowerOffVM_Task" => response(method, r#"<returnval type="Task">haTask-2</returnval>"#),
            "RetrievePropertiesEx" if body.contains("haTask-1") => task_info("haTask-1", "running", ""),
            // The destroy guard reads the VM's extraConfig: it is ceso's.
            "RetrievePropertiesEx" if body.contains("config.extraConfig") => response(
                method,
                r#"<returnval><objects><obj type="VirtualMachine">3</obj><propSet><name>config.extraConfig</name><val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="ArrayOfOptionValue"><OptionValue><key>ceso.managed</key><value x:type="xsd:string">web</value></OptionValue></val></propSet></objects></returnval>"#,
            ),
            "RetrievePropertiesEx" => {
                let x = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
                task_info(
                    "haTask-2",
                    "error",
                    &format!(
                        r#"<propSet><name>info.error</name><val {x} XMLSchema-instance:type="LocalizedMethodFault"><fault XMLSchema-instance:type="InvalidPowerState"><existingState>poweredOff</existingState></fault><localizedMessage>The attempted operation cannot be performed in the current state (Powered off).</localizedMessage></val></propSet>"#
                    ),
                )
            }
            "Destroy_Task" => fault("RestrictedVersion", "Current license or ESXi version prohibits execution of the requested operation."),
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_millis(350)))
        .await
        .expect("connect");
    let err = client
        .execute(&HostOp::PowerOn {
            moref: Some("3".into()),
            vm: "web".into(),
        })
        .await
        .expect_err("times out");
    assert!(
        matches!(&err, EsxiError::TaskTimeout { task, entity, .. } if task == "PowerOnVM_Task" && entity == "web"),
        "{err}"
    );

    let err = client
        .execute(&HostOp::PowerOff {
            moref: Some("3".into()),
            vm: "web".into(),
        })
        .await
        .expect_err("fails");
    match &err {
        EsxiError::TaskFailed {
            task,
            entity,
            fault,
            message,
        } => {
            assert_eq!(
                (task.as_str(), entity.as_str(), fault.as_str()),
                ("PowerOffVM_Task", "web", "InvalidPowerState")
            );
            assert!(message.contains("Powered off"));
        }
        other => panic!("{other:?}"),
    }

    let err = client
        .execute(&HostOp::DestroyVm {
            moref: Some("3".into()),
            vm: "web".into(),
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, EsxiError::RestrictedVersion { method, .. } if method == "Destroy_Task"),
        "{err}"
    );
}

#[tokio::test]
async fn not_authenticated_fault_triggers_one_relogin() {
    let logins = Arc::new(Mutex::new(0));
    let l = Arc::clone(&logins);
    let (url, seen) = serve(Box::new(move |method, _| {
        if method == "Login" {
            *l.lock().expect("logins") += 1;
        }
        if let Some(r) = connect_reply(method) {
            return r;
        }
        match method {
            // Always expired: the client must retry exactly once, then give up.
            "RetrievePropertiesEx" => fault("NotAuthenticated", ""),
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect("connect");
    let err = client.observe().await.expect_err("still unauthenticated");
    assert_eq!(err.fault_type(), Some("NotAuthenticated"));
    // One re-login per call; observe itself starts over once after a renewal, then gives up.
    assert_eq!(*logins.lock().expect("logins"), 3);
    let methods: Vec<String> = seen
        .lock()
        .expect("seen")
        .iter()
        .map(|s| s.method.clone())
        .collect();
    let attempt = [
        "CreateContainerView",
        "RetrievePropertiesEx",
        "Login",
        "RetrievePropertiesEx",
        "DestroyView",
    ];
    let expected: Vec<&str> = ["RetrieveServiceContent", "Login"]
        .into_iter()
        .chain(attempt)
        .chain(attempt)
        .collect();
    assert_eq!(methods, expected);
}

#[tokio::test]
async fn unexpected_http_status_is_reported() {
    let (url, _) = serve(Box::new(|_, _| (503, "<html>busy</html>".to_owned()))).await;
    let err = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect_err("503");
    assert!(matches!(&err, EsxiError::Http { status: 503, .. }), "{err}");
}

#[tokio::test]
async fn an_http_error_answering_a_login_never_repeats_its_body() {
    // A proxy that echoes the request back, password and all.
    let (url, _) = serve(Box::new(|method, body| {
        if method == "Login" {
            assert!(body.contains("<password>pw</password>"), "{body}");
            return (502, format!("<html>bad gateway for {body}</html>"));
        }
        connect_reply(method).unwrap_or_else(|| fault("MethodNotFound", method))
    }))
    .await;
    let err = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect_err("502");
    assert!(matches!(&err, EsxiError::Http { status: 502, .. }), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("<password>pw"), "{shown}");
    assert!(shown.contains("answering a login"), "{shown}");
}

#[tokio::test]
async fn observe_starts_over_when_the_session_expired_mid_read() {
    let logins = Arc::new(Mutex::new(0));
    let l = Arc::clone(&logins);
    let (url, seen) = serve(Box::new(move |method, body| {
        let n = {
            let mut n = l.lock().expect("logins");
            if method == "Login" {
                *n += 1;
            }
            *n
        };
        match method {
            "CreateContainerView" => response(
                method,
                &format!(r#"<returnval type="ContainerView">session[{n}]view-{n}</returnval>"#),
            ),
            "RetrievePropertiesEx" if body.contains("view-1") && n == 1 => {
                fault("NotAuthenticated", "")
            }
            "RetrievePropertiesEx" | "DestroyView" if body.contains("view-1") => fault(
                "ManagedObjectNotFound",
                "The object has already been deleted",
            ),
            "RetrievePropertiesEx" => response(method, ""),
            _ => connect_reply(method).unwrap_or_else(|| fault("MethodNotFound", method)),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect("connect");
    let host = client.observe().await.expect("observe after renewal");
    assert!(host.vms.is_empty());
    let methods: Vec<String> = seen
        .lock()
        .expect("seen")
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(
        methods,
        [
            "RetrieveServiceContent",
            "Login",
            "CreateContainerView",
            "RetrievePropertiesEx",
            "Login",
            "RetrievePropertiesEx",
            "DestroyView",
            "CreateContainerView",
            "RetrievePropertiesEx",
            "DestroyView"
        ]
    );
}

#[tokio::test]
async fn destroy_is_refused_for_a_vm_ceso_did_not_create() {
    let destroyed = Arc::new(Mutex::new(false));
    let d = Arc::clone(&destroyed);
    let (url, _) = serve(Box::new(move |method, _| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        match method {
            "RetrievePropertiesEx" => response(
                method,
                r#"<returnval><objects><obj type="VirtualMachine">7</obj><propSet><name>config.extraConfig</name><val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="ArrayOfOptionValue"><OptionValue><key>govcsim</key><value x:type="xsd:string">TRUE</value></OptionValue></val></propSet></objects></returnval>"#,
            ),
            "Destroy_Task" => {
                *d.lock().expect("flag") = true;
                response(method, r#"<returnval type="Task">haTask-9</returnval>"#)
            }
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(5)))
        .await
        .expect("connect");
    let op = HostOp::DestroyVm {
        moref: Some("7".into()),
        vm: "legacy".into(),
    };
    let err = client.execute(&op).await.expect_err("refused");
    assert!(
        matches!(&err, EsxiError::DestroyRefused { moref, .. } if moref == "7"),
        "{err}"
    );
    assert!(
        !*destroyed.lock().expect("flag"),
        "Destroy_Task was never sent"
    );
}

/// A scripted real-ESXi host for creating `web-01` from a template disk: every task is
/// `running` at its first poll, and the attached copy reports the template's real capacity
/// (`copy_kib`), which the simulator cannot show. Records the write calls with their bodies.
async fn template_host(copy_kib: u64) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&writes);
    let mut polls: std::collections::BTreeMap<String, u32> = Default::default();
    let x = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
    let controller = r#"<VirtualDevice XMLSchema-instance:type="ParaVirtualSCSIController"><key>1000</key><deviceInfo><label>SCSI controller 0</label><summary>VMware paravirtual SCSI</summary></deviceInfo><busNumber>0</busNumber><sharedBus>noSharing</sharedBus><scsiCtlrUnitNumber>7</scsiCtlrUnitNumber></VirtualDevice>"#;
    let disk = format!(
        r#"<VirtualDevice XMLSchema-instance:type="VirtualDisk"><key>2000</key><deviceInfo><label>Hard disk 1</label><summary>{copy_kib} KB</summary></deviceInfo><backing XMLSchema-instance:type="VirtualDiskFlatVer2BackingInfo"><fileName>[datastore1] web-01/web-01.vmdk</fileName><datastore type="Datastore">5f3-ds</datastore><diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing><controllerKey>1000</controllerKey><unitNumber>0</unitNumber><capacityInKB>{copy_kib}</capacityInKB><capacityInBytes>{}</capacityInBytes></VirtualDevice>"#,
        copy_kib * 1024
    );
    let (url, _) = serve(Box::new(move |method, body| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        let task = |id: &str| response(method, &format!(r#"<returnval type="Task">{id}</returnval>"#));
        match method {
            "RetrievePropertiesEx" if body.contains("<pathSet>vmFolder</pathSet>") => response(
                method,
                &format!(
                    r#"<returnval><objects><obj type="Datacenter">ha-datacenter</obj><propSet><name>vmFolder</name><val {x} XMLSchema-instance:type="ManagedObjectReference" type="Folder">ha-folder-vm</val></propSet></objects><objects><obj type="ComputeResource">ha-compute-res</obj><propSet><name>resourcePool</name><val {x} XMLSchema-instance:type="ManagedObjectReference" type="ResourcePool">ha-root-pool</val></propSet></objects></returnval>"#
                ),
            ),
            "RetrievePropertiesEx" if body.contains(r#"<obj type="Task">"#) => {
                let id = body
                    .split(r#"<obj type="Task">"#)
                    .nth(1)
                    .and_then(|rest| rest.split('<').next())
                    .unwrap_or_default()
                    .to_owned();
                let n = polls.entry(id.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    return task_info(&id, "running", "");
                }
                let result = if id == "haTask-create" {
                    format!(
                        r#"<propSet><name>info.result</name><val {x} XMLSchema-instance:type="ManagedObjectReference" type="VirtualMachine">3</val></propSet>"#
                    )
                } else {
                    String::new()
                };
                task_info(&id, "success", &result)
            }
            "RetrievePropertiesEx" => {
                let mut props = String::new();
                if body.contains("config.files.vmPathName") {
                    props.push_str(&format!(
                        r#"<propSet><name>config.files.vmPathName</name><val {x} XMLSchema-instance:type="xsd:string">[datastore1] web-01/web-01.vmx</val></propSet>"#
                    ));
                }
                let attached = log
                    .lock()
                    .expect("log")
                    .iter()
                    .any(|(m, _): &(String, String)| m == "ReconfigVM_Task");
                let devices = if attached {
                    format!("{controller}{disk}")
                } else {
                    controller.to_owned()
                };
                props.push_str(&format!(
                    r#"<propSet><name>config.hardware.device</name><val {x} XMLSchema-instance:type="ArrayOfVirtualDevice">{devices}</val></propSet>"#
                ));
                response(
                    method,
                    &format!(
                        r#"<returnval><objects><obj type="VirtualMachine">3</obj>{props}</objects></returnval>"#
                    ),
                )
            }
            "CreateVM_Task" | "CopyVirtualDisk_Task" | "ReconfigVM_Task" | "Destroy_Task"
            | "DeleteVirtualDisk_Task" => {
                let mut log = log.lock().expect("log");
                log.push((method.to_owned(), body.to_owned()));
                let id = match method {
                    "CreateVM_Task" => "haTask-create".to_owned(),
                    _ => format!("haTask-{}", log.len()),
                };
                task(&id)
            }
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    (url, writes)
}

fn template_spec(disk0: u64) -> VmCreateSpec {
    VmCreateSpec {
        name: "web-01".into(),
        cpu: 2,
        memory_mib: 2048,
        guest_id: "debian12_64Guest".into(),
        datastore: "datastore1".into(),
        disks: vec![disk0],
        nics: vec![],
        extra_config: [("ceso.managed".to_owned(), "web-01".to_owned())].into(),
        template_disk: Some("[datastore1] tmpl/tmpl.vmdk".into()),
        firmware: Some(crate::host::Firmware::Efi),
        cloud_init: None,
        annotation: None,
        clone_from: None,
    }
}

#[tokio::test]
async fn template_copy_is_attached_then_grown_on_a_host_that_reports_its_real_size() {
    let (url, writes) = template_host(10 << 20).await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(10)))
        .await
        .expect("connect");
    let outcome = client
        .execute(&HostOp::CreateVm {
            spec: template_spec(20 << 30),
        })
        .await
        .expect("created");
    assert_eq!(outcome.created_moref.as_deref(), Some("3"));
    let writes = writes.lock().expect("writes").clone();
    let methods: Vec<&str> = writes.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "CreateVM_Task",
            "CopyVirtualDisk_Task",
            "ReconfigVM_Task",
            "ReconfigVM_Task"
        ]
    );
    let create = &writes[0].1;
    assert!(
        !create.contains("VirtualDisk\""),
        "no disk at creation: {create}"
    );
    assert!(create.contains("<firmware>efi</firmware>"), "{create}");
    let copy = &writes[1].1;
    assert!(
        copy.contains("<sourceName>[datastore1] tmpl/tmpl.vmdk</sourceName>")
            && copy.contains("<destName>[datastore1] web-01/web-01.vmdk</destName>")
            && copy.contains("<diskType>thin</diskType>")
            && copy.contains(r#"<destDatacenter type="Datacenter">ha-datacenter</destDatacenter>"#),
        "{copy}"
    );
    let attach = &writes[2].1;
    assert!(
        attach.contains("<fileName>[datastore1] web-01/web-01.vmdk</fileName>")
            && attach.contains("<controllerKey>1000</controllerKey><unitNumber>0</unitNumber>")
            && !attach.contains("fileOperation"),
        "{attach}"
    );
    let grow = &writes[3].1;
    assert!(
        grow.contains("<operation>edit</operation>")
            && grow.contains("<key>2000</key>")
            && grow.contains("<capacityInKB>20971520</capacityInKB>"),
        "{grow}"
    );
}

#[tokio::test]
async fn a_template_larger_than_disk_0_is_refused_and_the_vm_destroyed() {
    let (url, writes) = template_host(30 << 20).await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(10)))
        .await
        .expect("connect");
    let err = client
        .execute(&HostOp::CreateVm {
            spec: template_spec(20 << 30),
        })
        .await
        .expect_err("would shrink");
    assert!(
        matches!(&err, EsxiError::CreateRolledBack { vm, .. } if vm == "web-01"),
        "{err}"
    );
    assert!(err.to_string().contains("disks never shrink"), "{err}");
    let writes = writes.lock().expect("writes").clone();
    let methods: Vec<&str> = writes.iter().map(|(m, _)| m.as_str()).collect();
    // The copy was attached, so destroying the VM removes it; nothing is deleted apart.
    assert_eq!(
        methods,
        [
            "CreateVM_Task",
            "CopyVirtualDisk_Task",
            "ReconfigVM_Task",
            "Destroy_Task"
        ]
    );
    assert!(
        writes[3]
            .1
            .contains(r#"<_this type="VirtualMachine">3</_this>"#)
    );
}

#[tokio::test]
async fn the_firewall_is_read_in_one_call_and_a_ruleset_update_replaces_its_list() {
    let x = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = Arc::clone(&bodies);
    let (url, seen) = serve(Box::new(move |method, body| {
        if let Some(r) = connect_reply(method) {
            return r;
        }
        if method.is_empty() {
            // The connection that finds ceso's own address sends nothing.
            return (400, String::new());
        }
        b.lock().expect("bodies").push(body.to_owned());
        match method {
            "RetrievePropertiesEx" => response(
                method,
                &format!(
                    r#"<returnval><objects><obj type="HostFirewallSystem">ha-firewallSystem</obj><propSet><name>firewallInfo</name><val {x} XMLSchema-instance:type="HostFirewallInfo"><ruleset><key>sshServer</key><label>SSH Server</label><enabled>true</enabled><allowedHosts><ipNetwork><network>10.0.0.0</network><prefixLength>24</prefixLength></ipNetwork><allIp>false</allIp></allowedHosts></ruleset></val></propSet></objects></returnval>"#
                ),
            ),
            "UpdateRuleset" if body.contains("<id>sshServer</id>") => response(method, ""),
            "UpdateRuleset" => fault("NotFound", ""),
            _ => fault("MethodNotFound", method),
        }
    }))
    .await;
    let client = EsxiClient::connect(options(url, Duration::from_secs(1)))
        .await
        .expect("connect");
    let before = client.round_trips();
    let access = client
        .observe_access()
        .await
        .expect("observe access")
        .expect("a firewall");
    assert_eq!(client.round_trips() - before, 1, "one RetrievePropertiesEx");
    assert_eq!(access.firewall_system, "ha-firewallSystem");
    assert_eq!(
        access.rulesets["sshServer"].allowed.to_string(),
        "10.0.0.0/24"
    );
    // The mock listens on 127.0.0.1: that is the address ceso comes from.
    assert_eq!(
        access.client_address,
        Some("127.0.0.1".parse().expect("ip"))
    );
    // The read goes down the inventory to the HostSystem's firewall system.
    let read = bodies.lock().expect("bodies")[0].clone();
    for part in [
        "<type>HostFirewallSystem</type><pathSet>firewallInfo</pathSet>",
        "<type>HostSystem</type><path>configManager.firewallSystem</path>",
        "<type>ComputeResource</type><path>host</path>",
    ] {
        assert!(read.contains(part), "{part} in {read}");
    }

    let op = |ruleset: &str| HostOp::UpdateFirewallRuleset {
        firewall_system: "ha-firewallSystem".into(),
        ruleset: ruleset.into(),
        allowed: crate::host::AllowedHosts::only(["192.168.1.0/24".parse().expect("net")]),
    };
    client.execute(&op("sshServer")).await.expect("updated");
    let update = bodies
        .lock()
        .expect("bodies")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        update.contains(r#"<_this type="HostFirewallSystem">ha-firewallSystem</_this><id>sshServer</id><spec><allowedHosts><ipNetwork><network>192.168.1.0</network><prefixLength>24</prefixLength></ipNetwork><allIp>false</allIp></allowedHosts></spec>"#),
        "{update}"
    );
    let err = client
        .execute(&op("nope"))
        .await
        .expect_err("unknown ruleset");
    assert_eq!(err.fault_type(), Some("NotFound"));
    assert!(
        err.to_string().contains("no firewall ruleset \"nope\""),
        "{err}"
    );
    client.logout().await.expect("logout");
    let methods: Vec<String> = seen
        .lock()
        .expect("seen")
        .iter()
        .map(|s| s.method.clone())
        .filter(|method| !method.is_empty())
        .collect();
    assert_eq!(
        methods,
        [
            "RetrieveServiceContent",
            "Login",
            "RetrievePropertiesEx",
            "UpdateRuleset",
            "UpdateRuleset",
            "Logout"
        ]
    );
}
