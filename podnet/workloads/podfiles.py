"""The files a kubelet writes for each pod (pure): ``/etc/hostname``, ``/etc/hosts`` and
``/etc/resolv.conf``, as ``pkg/kubelet/network/dns`` and the kubelet's hosts file code make
them, with the kubelet's limits on what a resolv.conf may hold.

dnsPolicy: ``ClusterFirst`` (the default) points at the cluster DNS with the namespace's
search path, ``ndots:5``, and the node's own search domains after; ``Default`` is the node's
resolver configuration; ``None`` only what ``dnsConfig`` says; ``ClusterFirstWithHostNet`` is
``ClusterFirst`` (it differs only for hostNetwork pods, which fall back to ``Default`` under
``ClusterFirst``). ``dnsConfig`` is then merged in: nameservers and searches appended without
duplicates, options overriding by name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.model.core import Pod

DNS_CONFIG_KEY = "/podnet/config/cluster-dns"  # {"clusterDNS": [ip…], "clusterDomain": …}, set by `podnet up`
DEFAULT_CLUSTER_DNS = "10.96.0.10"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
MAX_NAMESERVERS = 3  # the kubelet's validation.MaxDNSNameservers
MAX_SEARCH_PATHS = 32  # MaxDNSSearchPaths since the expanded DNS configuration
MAX_SEARCH_CHARS = 2048  # MaxDNSSearchListChars
HOSTNAME_MAX = 63
HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        """As the container runtime writes it (containerd's order: search, nameserver, options)."""
        lines = [f"search {' '.join(self.searches)}"] if self.searches else []
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        lines += [f"options {' '.join(self.options)}"] if self.options else []
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class ClusterDNS:
    """The kubelet's ``--cluster-dns``, ``--cluster-domain`` and ``--resolv-conf`` content."""

    servers: tuple[str, ...] = (DEFAULT_CLUSTER_DNS,)
    domain: str = DEFAULT_CLUSTER_DOMAIN
    node: ResolvConf = field(default_factory=ResolvConf)


def parse_resolv_conf(text: str) -> ResolvConf:
    """nameserver, search/domain and options lines (the last search/domain line wins, as in
    glibc); trailing dots of search domains are dropped, as the kubelet does."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = [w.rstrip(".") for w in words[1:] if w.rstrip(".")]
        elif words[0] == "options":
            options += words[1:]
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _merge_options(existing: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for word in existing:
        name, _, value = word.partition(":")
        merged[name] = value
    for op in extra:
        merged[str(op.get("name", ""))] = "" if op.get("value") is None else str(op["value"])
    return tuple(f"{k}:{v}" if v else k for k, v in merged.items() if k)


def _fit_limits(conf: ResolvConf) -> ResolvConf:
    """Cut to the kubelet's limits (it reports the cut as an event and carries on)."""
    searches: list[str] = []
    for domain in conf.searches[:MAX_SEARCH_PATHS]:
        if len(" ".join([*searches, domain])) > MAX_SEARCH_CHARS:
            break
        searches.append(domain)
    return ResolvConf(conf.nameservers[:MAX_NAMESERVERS], tuple(searches), conf.options)


def resolv_conf(pod: Pod, dns: ClusterDNS) -> ResolvConf:
    """The pod's resolv.conf for its dnsPolicy and dnsConfig."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    ns = pod.namespace or "default"
    if policy == "None":
        base = ResolvConf()
    elif policy == "Default" or (policy == "ClusterFirst" and pod.spec.host_network) or not dns.servers:
        base = dns.node
    else:
        domain = dns.domain
        searches = (f"{ns}.svc.{domain}", f"svc.{domain}", domain, *dns.node.searches)
        base = ResolvConf(tuple(dns.servers), _unique(searches), ("ndots:5",))
    config = pod.spec.dns_config or {}
    if config:
        base = ResolvConf(_unique([*base.nameservers, *(str(s) for s in config.get("nameservers") or [])]),
                          _unique([*base.searches, *(str(s) for s in config.get("searches") or [])]),
                          _merge_options(base.options, config.get("options") or []))
    return _fit_limits(base)


def _truncate(name: str) -> str:
    return name[:HOSTNAME_MAX].rstrip("-.") if len(name) > HOSTNAME_MAX else name


def host_and_domain(pod: Pod, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> tuple[str, str]:
    """The pod's hostname (spec.hostname, else its name, at most 63 characters) and its domain
    (``<subdomain>.<ns>.svc.<cluster domain>`` when spec.subdomain is set, else empty)."""
    host = _truncate(pod.spec.hostname or pod.name)
    domain = f"{pod.spec.subdomain}.{pod.namespace or 'default'}.svc.{cluster_domain}" if pod.spec.subdomain else ""
    return host, domain


def hostname_file(pod: Pod, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """What the pod's ``hostname`` says: the FQDN with setHostnameAsFQDN, else the short name."""
    host, domain = host_and_domain(pod, cluster_domain)
    return f"{host}.{domain}" if pod.spec.set_hostname_as_fqdn and domain else host


def hosts_file(pod: Pod, pod_ips: Sequence[str], cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """The kubelet's managed /etc/hosts: localhost lines, the pod's addresses with its
    hostname (and FQDN), then the pod's hostAliases."""
    host, domain = host_and_domain(pod, cluster_domain)
    out = [HOSTS_HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
           "fe00::0\tip6-localnet\n", "fe00::0\tip6-mcastprefix\n", "fe00::1\tip6-allnodes\n",
           "fe00::2\tip6-allrouters\n"]
    for ip in pod_ips:
        out.append(f"{ip}\t{host}.{domain}\t{host}\n" if domain else f"{ip}\t{host}\n")
    aliases = pod.spec.host_aliases or []
    if aliases:
        out.append("\n# Entries added by HostAliases.\n")
        for alias in aliases:
            names = "\t".join(str(h) for h in alias.get("hostnames") or [])
            out.append(f"{alias.get('ip', '')}\t{names}\n")
    return "".join(out)
