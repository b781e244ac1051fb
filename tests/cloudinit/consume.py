#!/usr/bin/python3
"""Feeds guestinfo values to cloud-init's own VMware datasource and prints what it made of them.

Run with Debian's /usr/bin/python3 (package `cloud-init`, 22.4). The values come from the
environment exactly as the datasource reads them in its environment-variable mode:
VMX_GUESTINFO=1 and VMX_GUESTINFO_METADATA, VMX_GUESTINFO_METADATA_ENCODING,
VMX_GUESTINFO_USERDATA, VMX_GUESTINFO_USERDATA_ENCODING (and the VENDORDATA pair), i.e. the
extraConfig key `guestinfo.x.y` as `VMX_GUESTINFO_X_Y`.

Prints one JSON object on stdout:

  found               get_data()'s answer (false: the datasource found no guestinfo)
  instance_id         get_instance_id() (null when the metadata has none)
  local_hostname      the metadata's local-hostname
  hostname, fqdn      what cc_set_hostname would set (util.get_hostname_fqdn over the
                      user-data and the datasource)
  public_keys         get_public_ssh_keys()
  network             the datasource's network_config (null when the metadata has none; the
                      guest would then fall back to DHCP on its first NIC)
  network_error       the error cloud-init raised parsing that network config (into its
                      network state, as for any renderer) or rendering it, or ""
  netplan_yaml        what cloud-init's netplan renderer writes to
                      /etc/netplan/50-cloud-init.yaml from it ("" without network)
  user_data           the decoded user-data (null when absent)
  user_data_valid     cloud-init's own check of it (`cloud-init schema --config-file`: the
                      #cloud-config header, YAML syntax, the strict JSON schema)
  schema_errors       the problems it found, one per line ("" when valid)
  schema_deprecations deprecated keys it reported, one per line

Nothing on the real system is read for the result or written: paths point into a temporary
directory, and the guest's interfaces (which cloud-init would look up by MAC) are taken to be
unknown, so interface names come from `set-name` or the netplan id.

Exit status 0 with the JSON; 3 when cloud-init or jsonschema is missing (message on stderr);
anything else is a crash of this script.
"""

import contextlib
import copy
import io
import json
import logging
import os
import sys
import tempfile
from unittest import mock

try:
    import jsonschema  # noqa: F401  (without it, cloud-init silently skips schema validation)
    from cloudinit import cloud, distros, helpers, settings, util
    from cloudinit.config import schema
    from cloudinit.net import netplan, network_state
    from cloudinit.sources import DataSourceVMware
except ImportError as error:
    print(
        f"{sys.executable} cannot import cloud-init ({error}): install the Debian packages "
        "`cloud-init` and `python3-jsonschema` (apt-get install -y cloud-init)",
        file=sys.stderr,
    )
    sys.exit(3)

NETPLAN_PATH = "etc/netplan/50-cloud-init.yaml"


def problems(schema_problems):
    return "\n".join(f"{path}: {message}" for path, message in schema_problems or ())


def check_user_data(user_data, tmp):
    """cloud-init's `schema --config-file` check; returns (valid, errors, deprecations)."""
    path = os.path.join(tmp, "user-data")
    with open(path, "w", encoding="utf-8") as file:
        file.write(user_data)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            schema.validate_cloudconfig_file(path, schema.get_schema())
    except schema.SchemaValidationError as error:
        return (
            not error.has_errors(),
            problems(error.schema_errors),
            problems(error.schema_deprecations),
        )
    except RuntimeError as error:  # e.g. "Cloud-config is not a YAML dict."
        return False, str(error), ""
    deprecations = printed.getvalue().strip()
    deprecations = deprecations.removeprefix("Cloud config schema deprecations:").strip()
    return True, "", deprecations


def render_netplan(network_config, distro, tmp):
    """Parses the network config and renders it with cloud-init's netplan renderer.

    Returns (yaml, error). For netplan, cloud-init passes a v2 config through unparsed, so it
    is first parsed into a network state without a renderer, as for every other renderer
    (ENI, networkd, sysconfig): that is where cloud-init refuses what it cannot use (e.g. a
    route `to: default`).
    """
    try:
        network_state.parse_net_config_data(network_config, skip_broken=False)
        renderer = netplan.Renderer(
            {
                "netplan_path": NETPLAN_PATH,
                "netplan_header": distro.renderer_configs["netplan"]["netplan_header"],
                "postcmds": False,
                "clean_default": False,
                "features": [],
            }
        )
        state = network_state.parse_net_config_data(
            network_config, skip_broken=False, renderer=renderer
        )
        renderer.render_network_state(state, target=tmp)
    except Exception as error:  # cloud-init's own refusal, reported to the test
        return "", f"{type(error).__name__}: {error}"
    with open(os.path.join(tmp, NETPLAN_PATH), encoding="utf-8") as file:
        return file.read(), ""


def consume(tmp):
    paths = helpers.Paths(
        {
            "cloud_dir": os.path.join(tmp, "var/lib/cloud"),
            "run_dir": os.path.join(tmp, "run/cloud-init"),
            "templates_dir": os.path.join(tmp, "etc/cloud/templates"),
            "docs_dir": os.path.join(tmp, "usr/share/doc/cloud-init"),
        }
    )
    sys_cfg = copy.deepcopy(settings.CFG_BUILTIN)
    distro = distros.fetch("ubuntu")("ubuntu", {}, paths)
    datasource = DataSourceVMware.DataSourceVMware(sys_cfg, distro, paths)
    found = datasource.get_data()
    result = {"found": bool(found)}
    if not found:
        return result

    user_data = datasource.userdata_raw
    if isinstance(user_data, bytes):
        user_data = user_data.decode("utf-8")
    valid, errors, deprecations = (
        check_user_data(user_data, tmp) if user_data else (False, "no user-data", "")
    )
    user_config = {}
    if valid:
        user_config = util.load_yaml(user_data) or {}
    guest = cloud.Cloud(datasource, paths, sys_cfg, distro, helpers.Runners(paths))
    names = util.get_hostname_fqdn(user_config, guest)

    network = None
    netplan_yaml, network_error = "", ""
    if "network" in datasource.metadata:
        network = datasource.network_config
        netplan_yaml, network_error = render_netplan(network, distro, tmp)

    result.update(
        {
            # Without one in the metadata, cloud-init would read the DMI product UUID.
            "instance_id": (
                datasource.get_instance_id() if "instance-id" in datasource.metadata else None
            ),
            "local_hostname": datasource.metadata.get("local-hostname"),
            "hostname": names.hostname,
            "fqdn": names.fqdn,
            "public_keys": datasource.get_public_ssh_keys(),
            "network": network,
            "network_error": network_error,
            "netplan_yaml": netplan_yaml,
            "user_data": user_data,
            "user_data_valid": valid,
            "schema_errors": errors,
            "schema_deprecations": deprecations,
        }
    )
    return result


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ceso-cloudinit-") as tmp, mock.patch.object(
        network_state, "get_interfaces_by_mac", return_value={}
    ), mock.patch.object(network_state, "find_interface_name_from_mac", return_value=None):
        result = consume(tmp)
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
