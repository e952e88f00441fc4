"""BIRD 2 config rendering: BIRD's own parser accepts it, and it says what Calico's does."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from podnet.dataplane.bird_config import render_bird_config
from podnet.kernel.bird import parse_protocols
from podnet.routing import plan_node

from test_routing_planners import L3, facts, pool, rr_facts


def bird_parses(tmp_path, text: str) -> None:
    if shutil.which("bird") is None:
        pytest.skip("bird2 is not installed (make setup installs it)")
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    res = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + "\n" + text


def test_mesh_config(tmp_path):
    plan = plan_node(facts(), "k8s-master01", "bgp")
    text = render_bird_config(plan.bgp, "k8s-master01", str(tmp_path / "bird.log"))
    bird_parses(tmp_path, text)
    assert "router id 192.168.10.71;" in text
    assert "route 10.244.0.0/24 blackhole;" in text
    assert "protocol bgp Mesh_192_168_10_72 from podnet_peer" in text
    assert "protocol bgp Mesh_192_168_10_73 from podnet_peer" in text
    assert "local 192.168.10.71 as 64512;" in text
    assert "connect delay time 1;" in text and "scan time 1;" in text
    assert text == render_bird_config(plan.bgp, "k8s-master01", str(tmp_path / "bird.log"))


def test_route_reflector_config(tmp_path):
    f = rr_facts(4)
    rr = render_bird_config(plan_node(f, "k8s-node01", "bgp").bgp, "k8s-node01")
    bird_parses(tmp_path, rr)
    assert rr.count("rr client;") == 3 and rr.count("rr cluster id 244.0.0.1;") == 3
    assert "Mesh_" not in rr and "protocol bgp rr " not in rr
    client = render_bird_config(plan_node(f, "k8s-node02", "bgp").bgp, "k8s-node02")
    bird_parses(tmp_path, client)
    assert client.count("protocol bgp ") == 1 and "Node_192_168_10_72" in client and "rr client" not in client


def test_cross_subnet_config(tmp_path):
    plan = plan_node(facts(L3, pools=[pool(vxlan="CrossSubnet")]), "k8s-master01", "bgp")
    text = render_bird_config(plan.bgp, "k8s-master01")
    bird_parses(tmp_path, text)
    assert "if net ~ [ 10.244.3.0/24 ] then reject;" in text
    block = text.split("protocol bgp Mesh_192_168_20_71")[1]
    assert "multihop;" in block and "gateway recursive" in block


def test_parse_show_protocols():
    out = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:03:26.881
kernel1    Kernel     master4    up     17:03:26.881
podnet_blocks Static  master4    up     17:03:26.881
Mesh_192_168_10_72 BGP        ---        up     17:03:27.817  Established
Node_192_168_10_73 BGP        ---        start  17:03:27.807  Active        Socket: Connection refused
"""
    rows = parse_protocols(out)
    assert [r.name for r in rows][-2:] == ["Mesh_192_168_10_72", "Node_192_168_10_73"]
    assert rows[3].info == "Established" and rows[3].state == "up" and rows[3].since == "17:03:27.817"
    assert rows[4].state == "start" and rows[4].info.startswith("Active")
