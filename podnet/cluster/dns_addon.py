"""The cluster DNS add-on, installed by ``podnet up`` as kubeadm installs CoreDNS: a
ServiceAccount, the ``system:coredns`` ClusterRole and binding, a Deployment ``coredns`` of two
replicas in ``kube-system`` whose pods carry ``k8s-app: kube-dns`` (so policies select them
as they would CoreDNS's), and the Service ``kube-dns`` on the reserved ClusterIP (UDP and TCP
53, metrics 9153). The pods run podnet's DNS server (``podnet/dns``) for the image name
``coredns``; they read the cluster through the API server with their token, never the store.

Their own resolv.conf (``dnsPolicy: None``) names the upstream resolvers: the lab's external
host, whose resolver serves the ``internet.test`` zone (``cluster/external_dns.py``)."""
from __future__ import annotations

from collections.abc import Sequence

from podnet.manifest.loader import load_text
from podnet.model import Resource

MANIFEST = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: None
      dnsConfig: {nameservers: [UPSTREAMS]}
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.11.3
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 5
          periodSeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: CLUSTER_DNS
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
  - {name: metrics, port: 9153, protocol: TCP, targetPort: 9153}
"""


def dns_objects(cluster_dns: str, upstreams: Sequence[str]) -> list[Resource]:
    """The add-on's objects for the cluster DNS address and the upstream resolvers."""
    text = MANIFEST.replace("CLUSTER_DNS", cluster_dns).replace("UPSTREAMS", ", ".join(upstreams) or "127.0.0.1")
    return [item.obj for item in load_text(text, "<cluster DNS add-on>")]
