"""An IPIP pool is refused at apply time on a kernel without IPIP, with file:line and a fix."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from podnet.cli.main import cli
from podnet.kernel.routes import kernel_has_ipip
from podnet.model import IPPool
from podnet.store.open import open_store

POOL = """apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ipip-pool
spec:
  cidr: 10.245.0.0/16
  ipipMode: {mode}
"""


@pytest.mark.skipif(kernel_has_ipip(), reason="this kernel has IPIP, so such pools are valid")
def test_ipip_pool_refused_and_nothing_applied(tmp_path: Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(mode="CrossSubnet"))
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, ["--state-dir", str(state), "apply", "-f", str(manifest)], obj={})
    assert result.exit_code == 1
    assert f"{manifest}:7:3" in result.output and "spec.ipipMode" in result.output
    assert "vxlanMode: CrossSubnet" in result.output
    store = open_store(str(state))
    assert store.list(IPPool) == []
    store.close()


def test_never_is_always_accepted(tmp_path: Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(mode="Never"))
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "s"), "apply", "-f", str(manifest)], obj={})
    assert result.exit_code == 0, result.output
    assert "ippool.projectcalico.org/ipip-pool created" in result.output
