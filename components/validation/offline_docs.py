"""Make a Great Expectations Data Docs site render without network.

GX 1.x pages pull Bootstrap, bootstrap-table, jQuery, Font Awesome and Vega from CDNs and fetch
their logo from GX's S3 bucket with the data context id in the query string. Each page is
rewritten once, right after GX builds the site:

- every ``<link>``/``<script>``/``<img>`` that loads from the network is dropped (an image GX
  also ships under ``static/images`` points at that local copy instead);
- the tables GX fills in the browser from a JS literal (the index page's validation results and
  suites) are rendered to plain HTML rows, each linking its page as the original row click did;
- the page's jQuery snippets (which would only throw without jQuery) are removed, and segflow's
  own stylesheet and a few lines of vanilla JS (tabs, collapsibles) are inlined.

The result has no external reference left (:func:`external_references` proves it in tests).
"""

from __future__ import annotations

import ast
import html as html_lib
import os
import re
from pathlib import Path
from typing import Any

from components.validation.docs_style import SCRIPT, stylesheet

_EXTERNAL = r"""["'](?:https?:)?//[^"']*["']"""
_LINK = re.compile(rf"<link\b[^>]*\bhref\s*=\s*{_EXTERNAL}[^>]*>", re.I)
_SCRIPT_SRC = re.compile(rf"<script\b[^>]*\bsrc\s*=\s*{_EXTERNAL}[^>]*>\s*</script>", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>.*?</script>", re.I | re.S)
_IMG = re.compile(r"""<img\b[^>]*\bsrc\s*=\s*["'](?P<url>(?:https?:)?//[^"']*)["'][^>]*>""", re.I)
_JS_TABLE = re.compile(
    r"\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns: (?P<columns>.*),\s*\n\s*data: (?P<data>.*),\s*\n",
)
_EXTERNAL_REF = re.compile(r"""\b(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)
MARKER = "segflow-offline"


def _table_html(table_id: str, columns: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html_lib.escape(str(c.get('title', c['field'])))}</th>" for c in columns)
    body = []
    for row in rows:
        link = row.get("_table_row_link_path")
        cells = []
        for c in columns:
            value = str(row.get(c["field"], ""))  # GX's cell values are HTML it rendered itself
            if link and "<a " not in value:  # a cell that links already keeps its own link
                value = f'<a class="segflow-row-link" href="{html_lib.escape(str(link))}">{value}</a>'
            align = ' style="text-align:center"' if c.get("align") == "center" else ""
            cells.append(f"<td{align}>{value}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table id="{table_id}" class="table table-sm table-bordered">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _render_js_tables(page: str) -> str:
    """Fill each empty ``<table id=...>`` that a bootstrapTable call would have populated."""
    for m in list(_JS_TABLE.finditer(page)):
        try:
            table = _table_html(m["id"], ast.literal_eval(m["columns"]), ast.literal_eval(m["data"]))
        except (ValueError, SyntaxError):
            continue  # not the literal GX writes: leave that table as GX made it
        empty = re.compile(rf'<table\b[^>]*\bid="{re.escape(m["id"])}"[^>]*>.*?</table>', re.S)
        page = empty.sub(lambda _m: table, page, count=1)  # noqa: B023 (used at once, in this turn)
    return page


def _local_image(match: re.Match[str], site: Path, prefix: str) -> str:
    name = match["url"].split("?", 1)[0].rsplit("/", 1)[-1]
    if name and (site / "static" / "images" / name).is_file():
        return match[0].replace(match["url"], f"{prefix}static/images/{name}")
    return ""


def offline_page(page: str, site: Path, prefix: str) -> str:
    """One page without network references, with segflow's styles and script inlined.

    Args:
        page: The page's HTML as GX wrote it.
        site: The site's root folder (holds ``static/``).
        prefix: Relative path from the page's folder to ``site`` (``""`` or ``"../../"``).
    """
    if MARKER in page:
        return page  # already rewritten
    page = _render_js_tables(page)
    page = _LINK.sub("", page)
    page = _SCRIPT_SRC.sub("", page)
    page = _INLINE_SCRIPT.sub("", page)  # jQuery/bootstrap-table/Vega snippets
    page = _IMG.sub(lambda m: _local_image(m, site, prefix), page)
    head = (
        f'<style id="{MARKER}">{stylesheet()}\n#ge-cta-footer{{display:none}}</style>'
        f"<script>{SCRIPT}</script>"
    )
    return page.replace("</head>", head + "</head>", 1) if "</head>" in page else head + page


def make_offline(site: Path) -> list[Path]:
    """Rewrite every page of a Data Docs site in place; return the pages rewritten."""
    pages = sorted(Path(site).rglob("*.html"))
    for path in pages:
        prefix = os.path.relpath(site, path.parent).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        path.write_text(offline_page(path.read_text(encoding="utf-8"), Path(site), prefix), encoding="utf-8")
    return pages


def external_references(page: str) -> list[str]:
    """The ``src=``/``href=`` attributes of a page that would load from the network.

    Plain links (``<a href="https://...">``) are navigation, not loads, and are not counted.
    """
    found = []
    for tag in re.finditer(r"<(link|script|img|iframe|source|video|audio)\b[^>]*>", page, re.I):
        if _EXTERNAL_REF.search(tag[0]):
            found.append(tag[0][:120])
    return found
