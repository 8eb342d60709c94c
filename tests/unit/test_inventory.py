"""fleet.config.inventory on real Ansible inventories (tests/data/inventories),
read by Ansible itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from fleet.config.inventory import Inventory, load_inventory
from fleet.errors import InventoryError
from fleet.hosts import Host, JumpHost, Secret

DATA = Path(__file__).resolve().parent.parent / "data" / "inventories"
YAML_LAB = DATA / "yaml_lab" / "hosts.yml"
INI_LAB = DATA / "ini_lab" / "hosts.ini"
BAD = DATA / "bad"


def names(inv: Inventory) -> list[str]:
    return [h.name for h in inv.hosts]


# ---- YAML with group_vars/ and host_vars/ ------------------------------------------------------


def test_yaml_hosts_groups_and_order() -> None:
    inv = load_inventory([YAML_LAB])
    assert inv.sources == (YAML_LAB,)
    assert names(inv) == ["localhost", "epyc1", "epyc2", "xeon1"]
    assert dict(inv.groups) == {
        "controller": ("localhost",),
        "epyc": ("epyc1", "epyc2"),
        "numa": ("epyc1", "epyc2", "xeon1"),
        "xeon": ("xeon1",),
    }
    assert inv.host("epyc2").groups == ("epyc", "numa")


def test_yaml_vars_from_inventory_group_vars_and_host_vars() -> None:
    inv = load_inventory([YAML_LAB])
    epyc1, epyc2 = inv.host("epyc1"), inv.host("epyc2")
    assert (epyc1.address, epyc1.port, epyc1.connection) == ("192.0.2.11", 22, "ssh")
    assert epyc1.user == "root"  # host_vars/epyc1.yml beats group_vars/all.yml
    assert epyc2.user == "bench"
    assert epyc2.port == 2202
    assert isinstance(epyc2.port, int) and type(epyc2.port) is int
    assert epyc1.password == Secret("s3cr3t-hunter2")
    assert epyc2.password is None


def test_relative_key_file_is_relative_to_the_inventory_dir() -> None:
    epyc1 = load_inventory([YAML_LAB]).host("epyc1")
    assert epyc1.key_files == (str(DATA / "yaml_lab" / "keys" / "bench_ed25519"),)


def test_known_hosts_and_strict_checking_from_ssh_common_args() -> None:
    inv = load_inventory([YAML_LAB])
    epyc1, xeon1 = inv.host("epyc1"), inv.host("xeon1")
    # "-o UserKnownHostsFile=~/lab/known_hosts -o StrictHostKeyChecking=yes" (group_vars)
    assert epyc1.known_hosts_files == (os.path.expanduser("~/lab/known_hosts"),)
    assert epyc1.accept_new_host_keys is False
    # "-oUserKnownHostsFile='/etc/fleet/known_hosts lab_known_hosts' -oStrict...=accept-new"
    assert xeon1.known_hosts_files == ("/etc/fleet/known_hosts",
                                       str(DATA / "yaml_lab" / "lab_known_hosts"))
    assert xeon1.accept_new_host_keys is True
    assert xeon1.key_files == ("/etc/fleet/id_ed25519",)
    assert xeon1.connect_timeout_seconds == 25.0


def test_templated_ansible_host_is_rendered() -> None:
    assert load_inventory([YAML_LAB]).host("xeon1").address == "xeon1.lab.example"


def test_local_connection_and_default_address() -> None:
    local = load_inventory([DATA / "local.yml"])
    assert names(local) == ["localhost"]
    host = local.hosts[0]
    assert (host.connection, host.address, host.user) == ("local", "localhost", None)


def test_inventory_directory_as_source() -> None:
    inv = load_inventory([DATA / "yaml_lab"])
    assert names(inv) == ["localhost", "epyc1", "epyc2", "xeon1"]
    assert inv.host("epyc1").password == Secret("s3cr3t-hunter2")


# ---- INI with children and group vars ---------------------------------------------------------


def test_ini_children_groups_and_group_vars() -> None:
    inv = load_inventory([INI_LAB])
    assert names(inv) == ["epyc3", "xeon2"]
    assert dict(inv.groups) == {"epyc": ("epyc3",), "intel": ("xeon2",),
                                "numa": ("epyc3", "xeon2"), "xeon": ("xeon2",)}
    epyc3, xeon2 = inv.host("epyc3"), inv.host("xeon2")
    assert (epyc3.address, epyc3.port, epyc3.user) == ("192.0.2.13", 2203, "ops")
    assert epyc3.connection == "ssh"  # ansible_connection=paramiko
    assert xeon2.password == Secret("pa55-w0rd")  # ansible_ssh_pass
    # -o UserKnownHostsFile /srv/fleet/known_hosts -o "StrictHostKeyChecking no"
    assert xeon2.known_hosts_files == ("/srv/fleet/known_hosts",)
    assert xeon2.accept_new_host_keys is True


def test_multiple_sources_are_merged_like_ansible() -> None:
    inv = load_inventory([YAML_LAB, INI_LAB])
    assert inv.sources == (YAML_LAB, INI_LAB)
    assert names(inv) == ["localhost", "epyc1", "epyc2", "epyc3", "xeon1", "xeon2"]
    # group "xeon" is shared, so [intel:children] xeon now also holds the YAML's xeon1
    assert inv.groups["intel"] == ("xeon1", "xeon2")
    assert inv.groups["epyc"] == ("epyc1", "epyc2", "epyc3")


# ---- --limit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "expected"), [
    ("epyc", ["epyc1", "epyc2"]),
    ("epyc*", ["epyc1", "epyc2"]),
    ("epyc1:xeon1", ["epyc1", "xeon1"]),
    ("numa:!epyc2", ["epyc1", "xeon1"]),
    ("numa:&xeon", ["xeon1"]),
    ("all:!controller", ["epyc1", "epyc2", "xeon1"]),
    ("~epyc[12]", ["epyc1", "epyc2"]),
    ("localhost", ["localhost"]),
])
def test_limit_uses_ansible_patterns(limit: str, expected: list[str]) -> None:
    inv = load_inventory([YAML_LAB], limit=limit)
    assert names(inv) == expected
    assert set(inv.groups) == {g for h in inv.hosts for g in h.groups}


def test_limit_matching_nothing_lists_the_hosts() -> None:
    with pytest.raises(InventoryError) as err:
        load_inventory([YAML_LAB], limit="epyc9")
    assert str(err.value).startswith(
        "no host matches --limit 'epyc9' (hosts: localhost, epyc1, epyc2, xeon1)")


def test_limit_with_one_unknown_part_is_an_error_not_ignored() -> None:
    with pytest.raises(InventoryError, match=r"no host matches 'epcy' in --limit 'xeon1:epcy'"):
        load_inventory([YAML_LAB], limit="xeon1:epcy")


def test_limit_whose_intersection_is_empty() -> None:
    with pytest.raises(InventoryError, match=r"no host matches --limit 'epyc:&xeon'"):
        load_inventory([YAML_LAB], limit="epyc:&xeon")


@pytest.mark.parametrize(("limit", "expected"), [
    ("epyc[0:1]", ["epyc1", "epyc2"]),
    ("epyc[1]", ["epyc2"]),
    ("epyc[-1]", ["epyc2"]),
    ("numa[1:]", ["epyc2", "xeon1"]),
    ("epyc*:!epyc2", ["epyc1"]),
    ("epyc1,xeon1", ["epyc1", "xeon1"]),
    (" epyc1 , xeon1 ", ["epyc1", "xeon1"]),
    ("numa,&epyc,!epyc1", ["epyc2"]),
    ("~(epyc|xeon)1", ["epyc1", "xeon1"]),
    ("~epyc.*:!epyc2", ["epyc1"]),
    ("ep[xy]c*", ["epyc1", "epyc2"]),
    ("all", ["localhost", "epyc1", "epyc2", "xeon1"]),
])
def test_valid_patterns_select_what_ansible_selects(limit: str, expected: list[str]) -> None:
    assert names(load_inventory([YAML_LAB], limit=limit)) == expected


@pytest.mark.parametrize(("limit", "says"), [
    ("", "is empty"),
    (" ", "is empty"),
    (",", "empty part between commas"),
    ("epyc1,,xeon1", "empty part between commas"),
    ("epyc1,", "empty part between commas"),
    ("[", "unbalanced brackets"),
    ("epyc[", "unbalanced brackets"),
    ("epyc]", "unbalanced brackets"),
    ("epyc1,epyc[0", "unbalanced brackets in 'epyc[0'"),
    ("~[", "invalid regular expression '~['"),
    ("epyc1,~(", "invalid regular expression '~('"),
    ("~web(?:1|2)", "regex that Ansible would split at ':'"),
    ("epyc[x:y]", "malformed range 'epyc[x:y]'"),
    ("epyc[:1]", "malformed range"),
    ("epyc[0:1:2]", "malformed range"),
    ("epyc[]", "empty brackets"),
    ("epyc[12]", "no host at index 12 of 'epyc' (2 hosts)"),
    ("!", "'!' with nothing after it"),
    ("numa:&", "'&' with nothing after it"),
    ("~", "'~' with nothing after it"),
])
def test_limits_ansible_would_read_as_everything_are_refused(limit: str, says: str) -> None:
    message = one_line_error([YAML_LAB], limit)
    assert message.startswith(f"--limit {limit!r} ")
    assert says in message
    assert "(" in message and message.endswith(")")  # what to write instead


# ---- bad input: one line, says where ------------------------------------------------------------


def one_line_error(sources: list[Path], limit: str | None = None) -> str:
    with pytest.raises(InventoryError) as err:
        load_inventory(sources, limit=limit)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_file() -> None:
    missing = DATA / "nope.yml"
    assert one_line_error([missing]) == f"{missing}: inventory file not found (check the -i path)"


def test_malformed_yaml_names_file_line_and_column() -> None:
    message = one_line_error([BAD / "malformed.yml"])
    assert message == (f"{BAD / 'malformed.yml'}:6:6: invalid YAML: expected ',' or ']', "
                       "but got ':' (fix the YAML syntax)")


def test_malformed_group_vars_names_the_group_vars_file() -> None:
    message = one_line_error([DATA / "bad_group_vars" / "hosts.yml"])
    assert message.startswith(f"{DATA / 'bad_group_vars' / 'group_vars' / 'all.yml'}:")
    assert "invalid YAML" in message


def test_malformed_ini_carries_ansibles_message_and_the_file() -> None:
    message = one_line_error([BAD / "undefined_child.ini"])
    assert message.startswith(f"{BAD / 'undefined_child.ini'}: invalid INI inventory: ")
    assert "Section [web:children] includes undefined group 'missing_group'" in message


def test_one_unparsable_source_among_good_ones_is_an_error() -> None:
    message = one_line_error([YAML_LAB, BAD / "undefined_child.ini"])
    assert "undefined_child.ini" in message


def test_empty_inventory() -> None:
    message = one_line_error([BAD / "empty.yml"])
    assert message.startswith(f"{BAD / 'empty.yml'}: the inventory has no hosts")


def test_no_sources() -> None:
    assert "no inventory given" in one_line_error([])


def test_bad_port_names_the_host_and_hides_the_password() -> None:
    message = one_line_error([BAD / "bad_port.yml"])
    assert message.startswith(f"h1 ({BAD / 'bad_port.yml'}): ansible_port 'twenty-two' ")
    assert "do-not-print-me" not in message


def test_unsupported_connection() -> None:
    message = one_line_error([BAD / "winrm.yml"])
    assert "unsupported connection ansible_connection=winrm" in message
    assert message.startswith("h1 ")
    assert "do-not-print-me" not in message


def test_ansible_warnings_are_kept_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    inv = load_inventory([DATA / "warns" / "same_name.ini"])
    assert names(inv) == ["db"]
    assert inv.warnings == ("Found both group and host with same name: db",)
    assert capfd.readouterr() == ("", "")
    assert load_inventory([YAML_LAB]).warnings == ()


# ---- secrets and speed --------------------------------------------------------------------------


def test_password_never_in_repr_or_str() -> None:
    inv = load_inventory([YAML_LAB, INI_LAB])
    for text in (repr(inv), str(inv), repr(inv.hosts), str(inv.host("epyc1"))):
        assert "s3cr3t-hunter2" not in text
        assert "pa55-w0rd" not in text
    password = inv.host("epyc1").password
    assert password is not None
    assert password.reveal() == "s3cr3t-hunter2"


def test_loading_nothing_prints(capfd: pytest.CaptureFixture[str]) -> None:
    load_inventory([YAML_LAB, INI_LAB], limit="numa")
    with pytest.raises(InventoryError):
        load_inventory([BAD / "undefined_child.ini"])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_loading_a_small_inventory_is_fast() -> None:
    load_inventory([YAML_LAB])  # pays for importing ansible once
    started = time.perf_counter()
    for _ in range(5):
        load_inventory([YAML_LAB, INI_LAB], limit="numa")
    assert (time.perf_counter() - started) / 5 < 0.25


# ---- ansible_ssh_common_args / ansible_ssh_extra_args: used, no-op, or refused ---------------


def ssh_host(tmp_path: Path, common: str, extra: str = "", **more: object) -> Host:
    inv = tmp_path / "hosts.yml"
    host = {"ansible_host": "10.0.0.5", "ansible_ssh_common_args": common, **more}
    if extra:
        host["ansible_ssh_extra_args"] = extra
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"web1": host}}}))
    (only,) = load_inventory([inv]).hosts
    return only


def test_proxy_jump_forms(tmp_path: Path) -> None:
    assert ssh_host(tmp_path, "-o ProxyJump=ops@bastion:2222").proxy_jump == (
        JumpHost("bastion", 2222, "ops"),)
    assert ssh_host(tmp_path, "-J bastion,ssh://me@[fd00::1]:23").proxy_jump == (
        JumpHost("bastion", 22, None), JumpHost("fd00::1", 23, "me"))
    assert ssh_host(tmp_path, "-oProxyJump=a -J b").proxy_jump == (JumpHost("a"),)  # first wins
    assert ssh_host(tmp_path, "-o 'ProxyJump none'").proxy_jump == ()
    host = ssh_host(tmp_path, "-J ops@bastion")
    assert host.via() == "jump ops@bastion:22"
    assert host.describe() == "web1 (10.0.0.5:22 via jump ops@bastion:22)"


def test_proxy_command_port_user_identity_timeout_keepalive(tmp_path: Path) -> None:
    host = ssh_host(tmp_path, "-o ProxyCommand='nc -X 5 -x proxy:1080 %h %p' -p 2200 -l ops "
                              "-i /keys/a -o IdentityFile=/keys/b -o ConnectTimeout=7 "
                              "-o ServerAliveInterval=15 -o IdentitiesOnly=yes")
    assert host.proxy_command == "nc -X 5 -x proxy:1080 %h %p"
    assert host.via() == "proxy command nc"  # the program, not its arguments
    assert (host.port, host.user, host.key_files) == (2200, "ops", ("/keys/a", "/keys/b"))
    assert (host.connect_timeout_seconds, host.keepalive_interval_seconds) == (7.0, 15.0)
    assert host.identities_only is True


def test_ansible_variables_beat_the_same_ssh_options_like_ansible(tmp_path: Path) -> None:
    host = ssh_host(tmp_path, "-p 2200 -o User=ops -o ConnectTimeout=7", ansible_port=22,
                    ansible_user="root", ansible_timeout=30)
    assert (host.port, host.user, host.connect_timeout_seconds) == (22, "root", 30.0)


def test_no_op_options_are_accepted(tmp_path: Path) -> None:
    host = ssh_host(tmp_path, "-C -o ControlMaster=auto -o ControlPersist=60s "
                              "-o ControlPath=/tmp/%C -o LogLevel=ERROR -o ForwardAgent=no",
                    extra="-o Compression=yes -o BatchMode=yes")
    assert (host.proxy_jump, host.proxy_command, host.port) == ((), None, 22)


@pytest.mark.parametrize(("common", "says"), [
    ("-o LocalForward=8080:localhost:80", "SSH option localforward=8080:localhost:80 is not "
                                          "supported"),
    ("-o ForwardAgent=yes", "forwardagent=yes is not supported"),
    ("-F /etc/ssh/other_config", "unsupported SSH argument '-F'"),
    ("-o", "has no value"),
    ("-o ProxyJump=", "has no value"),
    ("-o ProxyJump=a@", "is not a host"),
    ("-J bastion:99999", "ProxyJump port '99999' is not a TCP port"),
    ("-J bastion -o ProxyCommand='nc %h %p'", "both ProxyJump and ProxyCommand"),
    ("-o ServerAliveInterval=often", "ServerAliveInterval=often is not a number"),
    ("-o 'unbalanced", "cannot split SSH arguments"),
    ("web1.example.com", "unsupported SSH argument 'web1.example.com'"),
])
def test_other_ssh_arguments_are_refused_in_one_line(tmp_path: Path, common: str,
                                                     says: str) -> None:
    with pytest.raises(InventoryError) as err:
        ssh_host(tmp_path, common)
    message = str(err.value)
    assert "\n" not in message and message.startswith("web1 (")
    assert says in message


def test_a_public_key_as_private_key_file_is_refused_at_load(tmp_path: Path) -> None:
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0d"
                   "h2l9GKJl me@host\n")
    with pytest.raises(InventoryError, match=r"is not a private key \(it is a public key\)"):
        ssh_host(tmp_path, "", ansible_ssh_private_key_file=str(pub))
    binary = tmp_path / "blob"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InventoryError, match=r"^web1 .*SSH key file .*blob is not a private key"):
        ssh_host(tmp_path, f"-i {binary}")


# ---- ansible_become ----------------------------------------------------------------------------


def become_of(tmp_path: Path, host_vars: dict[str, object]) -> Host:
    path = tmp_path / "become.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"h": host_vars}}}))
    return load_inventory([path]).hosts[0]


def test_become_with_user_and_password_keeps_the_password_secret(tmp_path: Path) -> None:
    host = become_of(tmp_path, {"ansible_become": "yes", "ansible_become_user": "admin",
                                "ansible_become_password": "s3cret"})
    assert host.become is not None and host.become.user == "admin"
    assert host.become.password is not None and host.become.password.reveal() == "s3cret"
    assert "s3cret" not in repr(host)


def test_become_defaults_to_root_without_password(tmp_path: Path) -> None:
    host = become_of(tmp_path, {"ansible_become": True})
    assert host.become is not None and (host.become.user, host.become.password) == ("root", None)
    assert become_of(tmp_path, {"ansible_become": False, "ansible_become_user": "x"}).become is None
    assert become_of(tmp_path, {}).become is None


@pytest.mark.parametrize(("host_vars", "says"), [
    ({"ansible_become": True, "ansible_become_method": "su"}, "ansible_become_method=su"),
    ({"ansible_become": "perhaps"}, "ansible_become='perhaps' is not a boolean"),
])
def test_become_that_fleet_cannot_do_is_one_line(tmp_path: Path, host_vars: dict[str, object],
                                                 says: str) -> None:
    with pytest.raises(InventoryError) as caught:
        become_of(tmp_path, host_vars)
    assert says in caught.value.line() and "h (" in caught.value.line()


# ---- how a host boots another kernel (fleet_boot; lab guests kexec) ------------------------------


def test_fleet_boot_and_lab_guests(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n"
                    "    a: {ansible_host: 192.0.2.1}\n"
                    "    b: {ansible_host: 192.0.2.2, fleet_boot: kexec}\n"
                    "    c: {ansible_host: 192.0.2.3, fleet_boot: reboot, fleet_lab_kind: vm}\n"
                    "    d: {ansible_host: 192.0.2.4, fleet_lab_kind: vm}\n")
    inv = load_inventory([path])
    assert [inv.host(n).boot for n in "abcd"] == [None, "kexec", "reboot", "kexec"]


def test_an_unknown_fleet_boot_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    a: {ansible_host: 192.0.2.1, fleet_boot: pxe}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    assert "fleet_boot='pxe' is not kexec or reboot" in info.value.line()
    assert info.value.line().startswith("a (")
