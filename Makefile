# podnet: `make demo` and `make test` on a fresh Debian 12 machine, as root.
# Every target installs what it needs, idempotently.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := nftables python3-nftables python3-venv iproute2 bird2 iperf3 busybox-static \
	conntrack iputils-ping ethtool tcpdump containernetworking-plugins podman runc \
	etcd-server etcd-client procps bubblewrap prometheus nginx-light unbound dnsperf wrk chromium \
	iputils-arping \
	clang llvm libbpf-dev bpftool
APT_STAMP := $(VENV)/.apt-done
PIP_STAMP := $(VENV)/.pip-done
NFT_LINK := $(VENV)/lib/python3.11/site-packages/nftables

.PHONY: setup demo test test-unit test-kernel lint bench clean

setup: $(PIP_STAMP)

$(APT_STAMP):
	@mkdir -p $(VENV)
	@bash scripts/install-apt.sh $(APT_PACKAGES)
	@touch $@

$(PIP_STAMP): $(APT_STAMP) pyproject.toml requirements.lock
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@# libnftables' Python binding ships only as a Debian package: link just that module in.
	@ln -sfn /usr/lib/python3/dist-packages/nftables $(NFT_LINK)
	@touch $@

demo: setup
	@bash scripts/demo.sh

test: setup lint
	@$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: setup
	@$(PY) -m pytest -q -p no:cacheprovider tests/unit

# Needs root: network namespaces, nftables, BIRD (the tests skip themselves otherwise).
test-kernel: setup
	@$(PY) -m pytest -q -p no:cacheprovider tests/kernel tests/scenario tests/faults

# Import contracts, then ruff, then mypy --strict (pyproject.toml holds the configuration).
lint: setup
	@$(VENV)/bin/lint-imports --no-cache
	@$(VENV)/bin/ruff check --no-cache podnet tests bench
	@$(VENV)/bin/mypy --cache-dir $(VENV)/.mypy_cache

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
