//! The property collector: `RetrievePropertiesEx` with its token loop, and `observe()`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::fault::{LocalizedFault, NOT_AUTHENTICATED};
use super::xml::{Detach, Element, MoRef, XmlWriter};
use crate::host::{
    Firmware, ObservedDisk, ObservedHost, ObservedNic, ObservedSnapshot, ObservedVm, PowerState,
};

/// VM properties read by `observe()`. Never `all=true`: a VM has hundreds of properties.
pub(crate) const VM_PATHS: &[&str] = &[
    "name",
    "config.template",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.guestId",
    "runtime.powerState",
    "config.files.vmPathName",
    "config.hardware.device",
    "config.extraConfig",
    "config.firmware",
    "guest.ipAddress",
    "guest.net",
    "config.annotation",
    "config.cpuHotAddEnabled",
    "config.memoryHotAddEnabled",
    "guest.toolsRunningStatus",
    "snapshot.rootSnapshotList",
];

/// vSphere device types that are network adapters (all `VirtualEthernetCard` subtypes).
const NIC_TYPES: &[&str] = &[
    "VirtualEthernetCard",
    "VirtualE1000",
    "VirtualE1000e",
    "VirtualPCNet32",
    "VirtualVmxnet",
    "VirtualVmxnet2",
    "VirtualVmxnet3",
    "VirtualVmxnet3Vrdma",
    "VirtualSriovEthernetCard",
];

/// One object of a `RetrieveResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectContent {
    pub obj: MoRef,
    /// `(property path, val element)` in the order received.
    pub props: Vec<(String, Element)>,
    /// Properties the server could not return, with the reason.
    pub missing: Vec<(String, LocalizedFault)>,
}

impl ObjectContent {
    /// The value of a property (`<val>`), if returned.
    pub fn prop(&self, path: &str) -> Option<&Element> {
        self.props.iter().find(|(p, _)| p == path).map(|(_, v)| v)
    }

    /// The text of a property value.
    pub fn prop_text(&self, path: &str) -> Option<&str> {
        self.prop(path).map(|v| v.text.as_str())
    }

    /// Reads one `ObjectContent` element (`<objects>`), moving the property values out of it.
    pub fn from_element(objects: Element) -> Option<Self> {
        let obj = objects.child("obj")?.as_moref()?;
        let mut props = Vec::new();
        let mut missing = Vec::new();
        for child in objects.children {
            match child.name.as_str() {
                "propSet" => {
                    let (mut name, mut val) = (None, None);
                    for c in child.children {
                        match c.name.as_str() {
                            "name" if name.is_none() => name = Some(c.text),
                            "val" if val.is_none() => val = Some(c),
                            _ => {}
                        }
                    }
                    if let Some(name) = name {
                        props.push((name, val.unwrap_or_else(|| Element::new("val"))));
                    }
                }
                "missingSet" => {
                    let path = child.child_text("path").unwrap_or_default().to_owned();
                    let fault = child
                        .child("fault")
                        .map(LocalizedFault::from_element)
                        .unwrap_or_else(|| LocalizedFault {
                            fault: "Unknown".into(),
                            message: String::new(),
                        });
                    missing.push((path, fault));
                }
                _ => {}
            }
        }
        Some(Self {
            obj,
            props,
            missing,
        })
    }
}

/// Where the objects of a `RetrieveResult` sit in a response envelope
/// (`Envelope/Body/RetrievePropertiesExResponse/returnval/objects`).
const OBJECTS_PATH: &[&str] = &["Envelope", "Body", "*", "returnval", "objects"];

/// The paging token of a `RetrieveResult` response, if any.
pub(crate) fn retrieve_token(resp: &Element) -> Option<String> {
    resp.child("returnval")?
        .child_text("token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Whether one `<objects>` element reports `NotAuthenticated` in a `missingSet`.
fn object_not_authenticated(objects: &Element) -> bool {
    objects.children_named("missingSet").any(|m| {
        m.path(&["fault", "fault"])
            .is_some_and(|f| f.type_name() == Some(NOT_AUTHENTICATED))
    })
}

/// Whether a RetrievePropertiesEx response still holding its objects reports `NotAuthenticated`
/// in a `missingSet`.
pub(crate) fn has_not_authenticated(resp: &Element) -> bool {
    resp.child("returnval")
        .is_some_and(|rv| rv.children_named("objects").any(object_not_authenticated))
}

/// Receives the objects of a `RetrievePropertiesEx` (or continuation) response while it is
/// parsed, so that a large result never exists as one XML tree (see
/// [`EsxiClient::call_with`]).
pub(crate) trait ObjectSink: Detach {
    /// Forgets what an earlier attempt of the same call delivered.
    fn reset(&mut self);
    /// Whether an object reported `NotAuthenticated` in a `missingSet` (how the simulator
    /// answers a request on an expired session).
    fn not_authenticated(&self) -> bool;
}

/// An [`ObjectSink`] that converts each object as soon as it is complete and keeps only the
/// result.
struct Collect<T, F> {
    convert: F,
    items: Vec<T>,
    not_authenticated: bool,
}

impl<T, F> Collect<T, F> {
    fn new(convert: F) -> Self {
        Self {
            convert,
            items: Vec::new(),
            not_authenticated: false,
        }
    }
}

impl<T: Send, F: FnMut(ObjectContent) -> T + Send> Detach for Collect<T, F> {
    fn path(&self) -> &[&str] {
        OBJECTS_PATH
    }

    fn element(&mut self, el: Element) -> Result<(), String> {
        self.not_authenticated |= object_not_authenticated(&el);
        if let Some(o) = ObjectContent::from_element(el) {
            self.items.push((self.convert)(o));
        }
        Ok(())
    }
}

impl<T: Send, F: FnMut(ObjectContent) -> T + Send> ObjectSink for Collect<T, F> {
    fn reset(&mut self) {
        self.items.clear();
        self.not_authenticated = false;
    }

    fn not_authenticated(&self) -> bool {
        self.not_authenticated
    }
}

/// Reads a whole `RetrievePropertiesEx` response document the way [`EsxiClient::retrieve`]
/// does: its objects, its paging token and whether it reports `NotAuthenticated`.
#[cfg(test)]
pub(crate) fn parse_retrieve_response(xml: &str) -> (Vec<ObjectContent>, Option<String>, bool) {
    use super::envelope::{Reply, unwrap_body};
    let mut sink = Collect::new(|o| o);
    let root = super::xml::parse_detaching(xml, Some(&mut sink)).expect("xml");
    let Reply::Response(resp) = unwrap_body(root).expect("body") else {
        panic!("fault")
    };
    let not_authenticated = sink.not_authenticated || has_not_authenticated(&resp);
    (sink.items, retrieve_token(&resp), not_authenticated)
}

/// A `PropertyFilterSpec` under construction.
pub(crate) struct FilterSpec {
    w: XmlWriter,
}

impl FilterSpec {
    /// Starts a `specSet`.
    pub fn new() -> Self {
        let mut w = XmlWriter::new();
        w.start("specSet");
        Self { w }
    }

    /// Adds a `PropertySpec` (a type and the paths to read on objects of that type).
    pub fn props(mut self, kind: &str, paths: &[&str]) -> Self {
        self.w.start("propSet").leaf("type", kind);
        for p in paths {
            self.w.leaf("pathSet", p);
        }
        self.w.end("propSet");
        self
    }

    /// Adds the `ObjectSpec` and finishes. `select` writes the traversal specs.
    pub fn object(
        mut self,
        obj: &MoRef,
        skip: bool,
        select: impl FnOnce(&mut XmlWriter),
    ) -> String {
        self.w
            .start("objectSet")
            .moref("obj", obj)
            .leaf("skip", bool_text(skip));
        select(&mut self.w);
        self.w.end("objectSet").end("specSet");
        self.w.finish()
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Writes a `TraversalSpec` that continues with the named selection specs.
pub(crate) fn traversal(w: &mut XmlWriter, name: &str, kind: &str, path: &str, next: &[&str]) {
    w.start_typed("selectSet", "TraversalSpec")
        .leaf("name", name)
        .leaf("type", kind)
        .leaf("path", path)
        .leaf("skip", "false");
    for n in next {
        w.start("selectSet").leaf("name", n).end("selectSet");
    }
    w.end("selectSet");
}

impl EsxiClient {
    /// `RetrievePropertiesEx` plus the `ContinueRetrievePropertiesEx` loop for paging hosts.
    pub(crate) async fn retrieve(&self, spec_set: &str) -> Result<Vec<ObjectContent>, EsxiError> {
        self.retrieve_map(spec_set, |o| o).await
    }

    /// Like [`retrieve`](Self::retrieve), but each object is passed to `convert` as soon as it
    /// has been parsed and only the results are kept: a large result (every VM's device list)
    /// never exists as one XML tree.
    pub(crate) async fn retrieve_map<T: Send>(
        &self,
        spec_set: &str,
        convert: impl FnMut(ObjectContent) -> T + Send,
    ) -> Result<Vec<T>, EsxiError> {
        let pc = &self.service.property_collector;
        let mut sink = Collect::new(convert);
        let mut w = method_body(pc);
        w.buf.push_str(spec_set);
        w.start("options").end("options");
        let resp = self
            .call_with("RetrievePropertiesEx", &w.finish(), Some(&mut sink))
            .await?;
        let mut items = std::mem::take(&mut sink.items);
        let mut token = retrieve_token(&resp);
        while let Some(t) = token.take() {
            let mut w = method_body(pc);
            w.leaf("token", &t);
            let resp = self
                .call_with("ContinueRetrievePropertiesEx", &w.finish(), Some(&mut sink))
                .await?;
            items.append(&mut sink.items);
            token = retrieve_token(&resp);
        }
        Ok(items)
    }

    /// Reads properties of a single object.
    pub(crate) async fn retrieve_one(
        &self,
        obj: &MoRef,
        paths: &[&str],
    ) -> Result<Option<ObjectContent>, EsxiError> {
        let spec = FilterSpec::new()
            .props(&obj.kind, paths)
            .object(obj, false, |_| {});
        let objects = self.retrieve(&spec).await?;
        Ok(objects.into_iter().find(|o| o.obj == *obj))
    }

    /// The bulk read behind `Host::observe`: one container view over VMs, datastores and
    /// networks, one `RetrievePropertiesEx` (plus continuations on paging hosts), one
    /// `DestroyView`.
    ///
    /// Views belong to a session: when the session had to be renewed half-way, the view is
    /// gone, so the read starts over once.
    pub(crate) async fn observe_host(&self) -> Result<ObservedHost, EsxiError> {
        let generation = self.session_generation.load(Ordering::SeqCst);
        match self.observe_once().await {
            Err(e) if self.session_generation.load(Ordering::SeqCst) != generation => {
                tracing::debug!(error = %e, "session renewed during observe; reading again");
                self.observe_once().await
            }
            other => other,
        }
    }

    async fn observe_once(&self) -> Result<ObservedHost, EsxiError> {
        let mut w = method_body(&self.service.view_manager);
        w.moref("container", &self.service.root_folder)
            .leaf("type", "VirtualMachine")
            .leaf("type", "Datastore")
            .leaf("type", "Network")
            .leaf("recursive", "true");
        let resp = self.call("CreateContainerView", &w.finish()).await?;
        let view = resp
            .child("returnval")
            .and_then(Element::as_moref)
            .ok_or_else(|| EsxiError::Protocol {
                address: self.transport.address().to_owned(),
                method: "CreateContainerView".into(),
                message: "no view in the response".into(),
            })?;

        let spec = FilterSpec::new()
            .props("VirtualMachine", VM_PATHS)
            .props("Datastore", &["name"])
            .props("Network", &["name"])
            .object(&view, true, |w| {
                traversal(w, "traverseView", "ContainerView", "view", &[])
            });
        let result = self.retrieve_map(&spec, observed_object).await;

        let destroy = method_body(&view).finish();
        match self.call("DestroyView", &destroy).await {
            Ok(_) => {}
            // The view went away with an expired session.
            Err(e) if e.fault_type() == Some("ManagedObjectNotFound") => {}
            Err(e) => {
                tracing::warn!(error = %e, "DestroyView failed; the view lingers until logout")
            }
        }
        let objects = result?;
        Ok(observed_host(self.service.about.clone(), objects))
    }
}

/// What one object of the observe read contributes to the [`ObservedHost`].
#[derive(Debug)]
pub(crate) enum Observed {
    /// A VM (boxed: it is much larger than the other variants).
    Vm(Box<ObservedVm>),
    /// The name of a datastore.
    Datastore(String),
    /// The name of a network (a standard port group or a distributed one).
    Network(String),
    /// A VM that vanished mid-read (or an inaccessible one), or an object without a name.
    Nothing,
}

/// Reads one object of the observe read.
pub(crate) fn observed_object(o: ObjectContent) -> Observed {
    let name = || o.prop_text("name").map(str::to_owned);
    match o.obj.kind.as_str() {
        // An object that vanished mid-read (or an inaccessible one) comes without name.
        "VirtualMachine" if o.prop("name").is_some() => Observed::Vm(Box::new(observed_vm(&o))),
        "VirtualMachine" => Observed::Nothing,
        "Datastore" => name().map_or(Observed::Nothing, Observed::Datastore),
        // Network subtypes (e.g. DistributedVirtualPortgroup) also carry a name.
        _ => name().map_or(Observed::Nothing, Observed::Network),
    }
}

/// Builds the sorted `ObservedHost` from the objects read.
pub(crate) fn observed_host(
    about: crate::host::HostAbout,
    objects: impl IntoIterator<Item = Observed>,
) -> ObservedHost {
    let mut host = ObservedHost {
        about,
        ..ObservedHost::default()
    };
    for o in objects {
        match o {
            Observed::Vm(vm) => host.vms.push(*vm),
            Observed::Datastore(name) => host.datastores.push(name),
            Observed::Network(name) => host.networks.push(name),
            Observed::Nothing => {}
        }
    }
    host.vms
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.moref.cmp(&b.moref)));
    host.datastores.sort();
    host.datastores.dedup();
    host.networks.sort();
    host.networks.dedup();
    host
}

/// One VM from its properties.
pub(crate) fn observed_vm(o: &ObjectContent) -> ObservedVm {
    let text = |p: &str| o.prop_text(p).unwrap_or_default().trim().to_owned();
    let power = match o.prop_text("runtime.powerState").map(str::trim) {
        Some("poweredOn") => Some(PowerState::PoweredOn),
        Some("poweredOff") => Some(PowerState::PoweredOff),
        Some("suspended") => Some(PowerState::Suspended),
        _ => None,
    };
    let devices: &[Element] = o
        .prop("config.hardware.device")
        .map_or(&[], |v| &v.children);
    let (disks, nics) = parse_devices(devices);
    ObservedVm {
        moref: o.obj.value.clone(),
        name: o.prop_text("name").unwrap_or_default().to_owned(),
        template: text("config.template") == "true",
        cpu: text("config.hardware.numCPU").parse().unwrap_or(0),
        memory_mib: text("config.hardware.memoryMB").parse().unwrap_or(0),
        guest_id: text("config.guestId"),
        power,
        vmx_path: o
            .prop_text("config.files.vmPathName")
            .unwrap_or_default()
            .to_owned(),
        disks,
        nics,
        extra_config: o
            .prop("config.extraConfig")
            .map(fold_extra_config)
            .unwrap_or_default(),
        firmware: match o.prop_text("config.firmware").map(str::trim) {
            Some("bios") => Some(Firmware::Bios),
            Some("efi") => Some(Firmware::Efi),
            _ => None,
        },
        guest_ips: guest_ips(o.prop("guest.ipAddress"), o.prop("guest.net")),
        annotation: o
            .prop_text("config.annotation")
            .unwrap_or_default()
            .to_owned(),
        cpu_hot_add: text("config.cpuHotAddEnabled") == "true",
        memory_hot_add: text("config.memoryHotAddEnabled") == "true",
        tools_running: tools_running(o.prop_text("guest.toolsRunningStatus")),
        snapshots: o
            .prop("snapshot.rootSnapshotList")
            .map(flatten_snapshots)
            .unwrap_or_default(),
    }
}

/// Whether `guest.toolsRunningStatus` says VMware Tools run in the guest (so it can be shut
/// down gracefully).
pub(crate) fn tools_running(status: Option<&str>) -> bool {
    matches!(
        status.map(str::trim),
        Some("guestToolsRunning" | "guestToolsExecutingScripts")
    )
}

/// Every snapshot of a `snapshot.rootSnapshotList` (`ArrayOfVirtualMachineSnapshotTree`), the
/// tree flattened depth-first, parents before their children.
pub(crate) fn flatten_snapshots(root_list: &Element) -> Vec<ObservedSnapshot> {
    /// One `VirtualMachineSnapshotTree`; each of its `childSnapshotList` elements is a subtree.
    fn walk(tree: &Element, out: &mut Vec<ObservedSnapshot>) {
        let Some(moref) = tree.child("snapshot").and_then(Element::as_moref) else {
            return;
        };
        out.push(ObservedSnapshot {
            moref: moref.value,
            name: tree.child_text("name").unwrap_or_default().to_owned(),
        });
        for child in tree.children_named("childSnapshotList") {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for tree in &root_list.children {
        walk(tree, &mut out);
    }
    out
}

/// The addresses VMware Tools reports: `guest.ipAddress` first, then every `ipAddress` of
/// every `guest.net` entry; IPv4 and IPv6 in canonical form, deduplicated, IPv6 link-local
/// (`fe80::/10`) and anything that is not an address left out.
pub(crate) fn guest_ips(ip_address: Option<&Element>, net: Option<&Element>) -> Vec<String> {
    let from_net = net
        .into_iter()
        .flat_map(|n| &n.children)
        .flat_map(|nic| nic.children_named("ipAddress"));
    let mut ips: Vec<String> = Vec::new();
    for el in ip_address.into_iter().chain(from_net) {
        let Ok(ip) = el.text.trim().parse::<std::net::IpAddr>() else {
            continue;
        };
        if let std::net::IpAddr::V6(v6) = ip
            && v6.segments()[0] & 0xffc0 == 0xfe80
        {
            continue;
        }
        let text = ip.to_string();
        if !ips.contains(&text) {
            ips.push(text);
        }
    }
    ips
}

/// Folds `ArrayOfOptionValue`: the last value of a key wins and an empty value means absent
/// (the simulator appends instead of replacing; a real host replaces and deletes on empty).
pub(crate) fn fold_extra_config(val: &Element) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for ov in &val.children {
        let Some(key) = ov.child_text("key") else {
            continue;
        };
        let value = ov.child_text("value").unwrap_or_default();
        if value.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), value.to_owned());
        }
    }
    map
}

/// Whether a device element is a network adapter.
pub(crate) fn is_nic(dev: &Element) -> bool {
    match dev.type_name() {
        Some(t) if NIC_TYPES.contains(&t) => true,
        _ => dev.child("macAddress").is_some() && dev.child("addressType").is_some(),
    }
}

/// Whether a device element is a virtual disk.
pub(crate) fn is_disk(dev: &Element) -> bool {
    dev.type_name() == Some("VirtualDisk")
}

/// Device key of a device element.
pub(crate) fn device_key(dev: &Element) -> Option<i32> {
    dev.child_parse("key")
}

/// Disks (by controller, unit) and NICs (by key) of a `config.hardware.device` list.
pub(crate) fn parse_devices(devices: &[Element]) -> (Vec<ObservedDisk>, Vec<ObservedNic>) {
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    for dev in devices {
        let key = device_key(dev).unwrap_or(0);
        if is_disk(dev) {
            let capacity_bytes = dev
                .child_parse::<u64>("capacityInBytes")
                .or_else(|| dev.child_parse::<u64>("capacityInKB").map(|kb| kb * 1024))
                .unwrap_or(0);
            disks.push(ObservedDisk {
                key,
                capacity_bytes,
                file_name: dev
                    .path(&["backing", "fileName"])
                    .map(|f| f.text.clone())
                    .unwrap_or_default(),
                controller_key: dev.child_parse("controllerKey").unwrap_or(0),
                unit_number: dev.child_parse("unitNumber").unwrap_or(0),
            });
        } else if is_nic(dev) {
            let backing = dev.child("backing");
            let port_group = backing
                .and_then(|b| {
                    b.child_text("deviceName")
                        .filter(|n| !n.is_empty())
                        .or_else(|| b.path(&["port", "portgroupKey"]).map(|e| e.text.as_str()))
                })
                .unwrap_or_default()
                .to_owned();
            nics.push(ObservedNic {
                key,
                port_group,
                mac_address: dev.child_text("macAddress").unwrap_or_default().to_owned(),
                adapter: dev.type_name().unwrap_or("VirtualEthernetCard").to_owned(),
            });
        }
    }
    disks.sort_by_key(|d| (d.controller_key, d.unit_number, d.key));
    nics.sort_by_key(|n| n.key);
    (disks, nics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::xml::parse;

    fn observe(objects: Vec<ObjectContent>) -> ObservedHost {
        observed_host(
            crate::host::HostAbout::default(),
            objects.into_iter().map(observed_object),
        )
    }

    #[test]
    fn observe_response_with_xmlschema_instance_prefix() {
        let (objects, token, not_authenticated) =
            parse_retrieve_response(include_str!("testdata/rpex_observe.xml"));
        assert!(!not_authenticated);
        assert_eq!(token, None);
        let host = observe(objects);
        assert_eq!(host.datastores, vec!["LocalDS_0"]);
        assert_eq!(host.networks, vec!["VM Network"]);
        let names: Vec<_> = host.vms.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["ha-host_VM0", "ha-host_VM1"]);
        let vm0 = &host.vms[0];
        assert_eq!(vm0.moref, "vm-9");
        assert!(!vm0.template);
        assert_eq!(vm0.cpu, 1);
        assert_eq!(vm0.memory_mib, 32);
        assert_eq!(vm0.guest_id, "otherGuest");
        assert_eq!(vm0.power, Some(PowerState::PoweredOn));
        assert_eq!(vm0.vmx_path, "[LocalDS_0] ha-host_VM0/ha-host_VM0.vmx");
        assert_eq!(
            vm0.disks,
            vec![ObservedDisk {
                key: 255511522,
                capacity_bytes: 1024 * 1024,
                file_name: "[LocalDS_0] ha-host_VM0/disk1.vmdk".into(),
                controller_key: 202,
                unit_number: 0,
            }]
        );
        assert_eq!(
            vm0.nics,
            vec![ObservedNic {
                key: 4000,
                port_group: "VM Network".into(),
                mac_address: "00:0c:29:38:61:38".into(),
                adapter: "VirtualE1000".into(),
            }]
        );
        assert_eq!(
            vm0.extra_config.get("govcsim").map(String::as_str),
            Some("TRUE")
        );
    }

    #[test]
    fn created_vm_with_vmxnet3_bytes_and_extra_config_duplicates() {
        let (objects, _, _) = parse_retrieve_response(include_str!("testdata/rpex_created_vm.xml"));
        let host = observe(objects);
        assert_eq!(host.vms.len(), 1);
        let vm = &host.vms[0];
        assert_eq!(vm.name, "web & db <01>");
        assert_eq!(vm.power, Some(PowerState::PoweredOff));
        assert_eq!(vm.disks.len(), 2);
        assert_eq!(vm.disks[0].capacity_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(vm.disks[1].unit_number, 1);
        assert_eq!(vm.nics.len(), 1);
        assert_eq!(vm.nics[0].adapter, "VirtualVmxnet3");
        assert_eq!(vm.nics[0].port_group, "Other PG");
        // Appended duplicates: last value wins, an empty last value deletes the key.
        assert_eq!(
            vm.extra_config.get("ceso.managed").map(String::as_str),
            Some("web-v2")
        );
        assert_eq!(vm.extra_config.get("guestinfo.userdata"), None);
        assert_eq!(vm.managed_name(), Some("web-v2"));
    }

    #[test]
    fn fold_extra_config_last_wins() {
        let val = parse(
            r#"<val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="ArrayOfOptionValue">
            <OptionValue><key>a</key><value x:type="xsd:string">1</value></OptionValue>
            <OptionValue><key>b</key><value x:type="xsd:string">x</value></OptionValue>
            <OptionValue><key>a</key><value x:type="xsd:string">2</value></OptionValue>
            <OptionValue><key>b</key><value x:type="xsd:string"></value></OptionValue>
            <OptionValue><key>c</key><value x:type="xsd:string">keep</value></OptionValue>
            </val>"#,
        )
        .expect("xml");
        let m = fold_extra_config(&val);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![
                ("a".to_owned(), "2".to_owned()),
                ("c".to_owned(), "keep".to_owned())
            ]
        );
    }

    #[test]
    fn missing_set_not_authenticated_is_detected() {
        let xml = include_str!("testdata/rpex_not_authenticated.xml");
        let (objects, _, not_authenticated) = parse_retrieve_response(xml);
        assert!(not_authenticated);
        // Also when the objects stay in the tree.
        let crate::esxi::envelope::Reply::Response(resp) =
            crate::esxi::envelope::unwrap_body(parse(xml).expect("xml")).expect("body")
        else {
            panic!("fault")
        };
        assert!(has_not_authenticated(&resp));
        assert_eq!(objects[0].missing[0].0, "name");
        assert_eq!(objects[0].missing[0].1.fault, NOT_AUTHENTICATED);
    }

    #[test]
    fn token_is_read() {
        let (objects, token, _) = parse_retrieve_response(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>1</token><objects><obj type="Datastore">ds-1</obj><propSet><name>name</name><val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:string">ds</val></propSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#,
        );
        assert_eq!(token.as_deref(), Some("1"));
        assert_eq!(objects[0].prop_text("name"), Some("ds"));
    }

    #[test]
    fn filter_spec_shape() {
        let view = MoRef::new("ContainerView", "session[a]b");
        let spec = FilterSpec::new()
            .props("Datastore", &["name"])
            .object(&view, true, |w| {
                traversal(w, "t", "ContainerView", "view", &["u"])
            });
        assert_eq!(
            spec,
            "<specSet><propSet><type>Datastore</type><pathSet>name</pathSet></propSet>\
             <objectSet><obj type=\"ContainerView\">session[a]b</obj><skip>true</skip>\
             <selectSet xsi:type=\"TraversalSpec\"><name>t</name><type>ContainerView</type>\
             <path>view</path><skip>false</skip><selectSet><name>u</name></selectSet></selectSet>\
             </objectSet></specSet>"
        );
    }

    fn val(xml: &str) -> Element {
        parse(&format!(
            r#"<val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" {xml}</val>"#
        ))
        .expect("xml")
    }

    #[test]
    fn guest_ips_merge_primary_and_per_nic_addresses_without_link_local() {
        let primary = val(r#"x:type="xsd:string">192.168.1.100"#);
        let net = val(r#"x:type="ArrayOfGuestNicInfo">
            <GuestNicInfo x:type="GuestNicInfo"><network>VM Network</network>
              <ipAddress>192.168.1.100</ipAddress><ipAddress>fe80::250:56ff:fe01:2</ipAddress>
              <ipAddress>2001:0db8:0:0::5</ipAddress><macAddress>00:50:56:01:00:02</macAddress>
              <connected>true</connected><deviceConfigId>4000</deviceConfigId>
              <ipConfig><ipAddress><ipAddress>192.168.1.100</ipAddress><prefixLength>24</prefixLength></ipAddress></ipConfig>
            </GuestNicInfo>
            <GuestNicInfo x:type="GuestNicInfo"><network>Backup</network>
              <ipAddress>10.0.0.5</ipAddress><ipAddress>garbage</ipAddress>
              <connected>true</connected><deviceConfigId>4001</deviceConfigId>
            </GuestNicInfo>"#);
        assert_eq!(
            guest_ips(Some(&primary), Some(&net)),
            ["192.168.1.100", "2001:db8::5", "10.0.0.5"]
        );
        // The simulator's guest.net before Tools runs: entries with a MAC and no address.
        let no_ip = val(
            r#"x:type="ArrayOfGuestNicInfo"><GuestNicInfo><network>VM Network</network><macAddress>00:0c:29:38:61:38</macAddress><connected>true</connected><deviceConfigId>4000</deviceConfigId></GuestNicInfo>"#,
        );
        assert!(guest_ips(None, Some(&no_ip)).is_empty());
        assert!(guest_ips(None, None).is_empty());
    }

    #[test]
    fn observe_reads_firmware_and_guest_ips() {
        let vm = |firmware: &str| ObjectContent {
            obj: MoRef::new("VirtualMachine", "3"),
            props: vec![
                ("name".to_owned(), Element::leaf("val", "web-01")),
                ("config.firmware".to_owned(), Element::leaf("val", firmware)),
                (
                    "guest.ipAddress".to_owned(),
                    Element::leaf("val", "fd00::10"),
                ),
            ],
            missing: vec![],
        };
        let efi = observed_vm(&vm("efi"));
        assert_eq!(efi.firmware, Some(crate::host::Firmware::Efi));
        assert_eq!(efi.guest_ips, ["fd00::10"]);
        assert_eq!(
            observed_vm(&vm("bios")).firmware,
            Some(crate::host::Firmware::Bios)
        );
        assert_eq!(observed_vm(&vm("")).firmware, None);
        assert!(VM_PATHS.contains(&"config.firmware"));
        assert!(VM_PATHS.contains(&"guest.net") && VM_PATHS.contains(&"guest.ipAddress"));
    }

    #[test]
    fn observe_reads_annotation_hot_add_tools_and_the_snapshot_tree_parents_first() {
        let tree = val(r#"x:type="ArrayOfVirtualMachineSnapshotTree">
            <VirtualMachineSnapshotTree>
              <snapshot type="VirtualMachineSnapshot">snapshot-1</snapshot>
              <vm type="VirtualMachine">vm-3</vm><name>base</name><id>1</id>
              <childSnapshotList>
                <snapshot type="VirtualMachineSnapshot">snapshot-2</snapshot>
                <name>before upgrade</name>
                <childSnapshotList>
                  <snapshot type="VirtualMachineSnapshot">snapshot-4</snapshot>
                  <name>ceso-clone-web-02</name>
                </childSnapshotList>
              </childSnapshotList>
              <childSnapshotList>
                <snapshot type="VirtualMachineSnapshot">snapshot-3</snapshot>
                <name>sibling</name>
              </childSnapshotList>
            </VirtualMachineSnapshotTree>
            <VirtualMachineSnapshotTree>
              <snapshot type="VirtualMachineSnapshot">snapshot-5</snapshot><name>second root</name>
            </VirtualMachineSnapshotTree>"#);
        let o = ObjectContent {
            obj: MoRef::new("VirtualMachine", "3"),
            props: vec![
                ("name".to_owned(), Element::leaf("val", "web-01")),
                (
                    "config.annotation".to_owned(),
                    Element::leaf("val", "Owner: ops\nTicket 42 "),
                ),
                (
                    "config.cpuHotAddEnabled".to_owned(),
                    Element::leaf("val", "true"),
                ),
                (
                    "config.memoryHotAddEnabled".to_owned(),
                    Element::leaf("val", "false"),
                ),
                (
                    "guest.toolsRunningStatus".to_owned(),
                    Element::leaf("val", "guestToolsRunning"),
                ),
                ("snapshot.rootSnapshotList".to_owned(), tree),
            ],
            missing: vec![],
        };
        let vm = observed_vm(&o);
        assert_eq!(vm.annotation, "Owner: ops\nTicket 42 ");
        assert!(vm.cpu_hot_add);
        assert!(!vm.memory_hot_add);
        assert!(vm.tools_running);
        let snapshots: Vec<(&str, &str)> = vm
            .snapshots
            .iter()
            .map(|s| (s.moref.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            snapshots,
            [
                ("snapshot-1", "base"),
                ("snapshot-2", "before upgrade"),
                ("snapshot-4", "ceso-clone-web-02"),
                ("snapshot-3", "sibling"),
                ("snapshot-5", "second root"),
            ]
        );
        // Properties a host leaves unset (no snapshot, no Tools) are absent, not errors.
        let bare = observed_vm(&ObjectContent {
            obj: MoRef::new("VirtualMachine", "4"),
            props: vec![("name".to_owned(), Element::leaf("val", "bare"))],
            missing: vec![],
        });
        assert_eq!(
            (
                bare.annotation.as_str(),
                bare.cpu_hot_add,
                bare.tools_running
            ),
            ("", false, false)
        );
        assert!(bare.snapshots.is_empty());
        assert!(!tools_running(Some("guestToolsNotRunning")));
        assert!(tools_running(Some(" guestToolsExecutingScripts ")));
    }
}
