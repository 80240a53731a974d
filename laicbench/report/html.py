"""The report as one self-contained web page (``index.html``): nothing is fetched when it is
viewed. Styles and scripts are inline and every figure is embedded as a PNG data URI.

The page holds the main table, sortable by any column and filterable by method, dataset,
backbone and tag, each cell giving its 95% interval on hover and linking to its records; every
other report table (``Report.statistics``: any ``Table`` a report builds appears here, sortable,
with its caption and notes); every figure; and the same provenance as ``index.md``. Record links
are relative paths from the report folder to the JSON records.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from laicbench.report.aggregate import METRICS as TABLE_METRICS
from laicbench.report.tables import (
    BLOCK_ORDER,
    BLOCK_TITLES,
    METRIC_LABELS,
    OUTDATED_MARK,
    Cell,
    MainPoint,
    MainTable,
    Row,
    cell_text,
)

if TYPE_CHECKING:
    import pandas as pd

    from laicbench.report.figures import FigureResult
    from laicbench.report.stat_tables import Table

HTML_NAME = "index.html"


@dataclass
class HtmlReport:
    """What the page shows: the summary lines, the links to the report's files ((text, file)),
    the main table with its column keys ((dataset, backbone) per group label), the cells with
    their intervals (``confidence_frame``), the runs of each cell, each method's tags, the other
    tables, the figures, the provenance lines, and the folders the figures are read from and the
    page will live in (record links are relative to it)."""

    summary: list[str]
    files: list[tuple[str, str]]
    table: MainTable | None
    column_keys: dict[str, tuple[str, str]]
    cells: pd.DataFrame | None
    points: dict[tuple[str, str, str], MainPoint]
    tags: dict[str, frozenset[str]]
    tables: Sequence[Table]
    figures: Sequence[FigureResult]
    provenance: list[str]
    out: Path


def render(page: HtmlReport) -> str:
    """The whole page as one HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        "<title>laicbench report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>laicbench report</h1>",
        *(f"<p>{_inline(line)}</p>" for line in page.summary),
        _nav(page),
        '<ul class="files">',
        *(f'<li><a href="{quote(name)}">{_esc(text)}</a></li>' for text, name in page.files),
        "</ul>",
    ]
    records: list[tuple[str, str, list]] = []
    if page.table is not None:
        parts.append(_main_section(page, records))
    for table in page.tables:
        parts.append(_table_section(table))
    parts.append(_figures_section(page.figures))
    if records:
        parts.append(_records_section(records, page.out))
    parts.append('<footer><ul class="provenance">')
    parts += [f"<li>{_inline(line.removeprefix('- '))}</li>" for line in page.provenance]
    parts.append("</ul></footer>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _nav(page: HtmlReport) -> str:
    links = [("main-table", "Main table")] if page.table is not None else []
    links += [(f"table-{t.name}", t.title) for t in page.tables]
    links.append(("figures", "Figures"))
    if page.table is not None:
        links.append(("records", "Records"))
    items = " · ".join(f'<a href="#{anchor}">{_esc(text)}</a>' for anchor, text in links)
    return f"<nav>{items}</nav>"


# ------------------------------------------------------------------------------------------
# the main table


def _main_section(page: HtmlReport, records: list[tuple[str, str, list]]) -> str:
    table = page.table
    assert table is not None
    width = len(TABLE_METRICS)
    keys = [page.column_keys.get(group, ("", "")) for group in table.groups]
    datasets = sorted({d for d, _ in keys if d})
    backbones = sorted({b for _, b in keys if b})
    methods = [r.label for r in table.rows if r.kind in BLOCK_ORDER]
    tags = sorted({t for m in methods for t in page.tags.get(m, ())})
    out = [
        '<section id="main"><h2 id="main-table">Main table</h2>',
        '<div class="filters">',
        _filter("method", "method", methods),
        _filter("dataset", "dataset", datasets),
        _filter("backbone", "backbone", backbones),
        _filter("tag", "tag", tags),
        "</div>",
        '<div class="scroll"><table class="sortable main" id="main-table-grid">',
        f"<caption>{_esc(table.caption)}</caption>",
        "<thead><tr>",
        '<th rowspan="2" class="sort" data-col="0" scope="col">method</th>',
    ]
    for group, (dataset, backbone) in zip(table.groups, keys, strict=True):
        attrs = _column_attrs(dataset, backbone)
        out.append(f'<th colspan="{width}" scope="colgroup"{attrs}>{_esc(group)}</th>')
    out.append("</tr><tr>")
    for i, (group, metric) in enumerate(table.columns):
        dataset, backbone = page.column_keys.get(group, ("", ""))
        out.append(
            f'<th class="sort" data-col="{i + 1}" scope="col"{_column_attrs(dataset, backbone)}>'
            f"{_esc(METRIC_LABELS[metric])}</th>"
        )
    out.append("</tr></thead>")
    block = None
    for row in table.rows:
        kind = "reported" if row.kind == "delta" else row.kind
        if kind != block:
            if block is not None:
                out.append("</tbody>")
            # the reported block keeps its order: each reported row above its delta row
            fixed = " data-fixed" if kind == "reported" else ""
            out.append(f'<tbody data-block="{kind}"{fixed}>')
            if kind in BLOCK_TITLES:
                span = len(table.columns) + 1
                out.append(
                    f'<tr class="block-title"><td colspan="{span}">{_esc(BLOCK_TITLES[kind])}'
                    "</td></tr>"
                )
            block = kind
        out.append(_main_row(page, row, keys, records))
    out += [
        "</tbody></table></div>",
        _notes(table.notes, "ol"),
        _notes(table.marks, "ul"),
        "</section>",
    ]
    return "\n".join(out)


def _filter(name: str, label: str, values: Sequence[str]) -> str:
    options = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
    return (
        f'<label>{label} <select id="filter-{name}" data-filter="{name}">'
        f'<option value="">all</option>{options}</select></label>'
    )


def _column_attrs(dataset: str, backbone: str) -> str:
    """data-dataset and data-backbone of a main-table column ('' for the average)."""
    return f' data-dataset="{_esc(dataset)}" data-backbone="{_esc(backbone)}"'


def _main_row(page: HtmlReport, row: Row, keys: list, records: list) -> str:
    table = page.table
    assert table is not None
    method = row.method or row.label
    tags = " ".join(sorted(page.tags.get(method, ())))
    label = _esc(row.label)
    if row.mark:
        label += f' <span class="mark" title="{_esc(row.kind)}">{_esc(row.mark)}</span>'
    if row.notes:
        label += f"<sup>[{','.join(map(str, row.notes))}]</sup>"
    cells = [f'<th scope="row" data-value="{_esc(row.label)}">{label}</th>']
    width = len(TABLE_METRICS)
    for i, cell in enumerate(row.cells):
        where = (table.groups[i // width], *keys[i // width])
        cells.append(_main_cell(page, row, cell, where, TABLE_METRICS[i % width], records))
    return (
        f'<tr class="{row.kind}" data-method="{_esc(method)}" data-tags="{_esc(tags)}">'
        + "".join(cells)
        + "</tr>"
    )


def _main_cell(
    page: HtmlReport,
    row: Row,
    cell: Cell,
    where: tuple[str, str, str],
    metric: str,
    records: list[tuple[str, str, list]],
) -> str:
    """One main-table cell: its text and marks as in the Markdown, its value for sorting, its
    interval on hover and a link to its records. `where` is (column label, dataset, backbone)."""
    group, dataset, backbone = where
    attrs = _column_attrs(dataset, backbone) + f' data-metric="{metric}"'
    if cell.mean is None:
        return f'<td{attrs} data-value="">-</td>'
    text = _esc(cell_text(cell))
    if cell.rank == 1:
        text = f"<strong>{text}</strong>"
    elif cell.rank == 2:
        text = f"<u>{text}</u>"
    marks = ""
    if cell.n is not None:
        marks += f' <span class="n">({cell.n})</span>'
    if cell.nondefault:
        marks += ' <span class="mark" title="not the default parameters">†</span>'
    if cell.tie:
        marks += ' <span class="mark" title="not significantly different from the best">≈</span>'
    if cell.outdated:
        marks += (
            f' <span class="mark outdated" title="outdated runs, kept on purpose">{OUTDATED_MARK}'
            "</span>"
        )
    attrs += f' data-value="{cell.mean!r}"'
    if cell.kind != "stat" or not dataset:
        return f"<td{attrs}>{text}{marks}</td>"
    attrs += f' data-column="{_esc(group)}" data-mean="{cell.mean!r}"'
    attrs += f' data-std="{(cell.std or 0.0)!r}"'
    title = _interval_title(page.cells, row.label, group, metric)
    point = page.points.get((row.label, dataset, backbone))
    if point is not None:
        entry = (row.label, group, point.runs)
        if entry not in records:
            records.append(entry)
        text = f'<a href="#records-{records.index(entry)}">{text}</a>'
    return f'<td{attrs} title="{_esc(title)}">{text}{marks}</td>'


def _interval_title(cells: pd.DataFrame | None, method: str, column: str, metric: str) -> str:
    """'95% interval [a, b] over n seeds; click for the records' from the cells frame."""
    if cells is None or f"{metric}_ci95_low" not in cells:
        return "click for the records"
    match = cells[(cells["method"] == method) & (cells["dataset"] == column)]
    if match.empty:
        return "click for the records"
    entry = match.iloc[0]
    low, high, n = entry[f"{metric}_ci95_low"], entry[f"{metric}_ci95_high"], int(entry["n"])
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"no interval from {n} seed{'s' if n != 1 else ''}; click for the records"
    return f"95% interval [{low:.2f}, {high:.2f}] over {n} seeds; click for the records"


# ------------------------------------------------------------------------------------------
# the other tables, the figures, the records


def _table_section(table: Table) -> str:
    out = [
        f'<section><h2 id="table-{_esc(table.name)}">{_esc(table.title)}</h2>',
        f'<div class="scroll"><table class="sortable" id="grid-{_esc(table.name)}">',
        f"<caption>{_esc(table.caption)}</caption><thead><tr>",
        *(
            f'<th class="sort" data-col="{i}" scope="col">{_esc(h)}</th>'
            for i, h in enumerate(table.header)
        ),
        "</tr></thead><tbody>",
    ]
    for row in table.rows:
        cells = "".join(f'<td data-value="{_esc(_sort_key(c))}">{_esc(c)}</td>' for c in row)
        out.append(f"<tr>{cells}</tr>")
    out += ["</tbody></table></div>", _notes(table.notes, "ul"), "</section>"]
    return "\n".join(out)


def _notes(notes: Sequence[str], kind: str) -> str:
    """A table's notes as an `kind` ("ol": numbered footnotes, "ul") list; '' without notes."""
    if not notes:
        return ""
    items = "".join(f"<li>{_esc(note)}</li>" for note in notes)
    return f'<{kind} class="notes">{items}</{kind}>'


_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _sort_key(text: str) -> str:
    """The number a cell starts with ('87.23 [85.1, 89.3]' -> '87.23'), else the text itself."""
    match = _NUMBER.match(text.strip())
    return match.group(0) if match else text


def _figures_section(figures: Sequence[FigureResult]) -> str:
    out = ['<section><h2 id="figures">Figures</h2>']
    for fig in figures:
        if fig.skipped:
            continue
        png = next((p for p in fig.files if p.suffix == ".png"), None)
        if png is None:
            continue
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        pdf = next((p.name for p in fig.files if p.suffix == ".pdf"), None)
        link = f' <a href="figures/{quote(pdf)}">PDF</a>' if pdf else ""
        out += [
            f'<figure id="figure-{_esc(fig.name)}">',
            f'<img src="data:image/png;base64,{data}" alt="{_esc(fig.title)}">',
            f"<figcaption><strong>{_esc(fig.title)}.</strong> {_esc(fig.description)}{link}"
            "</figcaption></figure>",
        ]
    skipped = [f for f in figures if f.skipped]
    if skipped:
        out.append('<h3>Skipped figures</h3><ul class="skipped">')
        out += [f"<li>{_esc(f.title)} (<code>{_esc(f.name)}</code>): {_esc(f.skipped)}.</li>"
                for f in skipped]  # fmt: skip
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _records_section(records: list[tuple[str, str, list]], out_dir: Path) -> str:
    out = [
        '<section><h2 id="records">Records</h2>',
        "<p>The JSON records behind each main-table cell, one per seed (paths relative to this "
        "page).</p>",
        '<table class="records"><thead><tr><th>method</th><th>dataset</th><th>records</th>'
        "</tr></thead><tbody>",
    ]
    for i, (method, column, runs) in enumerate(records):
        links = ", ".join(
            f'<a href="{_relative_url(run.path, out_dir)}">seed {run.seed}</a>' for run in runs
        )
        out.append(
            f'<tr id="records-{i}"><td>{_esc(method)}</td><td>{_esc(column)}</td>'
            f"<td>{links}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return "\n".join(out)


def _relative_url(path: Path, folder: Path) -> str:
    """`path` as a URL relative to `folder` (forward slashes, percent-encoded)."""
    return quote(os.path.relpath(path, folder).replace(os.sep, "/"))


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Markdown-ish inline text as HTML: escaped, `code` spans kept."""
    parts = _esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;
color:#1a1a1a;max-width:110rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem}
nav{margin:.5rem 0 1rem}ul.files{columns:2;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
caption{caption-side:top;text-align:left;padding:.3rem 0;max-width:90rem;color:#333}
th,td{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th[scope=row],td:first-child,th[data-col="0"]{text-align:left}.scroll{overflow-x:auto}
thead th{background:#f3f3f3;position:sticky;top:0}
th.sort{cursor:pointer}th.sort::after{content:" \\2195";color:#999}
th.sort[aria-sort=descending]::after{content:" \\2193";color:#000}
th.sort[aria-sort=ascending]::after{content:" \\2191";color:#000}
tr.block-title td{font-style:italic;text-align:left;background:#fafafa}
tr.reported,tr.delta{color:#555}tr.oracle,tr.interactive{color:#6a4a00}tr.adapted{color:#335}
td a{color:inherit;text-decoration:none}td a:hover{text-decoration:underline}
.n{color:#777;font-size:.8em}.mark{color:#a33}
.filters label{margin-right:1rem}.hidden{display:none}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;max-width:60rem}footer{margin-top:2rem;font-size:.85rem;color:#555}
"""

# Sorting: a click on a header sorts each tbody of its table by that column (numbers by value,
# missing values last), descending first; the main table's reported block keeps its order.
# Filters hide main-table rows (method, tag) and columns (dataset, backbone; the average column
# stays).
SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    var raw = cell ? cell.getAttribute("data-value") : "";
    if (raw === null) { raw = cell.textContent.trim(); }
    var number = parseFloat(raw);
    return { missing: raw === "" || raw === "-", number: number, text: raw,
             numeric: !isNaN(number) && isFinite(number) };
  }
  function compare(a, b, descending) {
    if (a.missing || b.missing) { return a.missing === b.missing ? 0 : (a.missing ? 1 : -1); }
    var order;
    if (a.numeric && b.numeric) { order = a.number - b.number; }
    else { order = a.text.localeCompare(b.text); }
    return descending ? -order : order;
  }
  function sortBy(header) {
    var table = header.closest("table");
    var col = parseInt(header.getAttribute("data-col"), 10);
    var descending = header.getAttribute("aria-sort") !== "descending";
    table.querySelectorAll("th.sort").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.querySelectorAll("tbody:not([data-fixed])").forEach(function (body) {
      var rows = Array.prototype.filter.call(body.rows, function (r) {
        return !r.classList.contains("block-title");
      });
      rows.sort(function (a, b) {
        return compare(key(a.cells[col]), key(b.cells[col]), descending);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  }
  document.querySelectorAll("th.sort").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  var grid = document.getElementById("main-table-grid");
  function value(name) {
    var select = document.getElementById("filter-" + name);
    return select ? select.value : "";
  }
  function applyFilters() {
    if (!grid) { return; }
    var method = value("method"), tag = value("tag"), dataset = value("dataset"),
        backbone = value("backbone");
    grid.querySelectorAll("tbody tr").forEach(function (row) {
      if (row.classList.contains("block-title")) { return; }
      var tags = (row.getAttribute("data-tags") || "").split(" ");
      var shown = (!method || row.getAttribute("data-method") === method) &&
                  (!tag || tags.indexOf(tag) >= 0);
      row.classList.toggle("hidden", !shown);
    });
    grid.querySelectorAll("[data-dataset]").forEach(function (cell) {
      var d = cell.getAttribute("data-dataset"), b = cell.getAttribute("data-backbone");
      var shown = (!d && !b) || ((!dataset || d === dataset) && (!backbone || b === backbone));
      cell.classList.toggle("hidden", !shown);
    });
  }
  document.querySelectorAll("select[data-filter]").forEach(function (select) {
    select.addEventListener("change", applyFilters);
  });
}());
"""
