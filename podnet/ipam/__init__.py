"""Calico-style block IPAM: pools → per-node affine blocks → addresses held by handles."""
