"""Cluster DNS: the Kubernetes DNS-based service discovery specification, as CoreDNS's
``kubernetes`` plugin serves it (``records``: pure; ``server``: the UDP/TCP shell)."""
