"""Data Docs without network: no external loads left, JS-built tables rendered, segflow's styles in."""

from __future__ import annotations

from pathlib import Path

from components.data.discovery import discover
from components.validation import build_metadata, validate_metadata
from components.validation.duplicate_groups import NearDuplicateOptions
from components.validation.offline_docs import MARKER, external_references, offline_page
from tests.data.broken import write_broken_dataset

GX_LIKE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
</head><body>
<img src="https://assets.example/logo-long.png?d=1&dataContextId=abc" alt="logo">
<table id="t-1" data-toggle="table"></table>
<script>
  $('#t-1').bootstrapTable(
    Object.assign(
      {
        columns: [{'field': 'name', 'title': 'Suite'}, {'field': 'ok', 'title': 'Status'}],
        data: [{'name': 'a &amp; b', 'ok': '<i class="fas"></i>', '_table_row_link_path': 'x/a.html'}],
        toolbar: '#t-1-toolbar'
      },
      {'search': 'true'}
    )
  );
</script>
<a href="https://greatexpectations.io">GX</a>
</body></html>"""


def test_page_rewrite_drops_network_loads_and_renders_the_js_table(tmp_path: Path) -> None:
    (tmp_path / "static" / "images").mkdir(parents=True)
    (tmp_path / "static" / "images" / "logo-long.png").write_bytes(b"png")
    assert len(external_references(GX_LIKE)) == 3  # the check sees what GX's pages load

    page = offline_page(GX_LIKE, tmp_path, "../")
    assert external_references(page) == []
    assert 'src="../static/images/logo-long.png"' in page  # the local copy GX ships
    assert "<th>Suite</th><th>Status</th>" in page
    assert '<a class="segflow-row-link" href="x/a.html">a &amp; b</a>' in page
    assert "bootstrapTable" not in page and "$(" not in page  # no jQuery snippet left to throw
    assert f'<style id="{MARKER}">' in page and ".table" in page
    assert 'href="https://greatexpectations.io"' in page  # plain links are navigation, kept
    assert offline_page(page, tmp_path, "../") == page  # idempotent


def test_validate_writes_data_docs_that_need_no_network(tmp_path: Path) -> None:
    write_broken_dataset(tmp_path / "data")
    meta = build_metadata(
        discover(tmp_path / "data"), [0, 1], root=tmp_path / "data", near_duplicates=NearDuplicateOptions()
    )
    outcome = validate_metadata(meta, [0, 1], tmp_path / "report")
    site = tmp_path / "report" / "data_docs"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 3  # index, the suite, the validation result
    for path in pages:
        text = path.read_text()
        assert external_references(text) == [], path
        assert MARKER in text, path
    index = (site / "index.html").read_text()
    assert "segflow-row-link" in index  # the validation results table, rendered without JS
    [result_page] = (site / "validations").rglob("*.html")
    assert 'href="' + result_page.relative_to(site).as_posix() + '"' in index
    body = result_page.read_text()
    assert not outcome.success and "images/garbage.png" in body  # the failure is on the page
