"""The files a kubelet writes for a pod: resolv.conf per dnsPolicy with dnsConfig merged and the
kubelet's limits, /etc/hosts, /etc/hostname; and the sandbox a container runtime gives it."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.model.core import Pod
from podnet.workloads import sandbox
from podnet.workloads.podfiles import ClusterDNS, ResolvConf, hostname_file, hosts_file, parse_resolv_conf, resolv_conf

NODE = parse_resolv_conf("# generated\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch corp.example. lab.example\n"
                         "options timeout:2 rotate\n")
DNS = ClusterDNS(("10.96.0.10",), "cluster.local", NODE)


def pod(**spec: Any) -> Pod:
    return Pod.model_validate({"metadata": {"name": "web-0", "namespace": "shop"},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}})


def test_node_resolv_conf_is_parsed_as_the_kubelet_reads_it() -> None:
    assert NODE == ResolvConf(("192.0.2.1", "192.0.2.2"), ("corp.example", "lab.example"), ("timeout:2", "rotate"))


@pytest.mark.parametrize("spec, expected", [
    ({}, "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
         "nameserver 10.96.0.10\noptions ndots:5\n"),
    ({"dnsPolicy": "ClusterFirstWithHostNet"},
     "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
     "nameserver 10.96.0.10\noptions ndots:5\n"),
    ({"dnsPolicy": "Default"}, "search corp.example lab.example\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
                               "options timeout:2 rotate\n"),
    ({"hostNetwork": True}, "search corp.example lab.example\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
                            "options timeout:2 rotate\n"),  # ClusterFirst on the host network falls back
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                         "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}},
     "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"),
    ({"dnsConfig": {"nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["cluster.local", "x.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}},
     "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example x.example\n"
     "nameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:1 single-request-reopen\n"),
])
def test_resolv_conf_per_dns_policy(spec: dict[str, Any], expected: str) -> None:
    assert resolv_conf(pod(**spec), DNS).render() == expected


def test_resolv_conf_limits_as_the_kubelet_cuts_them() -> None:
    many = {"dnsPolicy": "None", "dnsConfig": {"nameservers": [f"192.0.2.{i}" for i in range(1, 6)],
                                                "searches": [f"d{i}.example" for i in range(40)]}}
    conf = resolv_conf(pod(**many), DNS)
    assert conf.nameservers == ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    assert len(conf.searches) == 32
    long = {"dnsPolicy": "None", "dnsConfig": {"searches": [("x" * 60) + f".d{i}.example" for i in range(31)]}}
    searches = resolv_conf(pod(**long), DNS).searches
    assert len(" ".join(searches)) <= 2048 and len(searches) == 28


def test_no_cluster_dns_configured_means_the_nodes_resolver() -> None:
    assert resolv_conf(pod(), ClusterDNS((), "cluster.local", NODE)) == NODE


def test_hosts_hostname_and_subdomain() -> None:
    plain = hosts_file(pod(), ["10.244.1.5"])
    assert plain.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert plain.endswith("fe00::2\tip6-allrouters\n10.244.1.5\tweb-0\n")
    named = pod(hostname="db", subdomain="backend", hostAliases=[{"ip": "192.0.2.9", "hostnames": ["a", "b"]}])
    text = hosts_file(named, ["10.244.1.5"])
    assert "10.244.1.5\tdb.backend.shop.svc.cluster.local\tdb\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n192.0.2.9\ta\tb\n")
    assert hostname_file(named) == "db"
    assert hostname_file(pod(hostname="db", subdomain="backend", setHostnameAsFQDN=True)) == \
        "db.backend.shop.svc.cluster.local"
    long = Pod.model_validate({"metadata": {"name": "a" * 62 + "-bcd"}, "spec": {"containers": [{"name": "c"}]}})
    assert hostname_file(long) == "a" * 62  # cut to 63 characters, trailing '-' dropped


def test_capabilities_as_the_runtime_applies_them() -> None:
    assert sandbox.privileges(None).capabilities == sandbox.DEFAULT_CAPABILITIES
    assert "SYS_ADMIN" not in sandbox.DEFAULT_CAPABILITIES and "NET_ADMIN" not in sandbox.DEFAULT_CAPABILITIES
    added = sandbox.privileges({"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["chown"]}})
    assert added.capabilities == (sandbox.DEFAULT_CAPABILITIES - {"CHOWN"}) | {"NET_ADMIN", "SYS_TIME"}
    only = sandbox.privileges({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
    assert only.capabilities == {"NET_BIND_SERVICE"}
    assert sandbox.privileges({"privileged": True}) == sandbox.Privileges(sandbox.ALL_CAPABILITIES, True)
    assert sandbox.privileges({"capabilities": {"add": ["ALL"]}}).capabilities == sandbox.ALL_CAPABILITIES


def test_bwrap_argv_gives_private_namespaces_own_files_and_no_host_state() -> None:
    spec = sandbox.SandboxSpec("web-0", sandbox.privileges({"capabilities": {"drop": ["ALL"], "add": ["KILL"]}}),
                               files={"/etc/resolv.conf": "/state/p/etc/resolv.conf"},
                               binds={sandbox.PODBIN: "/state/podbin"}, host_dirs=("/code",))
    argv = sandbox.bwrap_argv(spec, ["sleep", "1"], info_fd=7)
    assert argv[0] == sandbox.BWRAP and argv[-3:] == ["--", "sleep", "1"]
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--new-session"):
        assert flag in argv
    pairs = list(zip(argv, argv[1:], argv[2:]))
    assert ("--ro-bind", "/state/p/etc/resolv.conf", "/etc/resolv.conf") in pairs
    assert ("--ro-bind", "/state/podbin", sandbox.PODBIN) in pairs and ("--tmpfs", "/tmp", "--tmpfs") in pairs
    assert "--bind" not in argv and not any(a.startswith("/run/") or a.startswith("/var/lib") for a in argv)
    assert not [b for b in pairs if b[0] in ("--ro-bind", "--bind") and b[1] == "/"], "never the host's whole root"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"] == ["CAP_KILL"]
    assert argv[argv.index("--info-fd") + 1] == "7" and argv[argv.index("--hostname") + 1] == "web-0"
    enter = sandbox.enter_argv(4242, sandbox.Privileges(frozenset({"KILL", "NET_RAW"})), ["ls"])
    assert enter[:3] == [sandbox.NSENTER, "-t", "4242"] and "--bounding-set=-all,+kill,+net_raw" in enter
    assert "--no-new-privs" in enter and enter[-2:] == ["--", "ls"]
