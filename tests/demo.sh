#!/usr/bin/env bash
# The demo: starts a local ESXi simulator (TLS on 127.0.0.1:8989 with the demo certificate that
# examples/inventory/hosts.yaml pins, user root, VMware Tools emulation), imports a small
# stand-in for Ubuntu's cloud image OVA as the template the example names, then validates, plans
# and applies examples/inventory, plans again (no changes), and shows the VMs, the IP
# allocations, takes, verifies and restores a backup of db-01, watches a copy of the inventory
# while one of its manifests is edited (the change is applied), and shows the audit log.
set -euo pipefail
cd "$(dirname "$0")/.."
esxsim=$(bash tests/setup.sh | tail -n 1)
cargo build --locked --quiet
ceso=${CARGO_TARGET_DIR:-target}/debug/ceso

export ESXI_PASSWORD=${ESXI_PASSWORD:-demo-password}
export CESO_STATE=${CESO_STATE:-.ceso/demo-state.redb}
run_dir=$(mktemp -d)
"$esxsim" -listen 127.0.0.1:8989 -tls-cert tests/esxsim/demo/demo-cert.pem -tls-key tests/esxsim/demo/demo-key.pem \
  -user root -pass "$ESXI_PASSWORD" -datastore-dir "$run_dir/datastore" -guest-tools \
  >"$run_dir/esxsim.out" 2>"$run_dir/esxsim.err" </dev/null &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$run_dir"' EXIT
for _ in $(seq 100); do
  grep -q ESXSIM_READY=1 "$run_dir/esxsim.out" 2>/dev/null && break
  kill -0 $sim 2>/dev/null || { cat "$run_dir/esxsim.err" >&2; echo "demo: the simulator did not start (is port 8989 free?)" >&2; exit 1; }
  sleep 0.1
done
grep -q ESXSIM_READY=1 "$run_dir/esxsim.out" || { echo "demo: the simulator did not become ready" >&2; exit 1; }

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
# A stand-in for ubuntu-24.04-server-cloudimg-amd64.ova: an OVF descriptor and a
# stream-optimized VMDK (qemu-img), in a tar, descriptor first.
make_ova() {
  local dir=$run_dir/ova
  mkdir -p "$dir"
  qemu-img create -q -f raw "$dir/disk.raw" 64M
  qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$dir/disk.raw" "$dir/ubuntu-cloudimg-disk1.vmdk"
  local size
  size=$(stat -c %s "$dir/ubuntu-cloudimg-disk1.vmdk")
  cat >"$dir/ubuntu-cloudimg.ovf" <<OVF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="ubuntu-cloudimg-disk1.vmdk" ovf:id="file1" ovf:size="$size"/></References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"><Description>VM Network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="ubuntu-cloudimg"><Info>Ubuntu cloud image (demo stand-in)</Info><Name>ubuntu-cloudimg</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>OS</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>Hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2048MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI Controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard Disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Ethernet 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
OVF
  tar -C "$dir" -cf "$run_dir/ubuntu-cloudimg.ova" ubuntu-cloudimg.ovf ubuntu-cloudimg-disk1.vmdk
}
make_ova
# `template import` writes the Template manifest into the inventory it is given; the example's
# own (templates/ubuntu-24.04.yaml) names the same disk, so import into a scratch inventory.
mkdir -p "$run_dir/scratch"
cp examples/inventory/hosts.yaml "$run_dir/scratch/"
step ceso template import ubuntu-cloudimg.ova --name ubuntu-24.04 --host esxi-01
"$ceso" template import "$run_dir/ubuntu-cloudimg.ova" --name ubuntu-24.04 --host esxi-01 --inventory "$run_dir/scratch"

step ceso validate examples/inventory
"$ceso" validate examples/inventory
step ceso plan examples/inventory
status=0; "$ceso" plan examples/inventory || status=$?
[ "$status" -eq 2 ] || { echo "demo: expected exit code 2 (changes pending), got $status" >&2; exit 1; }
step ceso apply examples/inventory --auto-approve
"$ceso" apply examples/inventory --auto-approve
step ceso plan examples/inventory
"$ceso" plan examples/inventory
step ceso vm list --inventory examples/inventory
"$ceso" vm list --inventory examples/inventory
step ceso ip list --inventory examples/inventory
"$ceso" ip list --inventory examples/inventory
step ceso backup create db-01 --inventory examples/inventory
"$ceso" backup create db-01 --inventory examples/inventory
step ceso backup list --inventory examples/inventory
"$ceso" backup list --inventory examples/inventory
backup_id=$("$ceso" backup list db-01 --inventory examples/inventory --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
step ceso backup verify "$backup_id" --inventory examples/inventory
"$ceso" backup verify "$backup_id" --inventory examples/inventory
step ceso backup restore "$backup_id" --inventory examples/inventory --yes
"$ceso" backup restore "$backup_id" --inventory examples/inventory --yes
# watch: a copy of the inventory (the same VMs, so in sync) watched with --apply; an edit of
# web-01's memory is picked up and applied; SIGTERM stops it cleanly.
cp -r examples/inventory "$run_dir/watched"
step ceso watch inventory --apply --interval 1h --no-backups "  # in the background; then web-01's memory is edited"
"$ceso" watch "$run_dir/watched" --apply --interval 1h --no-backups >"$run_dir/watch.out" 2>&1 &
watcher=$!
trap 'kill $watcher $sim 2>/dev/null; wait $watcher $sim 2>/dev/null; rm -rf "$run_dir"' EXIT
wait_for_line() {
  for _ in $(seq 600); do
    grep -q "$1" "$run_dir/watch.out" && return 0
    kill -0 $watcher 2>/dev/null || break
    sleep 0.1
  done
  cat "$run_dir/watch.out" >&2
  echo "demo: watch did not report: $1" >&2
  exit 1
}
wait_for_line "reconcile (start)"
sed -i '0,/memory: 4GiB/s//memory: 6GiB/' "$run_dir/watched/web.yaml"
wait_for_line "reconcile (manifest changed: web.yaml)"
kill -TERM $watcher
status=0; wait $watcher || status=$?
cat "$run_dir/watch.out"
[ "$status" -eq 0 ] || { echo "demo: watch exited with $status after SIGTERM" >&2; exit 1; }
grep -q "reconcile (manifest changed: web.yaml): applied" "$run_dir/watch.out" || { echo "demo: the edit was not applied" >&2; exit 1; }
step ceso status inventory
"$ceso" status "$run_dir/watched"
step ceso audit list
"$ceso" audit list
step ceso audit verify
"$ceso" audit verify
echo
echo "demo: done. The simulator is stopped now; the audit log stays in $CESO_STATE."
