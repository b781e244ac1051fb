//! Builds small Ubuntu-cloud-image-like OVAs for tests (qemu-img streamOptimized VMDK + OVF).
//!
//! Requires `qemu-img` (Debian package `qemu-utils`); tests fail naming the package when it is
//! missing.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: usize = 1 << 20;

/// What [`build_ova_with`] puts into the OVA.
#[derive(Debug, Clone)]
pub struct OvaSpec {
    /// Virtual system name; also the base of the file names in the OVA.
    pub name: String,
    /// Size of the raw disk image, rounded up to whole MiB (also the OVF disk capacity).
    pub disk_bytes: usize,
    /// `bios` or `efi`, written as `vmw:Config vmw:key="firmware"`.
    pub firmware: String,
    pub cpu: u32,
    pub memory_mib: u64,
    /// Whether to add a `.mf` manifest with SHA256 checksums.
    pub manifest: bool,
}

impl OvaSpec {
    /// 2 vCPUs, 2048 MiB, with a manifest.
    pub fn new(name: &str, disk_bytes: usize, firmware: &str) -> Self {
        Self {
            name: name.to_owned(),
            disk_bytes,
            firmware: firmware.to_owned(),
            cpu: 2,
            memory_mib: 2048,
            manifest: true,
        }
    }
}

/// Builds `dir/<name>.ova`: an OVF descriptor shaped like Canonical's Ubuntu cloud image
/// (2 vCPUs, 2 GiB, paravirtual SCSI, IDE CD-ROM, vmxnet3 on "VM Network", cloud-init product
/// properties, `firmware`), a SHA256 manifest, and a stream-optimized VMDK of a raw disk of
/// `disk_bytes` (rounded up to whole MiB) with known non-zero content; OVF first.
pub fn build_ova(dir: &Path, name: &str, disk_bytes: usize, firmware: &str) -> PathBuf {
    build_ova_with(dir, &OvaSpec::new(name, disk_bytes, firmware))
}

/// [`build_ova`] with every choice spelled out.
pub fn build_ova_with(dir: &Path, spec: &OvaSpec) -> PathBuf {
    let name = &spec.name;
    let raw_bytes = spec.disk_bytes.div_ceil(MIB).max(1) * MIB;
    let raw = dir.join(format!("{name}.raw"));
    write_disk_content(&raw, raw_bytes);
    let vmdk_name = format!("{name}-disk1.vmdk");
    let vmdk = dir.join(&vmdk_name);
    let output = Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
        ])
        .arg(&raw)
        .arg(&vmdk)
        .output()
        .unwrap_or_else(|e| panic!("running qemu-img: {e}; install the Debian package qemu-utils"));
    assert!(
        output.status.success(),
        "qemu-img convert failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::remove_file(&raw).ok();
    // The VMDK is streamed (hashed, then copied into the tar), never held in memory: a
    // benchmark measures the memory of a `ceso` forked from this process.
    let vmdk_size = fs::metadata(&vmdk).expect("the VMDK").len() as usize;
    let ovf_name = format!("{name}.ovf");
    let ovf = descriptor(spec, &vmdk_name, vmdk_size, raw_bytes);
    let mut files: Vec<(String, Vec<u8>)> = vec![(ovf_name.clone(), ovf.into_bytes())];
    if spec.manifest {
        let manifest = format!(
            "SHA256({ovf_name})= {}\nSHA256({vmdk_name})= {}\n",
            sha256(&files[0].1),
            sha256_file(&vmdk)
        );
        files.push((format!("{name}.mf"), manifest.into_bytes()));
    }
    let ova = dir.join(format!("{name}.ova"));
    let file = File::create(&ova).unwrap_or_else(|e| panic!("creating {}: {e}", ova.display()));
    let mut builder = tar::Builder::new(file);
    for (file_name, content) in &files {
        builder
            .append_data(
                &mut tar_header(content.len() as u64),
                file_name,
                content.as_slice(),
            )
            .expect("appending to the OVA");
    }
    let disk = File::open(&vmdk).expect("the VMDK");
    builder
        .append_data(&mut tar_header(vmdk_size as u64), &vmdk_name, disk)
        .expect("appending the VMDK");
    builder.finish().expect("finishing the OVA");
    fs::remove_file(&vmdk).ok();
    ova
}

fn tar_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    header
}

/// Writes a tar archive of `(name, content)` in order.
pub fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) {
    let file = File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let mut builder = tar::Builder::new(file);
    for (name, content) in files {
        builder
            .append_data(
                &mut tar_header(content.len() as u64),
                name,
                content.as_slice(),
            )
            .expect("appending to the OVA");
    }
    builder.finish().expect("finishing the OVA");
}

/// The files of an OVA with their sizes, in archive order.
pub fn ova_files(ova: &Path) -> Vec<(String, u64)> {
    let file = File::open(ova).unwrap_or_else(|e| panic!("opening {}: {e}", ova.display()));
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .expect("tar entries")
        .map(|entry| {
            let entry = entry.expect("tar entry");
            (
                entry.path().expect("path").to_string_lossy().into_owned(),
                entry.size(),
            )
        })
        .collect()
}

/// Size of the OVA's VMDK (the bytes an import uploads).
pub fn ova_disk_size(ova: &Path) -> u64 {
    ova_files(ova)
        .into_iter()
        .find(|(name, _)| name.ends_with(".vmdk"))
        .map(|(_, size)| size)
        .expect("the OVA holds a VMDK")
}

/// Writes `bytes` of recognisable, non-zero, not trivially compressible content to `path`, a
/// megabyte at a time.
fn write_disk_content(path: &Path, bytes: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(
        File::create(path).unwrap_or_else(|e| panic!("writing {}: {e}", path.display())),
    );
    let mut state: u32 = 0x2545_f491;
    let mut chunk = vec![0u8; MIB];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB);
        for byte in &mut chunk[..n] {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = (state >> 24) as u8 | 1;
        }
        out.write_all(&chunk[..n]).expect("writing the raw disk");
        left -= n;
    }
    out.flush().expect("writing the raw disk");
}

/// SHA-256 of a file, read in pieces.
fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; MIB];
    loop {
        let n = file.read(&mut buffer).expect("reading");
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    hex(context.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn descriptor(spec: &OvaSpec, vmdk_name: &str, vmdk_size: usize, capacity: usize) -> String {
    let OvaSpec {
        name,
        firmware,
        cpu,
        memory_mib,
        ..
    } = spec;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!--Generated by VMware ovftool 4.1.0 (build-2982904), shaped like Canonical's Ubuntu cloud image-->
<Envelope vmw:buildId="build-2982904" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk_name}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity_mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <ProductSection ovf:required="false">
      <Info>Cloud-Init customization</Info>
      <Product>{name}</Product>
      <Property ovf:key="instance-id" ovf:type="string" ovf:userConfigurable="true" ovf:value="id-ovf">
        <Label>A Unique Instance ID for this instance</Label>
        <Description>Specifies the instance id.  This is required and used to determine if the machine should take "first boot" actions</Description>
      </Property>
      <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="ubuntuguest">
        <Description>Specifies the hostname for the appliance</Description>
      </Property>
      <Property ovf:key="seedfrom" ovf:type="string" ovf:userConfigurable="true">
        <Label>Url to seed instance data from</Label>
      </Property>
      <Property ovf:key="public-keys" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>ssh public keys</Label>
      </Property>
      <Property ovf:key="user-data" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Encoded user-data</Label>
        <Description>In order to fit into a xml attribute, this value is base64 encoded . It will be decoded, and then processed normally as user-data.</Description>
      </Property>
      <Property ovf:key="password" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Default User's password</Label>
      </Property>
    </ProductSection>
    <VirtualHardwareSection ovf:transport="iso">
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpu} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpu}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{memory_mib}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>VirtualIDEController 1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>VirtualIDEController 0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>VirtualVideoCard</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceType>24</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="enable3DSupport" vmw:value="false"/>
        <vmw:Config ovf:required="false" vmw:key="useAutoDetect" vmw:value="false"/>
        <vmw:Config ovf:required="false" vmw:key="videoRamSizeInKB" vmw:value="4096"/>
      </Item>
      <Item ovf:required="false">
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>VirtualVMCIDevice</rasd:ElementName>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:ResourceSubType>vmware.vmci</rasd:ResourceSubType>
        <rasd:ResourceType>1</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="allowUnrestrictedCommunication" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="backing.writeThrough" vmw:value="false"/>
      </Item>
      <Item ovf:required="false">
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>CD-ROM 1</rasd:ElementName>
        <rasd:InstanceID>9</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceSubType>vmware.cdrom.remotepassthrough</rasd:ResourceSubType>
        <rasd:ResourceType>15</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="backing.exclusive" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>11</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="wakeOnLanEnabled" vmw:value="true"/>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="cpuHotAddEnabled" vmw:value="false"/>
      <vmw:Config ovf:required="false" vmw:key="cpuHotRemoveEnabled" vmw:value="false"/>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="{firmware}"/>
      <vmw:Config ovf:required="false" vmw:key="memoryHotAddEnabled" vmw:value="false"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
    </VirtualHardwareSection>
    <AnnotationSection ovf:required="false">
      <Info>For more information, see http://ubuntu.com</Info>
      <Annotation>This is Ubuntu Server.</Annotation>
    </AnnotationSection>
  </VirtualSystem>
</Envelope>
"#,
        capacity_mib = capacity / MIB,
    )
}
