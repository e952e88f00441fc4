"""nftables in the kernel: ``apply`` keeps one table in sync (libnftables' JSON API for whole
tables, ``netlink`` and ``netlink_rules`` for per-change raw batches)."""
