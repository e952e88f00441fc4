"""The report in a real browser (Debian's chromium driven by playwright): it loads with no console
error, a click on a cell shows that pair's `podnet explain`, and the page's matrix is `matrix -o json`."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from podnet.cli.main import cli

CHROMIUM = "/usr/bin/chromium"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["--state-dir", "/nonexistent-podnet-state", *args], obj={})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: root; no background networking; the page is a local file whose CSP forbids any fetch
        b = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                     "--disable-component-update", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    run("report", "--from-files", str(EXAMPLES / "tiers"), "-o", str(out))
    return out


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def test_loads_without_console_errors(browser: Any, report: Path) -> None:
    page, problems = open_page(browser, report)
    assert page.title() == "podnet report"
    assert page.locator("td.cell").count() > 0
    assert problems == []


def test_cell_click_shows_its_explanation(browser: Any, report: Path) -> None:
    page, problems = open_page(browser, report)
    page.select_option("#key", "8080/TCP")
    cell = page.locator('td.cell[data-traffic="8080/TCP"][data-src="prod/api-0"][data-dst="prod/web-0"]')
    assert cell.is_visible()
    cell.click()
    shown = page.inner_text("#explain")
    expected = run("explain", "--from-files", str(EXAMPLES / "tiers"), "--from", "prod/api-0", "--to", "prod/web-0:8080/TCP")
    assert shown.strip() == expected.strip()
    assert "DENIED" in shown
    # a heat-map cell opens the explanation of its representative pair
    page.locator('div[data-key="8080/TCP"] table.heat td.cell').first.click()
    assert page.inner_text("#explain").startswith("8080/TCP")
    assert problems == []


def test_page_matrix_equals_matrix_json(browser: Any, report: Path) -> None:
    page, _ = open_page(browser, report)
    cells = page.eval_on_selector_all(
        "table.pods-matrix td.cell",
        "tds => tds.map(td => [td.dataset.traffic, td.dataset.src, td.dataset.dst, td.textContent])")
    expected = json.loads(run("matrix", "--from-files", str(EXAMPLES / "tiers"), "-o", "json"))
    pods = expected["pods"]
    seen = {(k, s, d): text for k, s, d, text in cells}
    want = {(key, pods[i], pods[j]): "." if ok else "X"
            for key, table in expected["allowed"].items() for i, row in enumerate(table) for j, ok in enumerate(row)}
    assert seen == want
