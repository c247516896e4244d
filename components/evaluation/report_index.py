"""``reports/index.html``: one self-contained page linking every report of the last pipeline run.

Validation (the Data Docs and the dataset fingerprint), cross-validation and test (headline table,
protocol metrics, every plot), the postprocessing chosen on CV, and the registered model (version,
alias, why, and the MLflow pages). Styles are inlined and every link is relative, so the page works
from a DVC checkout or a copied folder without network.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from components.core import layout
from components.evaluation.presentation import PROTOCOL_KEY
from components.validation.docs_style import stylesheet

METRICS = ("dice", "iou", "sensitivity", "precision", "hd95", "assd")
PROTOCOL_METRICS = ("pooled_dice", "dice_thrmean", "dice_thrmean_label", "pixel_roc_auc")
PAGE_CSS = """
main{max-width:1180px;margin:0 auto;padding:1.5rem}
header.sf{background:#fff;border-bottom:1px solid var(--sf-border);padding:1rem 1.5rem}
header.sf h1{font-size:1.5rem;margin:0}
section.card h2{font-size:1.2rem;margin:0}
.sf-plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
.sf-plots figure{margin:0;background:#fff;border:1px solid var(--sf-border);border-radius:.3rem;padding:.5rem}
.sf-plots img{width:100%;height:auto}
.sf-plots figcaption{font-size:.85rem;color:var(--sf-muted)}
.sf-alias{display:inline-block;padding:.1rem .5rem;border-radius:1rem;background:#1e7e34;color:#fff;
  font-size:.85rem}
.sf-alias.challenger{background:#8a6d3b}
.table .num{text-align:right;font-variant-numeric:tabular-nums}
"""


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value: Any, sd: Any = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def headline_table(headline: dict[str, Any]) -> str:
    """Per class: the headline metrics as mean ± sd; the protocol metrics below when present."""
    rows = []
    for cls, metrics in headline.items():
        if not isinstance(metrics, dict) or cls == PROTOCOL_KEY:
            continue
        cells = "".join(
            f'<td class="num">{_fmt(metrics.get(m, {}).get("mean"), metrics.get(m, {}).get("sd"))}</td>'
            for m in METRICS
        )
        rows.append(f"<tr><th>{html.escape(cls)}</th>{cells}</tr>")
    head = "".join(f'<th class="num">{m}</th>' for m in METRICS)
    out = f'<table class="table table-sm"><thead><tr><th>class</th>{head}</tr></thead>'
    out += f"<tbody>{''.join(rows)}</tbody></table>"
    protocol = headline.get(PROTOCOL_KEY) or {}
    if protocol:
        head = "".join(f'<th class="num">{m}</th>' for m in PROTOCOL_METRICS)
        body = "".join(
            f"<tr><th>{html.escape(cls)}</th>"
            + "".join(f'<td class="num">{_fmt(v.get(m))}</td>' for m in PROTOCOL_METRICS)
            + "</tr>"
            for cls, v in protocol.items()
        )
        out += f'<table class="table table-sm"><thead><tr><th>class</th>{head}</tr></thead>'
        out += f"<tbody>{body}</tbody></table>"
    return out


def _rel(path: Path, out_dir: Path) -> str:
    return html.escape(os.path.relpath(path, out_dir).replace(os.sep, "/"))


def _files(report_dir: Path, out_dir: Path) -> str:
    names = [layout.PER_CASE_FILE, layout.HEADLINE_FILE, layout.STATISTICS_FILE, layout.ROC_FILE]
    links = [
        f'<a href="{_rel(report_dir / n, out_dir)}">{n}</a>' for n in names if (report_dir / n).is_file()
    ]
    return f"<p>Files: {' · '.join(links)}</p>" if links else ""


def _plots(report_dir: Path, out_dir: Path) -> str:
    plots = sorted((report_dir / layout.PLOTS_DIR).glob("*.png"))
    figures = "".join(
        f'<figure><a href="{_rel(p, out_dir)}">'
        f'<img src="{_rel(p, out_dir)}" alt="{p.stem}" loading="lazy"></a>'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>"
        for p in plots
    )
    return f'<div class="sf-plots">{figures}</div>' if figures else ""


def _card(title: str, body: str, anchor: str) -> str:
    return (
        f'<section class="card" id="{anchor}"><div class="card-header"><h2>{title}</h2></div>'
        f'<div class="card-body">{body}</div></section>'
    )


def _validation(root: Path, out_dir: Path) -> str:
    result = _load(root / layout.VALIDATION_REPORTS / "result.json") or {}
    stats = result.get("statistics") or {}
    fp = _load(root / layout.FINGERPRINT) or {}
    ok = result.get("success")
    status = "passed" if ok else "failed" if ok is False else "not run"
    docs = root / layout.VALIDATION_REPORTS / "data_docs" / "index.html"
    parts = [
        f"<p>Great Expectations suite <strong>{status}</strong>: "
        f"{stats.get('successful_expectations', '?')} of {stats.get('evaluated_expectations', '?')} "
        f'expectations met. <a href="{_rel(docs, out_dir)}">Open the Data Docs</a>.</p>'
    ]
    if fp:
        fractions = ", ".join(f"{k} {v:.3f}" for k, v in (fp.get("class_fractions") or {}).items())
        parts.append(
            f"<p>{fp.get('n_cases', '?')} cases, {fp.get('ndim', '?')}D, "
            f"{fp.get('channels', '?')} channel(s); "
            f"class fractions: {html.escape(fractions)}. "
            f'<a href="{_rel(root / layout.FINGERPRINT, out_dir)}">fingerprint.json</a></p>'
        )
    return _card("Validation", "".join(parts), "validation")


def _evaluation(root: Path, out_dir: Path, report_dir: Path, title: str, note: str, anchor: str) -> str:
    headline = _load(root / report_dir / layout.HEADLINE_FILE)
    if headline is None:
        return _card(title, "<p>Not run yet.</p>", anchor)
    body = f"<p>{note}</p>" + headline_table(headline)
    body += _files(root / report_dir, out_dir) + _plots(root / report_dir, out_dir)
    return _card(title, body, anchor)


def _postprocessing(root: Path) -> str:
    pp = _load(root / layout.POSTPROCESSING)
    if not pp:
        return ""
    chosen = [c for c in pp.get("candidates", []) if c.get("chosen")]
    rows = "".join(
        f"<tr><th>{html.escape(str(c.get('class_name', c['class'])))}</th><td>{html.escape(c['rule'])}</td>"
        f'<td class="num">{_fmt(c.get("mean_dice"))}</td></tr>'
        for c in chosen
    )
    table = (
        '<table class="table table-sm"><thead><tr><th>class</th><th>rule kept</th>'
        f"<th>CV mean Dice with it</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _card("Postprocessing", f"<p>{html.escape(pp.get('chosen_on', ''))}.</p>{table}", "postprocessing")


def _registry(root: Path) -> str:
    reg = _load(root / layout.REGISTRATION)
    if not reg:
        return ""
    alias = html.escape(str(reg["alias"]))
    body = (
        f"<p><strong>{html.escape(str(reg['registered_model']))}</strong> "
        f"version {html.escape(str(reg['version']))} "
        f'<span class="sf-alias {alias}">{alias}</span> — test mean foreground Dice '
        f"{_fmt(reg.get('test_dice'))}; {html.escape(str(reg.get('reason', '')))}.</p>"
    )
    links = reg.get("links") or {}
    if links:
        items = "".join(
            f'<li><a href="{html.escape(url)}">{html.escape(label)}</a></li>' for label, url in links.items()
        )
        body += f"<ul>{items}</ul>"
    return _card("Registered model", body, "registry")


def render_report_index(root: Path, out: Path) -> str:
    """The index page's HTML for the project at ``root``, with links relative to ``out``'s folder."""
    out_dir = (root / out).parent
    reg = _load(root / layout.REGISTRATION) or {}
    title = "segflow report" + (f" — {reg['registered_model']} v{reg['version']}" if reg else "")
    sections = [
        _registry(root),
        _validation(root, out_dir),
        _evaluation(
            root,
            out_dir,
            layout.CV_REPORTS,
            "Cross-validation",
            "Each fold's model on its held-out cases; mean ± sd across folds.",
            "cv",
        ),
        _postprocessing(root),
        _evaluation(
            root,
            out_dir,
            layout.TEST_REPORTS,
            "Test set (fold ensemble)",
            "The packaged ensemble on the held-out test split; mean ± sd across cases.",
            "test",
        ),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{stylesheet()}{PAGE_CSS}</style></head><body>"
        f'<header class="sf"><h1>{html.escape(title)}</h1></header>'
        f"<main>{''.join(s for s in sections if s)}</main></body></html>"
    )


def write_report_index(root: Path = Path(), out: Path = layout.REPORT_INDEX) -> Path:
    """Write ``reports/index.html`` (atomically) and return its path."""
    path = root / out
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report_index(root, out), encoding="utf-8")
    os.replace(tmp, path)
    return path
