"""The report's marks for tagged methods: `adapted` ones (sac, seic, magic) in a block of their
own below the faithful reimplementations, never bolded against them; `interactive` ones (idc)
in their own block, never ranked; a mark on each row and a footnote saying what it means, in
Markdown, LaTeX, HTML and the CLI's results table."""

from __future__ import annotations

from test_report import VIT, write_cell

from laicbench.api import registry
from laicbench.report.build import build_report
from laicbench.report.tables import build_main_table


def _results(root):
    # sac (adapted) and idc (interactive) beat every faithful method: neither may be bolded
    for method, base in (
        ("clip-kmeans", (70.0, 74.0, 61.0)),
        ("tac", (83.0, 91.0, 83.0)),
        ("sac", (88.0, 95.0, 88.0)),
        ("idc", (92.0, 97.0, 93.0)),
    ):
        for dataset in ("cifar10", "stl10"):
            write_cell(root, method, dataset, base, backbone=VIT)
    write_cell(root, "zeroshot", "cifar10", (80.0, 88.0, 77.7), seeds=(0,))
    return root


def test_the_tags_are_declared_where_the_report_reads_them():
    for name in ("sac", "seic", "magic"):
        cls = registry.methods.get(name)
        assert "adapted" in cls.tags and not cls.oracle
    idc = registry.methods.get("idc")
    assert "interactive" in idc.tags and idc.oracle and not idc.tunable()


def test_markdown_keeps_adapted_and_interactive_rows_apart_with_marks(tmp_path):
    report = build_report(_results(tmp_path / "results"), out=tmp_path / "out", reference=False)
    markdown = (report.out / "main_table.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()}
    assert "sac ◊" in rows and "idc ‡" in rows and "tac" in rows
    # the faithful block first; tac is its best, bold although sac and idc score higher
    assert "**91.00 ± 0.30** (3)" in rows["tac"]
    for tagged in ("sac ◊", "idc ‡", "zeroshot"):
        assert "**" not in rows[tagged] and "<ins>" not in rows[tagged]
    adapted_title = markdown.index("*adapted reimplementations ◊")
    interactive_title = markdown.index("*interactive supervision ‡")
    assert markdown.index("| tac |") < adapted_title < markdown.index("| sac ◊")
    assert markdown.index("| sac ◊") < interactive_title < markdown.index("| idc ‡")
    assert markdown.index("| idc ‡") < markdown.index("| zeroshot")
    # one footnote per mark, after the table
    assert "- ◊ adapted: runs on inputs other than its paper's" in markdown
    assert "- ‡ interactive: learns from simulated user feedback" in markdown

    latex = (report.out / "main_table.tex").read_text()
    assert "sac $\\diamond$" in latex and "idc \\textsuperscript{\\ddag}" in latex
    assert "$\\diamond$ adapted: runs on inputs" in latex
    assert "\\textbf{91.00\\,$\\pm$\\,0.30}" in latex
    assert "\\textbf{95.00" not in latex and "\\textbf{97.00" not in latex

    html = (report.out / "index.html").read_text()
    assert '<span class="mark" title="adapted">◊</span>' in html
    assert '<span class="mark" title="interactive">‡</span>' in html
    assert '<tbody data-block="adapted">' in html and '<tbody data-block="interactive">' in html
    assert "<li>‡ interactive: learns from simulated user feedback" in html


def test_no_mark_and_no_footnote_without_tagged_methods(tmp_path):
    root = tmp_path / "results"
    write_cell(root, "clip-kmeans", "cifar10", (70.0, 74.0, 61.0))
    write_cell(root, "tac", "cifar10", (83.0, 91.0, 83.0))
    report = build_report(root, out=tmp_path / "out", reference=False)
    table = build_main_table(report.runs)
    assert table.marks == [] and all(row.mark == "" for row in table.rows)
    markdown = (report.out / "main_table.md").read_text()
    assert "◊" not in markdown and "‡" not in markdown


def test_the_cli_results_table_marks_the_tagged_methods():
    from rich.console import Console

    from laicbench.cli.run import _print_results_table
    from laicbench.run.records import RunRecord

    def record(method, acc):
        cls = registry.methods.get(method)
        return RunRecord.from_dict(
            {
                "schema_version": 1,
                "run_id": f"{method}-0",
                "spec": {
                    "method": method,
                    "dataset": "demo-10",
                    "backbone": "tiny-random",
                    "seed": 0,
                    "params": cls().get_params(),
                },
                "method": {
                    "name": method,
                    "version": cls.version,
                    "params": cls().get_params(),
                    "oracle": cls.oracle,
                    "needs": [],
                },
                "dataset": {"name": "demo-10", "n_classes": 10},
                "backbone": "tiny-random",
                "seed": 0,
                "status": "ok",
                "metrics": {"acc": acc, "nmi": acc, "ari": acc},
            }
        )

    console = Console(record=True, width=300)
    records = [record("idc", 90.0), record("sac", 80.0), record("tac", 70.0)]
    _print_results_table(records, console)
    text = console.export_text()
    assert text.index("tac") < text.index("sac ◊") < text.index("idc (interactive ‡)")
    assert "◊ adapted:" in text and "‡ interactive:" in text
