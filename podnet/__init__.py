"""podnet: Kubernetes pod networking, Calico and Flannel style, on the real Linux kernel."""

__version__ = "0.1.0"
