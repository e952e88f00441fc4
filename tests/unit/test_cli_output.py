"""Output helpers: kubectl's ages and column alignment."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podnet.cli.columns import rows_for
from podnet.cli.output import boxed_table, human_duration, table
from podnet.model import Pod, Service


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (200, "3m20s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (2 * 86400 + 4 * 3600, "2d4h"), (8 * 86400, "8d"),
    (400 * 86400, "400d"), (730 * 86400, "2y"), (731 * 86400, "2y1d"), (8 * 365 * 86400, "8y"),
])
def test_human_duration_matches_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_table_three_space_columns_no_trailing_space() -> None:
    assert table(["NAME", "AGE"], [["a", "5s"], ["longer-name", ""]]) == (
        "NAME          AGE\n"
        "a             5s\n"
        "longer-name"
    )


def test_pod_and_service_cells() -> None:
    created = "2026-01-01T00:00:00Z"
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=200)
    pod = Pod.model_validate({
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": created},
        "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.5",
                   "containerStatuses": [{"name": "a", "ready": True, "restartCount": 2},
                                         {"name": "b", "ready": False, "restartCount": 1}]},
    })
    headers, rows = rows_for(Pod, [pod], now, wide=True, all_namespaces=True, show_labels=True)
    assert headers[:2] == ["NAMESPACE", "NAME"] and headers[-1] == "LABELS"
    assert rows == [["default", "web-1", "1/2", "Running", "3", "3m20s", "10.244.1.5", "node-1", "<none>", "<none>", "<none>"]]
    svc = Service.model_validate({
        "metadata": {"name": "web", "creationTimestamp": created},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]},
    })
    headers, rows = rows_for(Service, [svc], now, wide=True, all_namespaces=False, show_labels=False)
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert rows == [["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "3m20s", "app=web"]]


def test_boxed_table_as_calicoctl_prints_ipam_show() -> None:
    # calicoctl's tablewriter: headers centred (odd space on the right), numbers right-aligned.
    assert boxed_table(["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"],
                       [["IP Pool", "10.244.0.0/16", "65536", "5 (0%)", "65531 (100%)"]]) == (
        "+----------+---------------+-----------+------------+--------------+\n"
        "| GROUPING |     CIDR      | IPS TOTAL | IPS IN USE |   IPS FREE   |\n"
        "+----------+---------------+-----------+------------+--------------+\n"
        "| IP Pool  | 10.244.0.0/16 |     65536 | 5 (0%)     | 65531 (100%) |\n"
        "+----------+---------------+-----------+------------+--------------+"
    )


@pytest.mark.parametrize("status,deleting,shown", [
    ({"phase": "Running", "containerStatuses": [{"name": "a", "ready": True, "state": {"running": {}}}]}, False,
     "Running"),
    ({"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}, False, "CrashLoopBackOff"),
    ({"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}, False, "Completed"),
    ({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 3}}}]}, False,
     "ExitCode:3"),
    ({"phase": "Failed", "reason": "UnknownImage"}, False, "UnknownImage"),
    ({}, False, "Pending"),
    ({"phase": "Running"}, True, "Terminating"),
])
def test_pod_status_column_as_kubectl(status: dict, deleting: bool, shown: str) -> None:
    meta = {"name": "p", "namespace": "default"} | ({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})
    pod = Pod.model_validate({"metadata": meta, "spec": {"containers": [{"name": "a"}]}, "status": status})
    _, rows = rows_for(Pod, [pod], datetime(2026, 1, 1, tzinfo=UTC), wide=False, all_namespaces=False,
                       show_labels=False)
    assert rows[0][2] == shown
