"""The report's web page (index.html): self-contained, every table and figure in it, record links
that resolve; and, in a real headless Chromium, that it loads without errors, sorts, filters,
shows every image and the numbers of cells.csv.

The browser test drives Debian's chromium (/usr/bin/chromium) through playwright, never a
downloaded browser. Without them it is skipped with the reason, unless LAICBENCH_REQUIRE_BROWSER
is set (CI sets it after installing chromium), where it fails instead.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from test_report import REFERENCE_CSV, golden_results

from laicbench.report.build import build_report

CHROMIUM = os.environ.get("LAICBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of the golden results (3 methods and an oracle on 3 datasets, 2 backbones, a
    parameter point without defaults, reported rows): (Report, its index.html text)."""
    root = tmp_path_factory.mktemp("html")
    results = golden_results(root / "runs")
    reference = root / "reported.csv"
    reference.write_text(REFERENCE_CSV)
    built = build_report(results, reference=reference, warn=lambda _: None)
    return built, (built.out / "index.html").read_text()


def test_the_page_is_self_contained_and_its_links_resolve(report):
    built, page = report
    targets = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert targets
    for target in targets:
        if target.startswith(("#", "data:")):
            continue
        assert not re.match(r"^[a-z]+:", target), f"{target} is fetched, not local"
        path = (built.out / unquote(target)).resolve()
        assert path.is_file(), target
    anchors = set(re.findall(r'id="([^"]+)"', page))
    assert {t[1:] for t in targets if t.startswith("#") and len(t) > 1} <= anchors


def test_every_figure_and_table_is_in_the_page(report):
    built, page = report
    drawn = [f for f in built.figures if not f.skipped]
    assert drawn
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(drawn)
    png = next(p for p in drawn[0].files if p.suffix == ".png")
    assert base64.b64decode(embedded[0]) == (built.out / "figures" / png.name).read_bytes()
    for table in built.statistics:
        assert f'id="grid-{table.name}"' in page and table.title in page
    for fig in built.figures:
        if fig.skipped:
            assert fig.skipped in page


def test_every_cell_links_to_its_records(report):
    built, page = report
    rows = dict(re.findall(r'<tr id="(records-\d+)">(.*?)</tr>', page))
    used = {r.path.resolve() for r in built.runs}
    linked = set()
    for row in rows.values():
        for target in re.findall(r'href="([^"]+\.json)"', row):
            path = (built.out / unquote(target)).resolve()
            assert path in used
            linked.add(path)
    main_point_runs = 3 * 3 * 3 + 3  # 3 methods x 3 datasets x 3 seeds, the oracle 1 seed each
    assert len(linked) == main_point_runs


# ------------------------------------------------------------------------------------------
# in a real browser


def _browser():
    """playwright's sync API, or skip (fail where LAICBENCH_REQUIRE_BROWSER is set) saying why."""
    why = None
    if not Path(CHROMIUM).is_file():
        why = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            why = "playwright is not installed (the test extra has it)"
    if why is None:
        return sync_playwright
    if os.environ.get("LAICBENCH_REQUIRE_BROWSER"):
        pytest.fail(f"browser test required but cannot run: {why}")
    pytest.skip(f"browser test: {why}")


def _column(page, col: int) -> list[tuple[str, str]]:
    """(method, data-value) of the visible method rows, top to bottom, in column `col`."""
    return page.eval_on_selector_all(
        'tbody[data-block="method"] tr:not(.hidden)',
        f"rows => rows.map(r => [r.dataset.method, r.cells[{col}].dataset.value])",
    )


@pytest.mark.slow
def test_the_page_in_a_headless_browser(report):
    sync_playwright = _browser()
    built, _ = report
    cells = pd.read_csv(built.out / "cells.csv")
    problems: list[str] = []
    requests: list[str] = []
    profile = tempfile.mkdtemp(prefix="laicbench-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((built.out / "index.html").as_uri())
            page.wait_for_load_state("load")

            # every image loads, from the page itself
            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])"
            )
            assert len(images) == len([f for f in built.figures if not f.skipped])
            assert all(done and width > 0 for done, width in images)
            assert all(u.startswith(("file:", "data:")) for u in requests), requests

            # the numbers shown are those of cells.csv, with the interval on hover
            shown = page.eval_on_selector_all(
                "td[data-mean]",
                "tds => tds.map(t => [t.closest('tr').dataset.method, t.dataset.column,"
                " t.dataset.metric, t.textContent, t.title])",
            )
            assert len(shown) == 3 * len(cells)
            for method, column, metric, text, title in shown:
                row = cells[(cells["method"] == method) & (cells["dataset"] == column)].iloc[0]
                mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
                expected = f"{mean:.2f} ± {0.0 if math.isnan(std) else std:.2f} ({row['n']})"
                assert text.startswith(expected), (method, column, metric, text)
                low, high = row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"]
                if math.isfinite(low):
                    assert f"95% interval [{low:.2f}, {high:.2f}] over {row['n']} seeds" in title

            # sorting a column reorders the rows, descending then ascending
            header = page.locator('#main-table-grid th.sort[data-col="5"]')  # stl10 ACC
            before = _column(page, 5)
            header.click()
            descending = _column(page, 5)
            assert [float(v) for _, v in descending] == sorted(
                (float(v) for _, v in before), reverse=True
            )
            assert [m for m, _ in descending] != [m for m, _ in before]
            header.click()
            ascending = _column(page, 5)
            assert [float(v) for _, v in ascending] == sorted(float(v) for _, v in before)
            assert header.get_attribute("aria-sort") == "ascending"

            # filters: a method keeps its rows (reported and delta included), a dataset its columns
            page.select_option("#filter-method", "tac")
            rows = page.eval_on_selector_all(
                "#main-table-grid tbody tr:not(.hidden):not(.block-title)",
                "rows => rows.map(r => r.dataset.method)",
            )
            assert rows and set(rows) == {"tac"} and len(rows) == 3  # tac, reported, delta
            page.select_option("#filter-method", "")
            page.select_option("#filter-dataset", "stl10")
            columns = page.eval_on_selector_all(
                "#main-table-grid thead th[data-dataset]:not(.hidden)",
                "ths => ths.map(t => t.dataset.dataset)",
            )
            assert set(columns) <= {"stl10", ""} and "stl10" in columns
            page.select_option("#filter-dataset", "")
            page.select_option("#filter-tag", "training-free")
            assert {m for m, _ in _column(page, 1)} == {"clip-kmeans"}

            # a cell's link leads to its records
            page.select_option("#filter-tag", "")
            page.locator('tr.method[data-method="ours"] td[data-mean] a').first.click()
            anchor = page.evaluate("location.hash")
            seeds = page.eval_on_selector_all(f"{anchor} a", "links => links.length")
            assert seeds == 3
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert not problems, problems
