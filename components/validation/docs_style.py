"""segflow's own stylesheet and script for the Great Expectations Data Docs, inlined in each page.

GX's page templates load Bootstrap 4, bootstrap-table, jQuery and Font Awesome from CDNs, so
offline (a hospital network, an air-gapped GPU host, a report opened from a DVC checkout) the
pages render unstyled and their JS-built tables stay empty. This covers the part of Bootstrap's
class vocabulary those templates use (grid, cards, tables, alerts, navs, spacing utilities, the
few icons); tables built by JS are rendered to HTML by :mod:`components.validation.offline_docs`.
"""

from __future__ import annotations

_SPACING_REM = {0: 0.0, 1: 0.25, 2: 0.5, 3: 1.0, 4: 1.5, 5: 3.0}
_SIDES: dict[str, tuple[str, ...]] = {
    "": ("",),
    "t": ("-top",),
    "b": ("-bottom",),
    "l": ("-left",),
    "r": ("-right",),
    "x": ("-left", "-right"),
    "y": ("-top", "-bottom"),
}


def _spacing_utilities() -> str:
    """Bootstrap's ``m-*``/``p-*`` classes (``mb-2``, ``px-0``, ``pl-md-4``, ``mr-auto``...)."""
    rules = []
    for prop, short in (("margin", "m"), ("padding", "p")):
        for side, suffixes in _SIDES.items():
            for size, rem in _SPACING_REM.items():
                decl = ";".join(f"{prop}{s}:{rem}rem" for s in suffixes)
                rules.append(f".{short}{side}-{size}{{{decl}}}")
                rules.append(f"@media(min-width:768px){{.{short}{side}-md-{size}{{{decl}}}}}")
                rules.append(f"@media(min-width:576px){{.{short}{side}-sm-{size}{{{decl}}}}}")
            if prop == "margin":
                decl = ";".join(f"margin{s}:auto" for s in suffixes)
                rules.append(f".m{side}-auto{{{decl}}}")
    return "\n".join(rules)


def _grid() -> str:
    """``row`` / ``col-*`` (12 columns; ``col-md-*`` and ``col-lg-*`` from their breakpoints)."""
    rules = [
        ".row{display:flex;flex-wrap:wrap;margin-left:-15px;margin-right:-15px}",
        "[class^=col],[class*=' col']{position:relative;width:100%;padding-left:15px;padding-right:15px;"
        "box-sizing:border-box}",
        ".row.px-0>[class^=col],.px-0{padding-left:0;padding-right:0}",
    ]
    widths = {n: f"flex:0 0 {100 * n / 12:.4f}%;max-width:{100 * n / 12:.4f}%" for n in range(1, 13)}
    rules += [f".col-{n},.col-xs-{n}{{{w}}}" for n, w in widths.items()]
    for infix, min_width in (("sm", 576), ("md", 768), ("lg", 992)):  # wider breakpoints win: later
        body = "".join(f".col-{infix}-{n}{{{w}}}" for n, w in widths.items())
        rules.append(f"@media(min-width:{min_width}px){{{body}}}")
    return "\n".join(rules)


_COMPONENTS = """
:root{--sf-accent:#1f5f99;--sf-border:#d8dde3;--sf-muted:#5f6b76;--sf-ok:#1e7e34;--sf-bad:#b02a37}
*,::before,::after{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  font-size:15px;line-height:1.5;color:#1d2329;background:#f6f8fa}
a{color:var(--sf-accent);text-decoration:none}a:hover{text-decoration:underline}
h1,h2,h3,h4,h5,h6,.h6{margin:0 0 .5rem;font-weight:600;line-height:1.25}
h3{font-size:1.35rem}h4{font-size:1.15rem}h5{font-size:1.05rem}h6,.h6{font-size:.95rem}
p{margin:0 0 .75rem}.lead{font-size:1.1rem;font-weight:300}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
pre{white-space:pre-wrap;word-break:break-word}
.container-fluid{width:100%;padding-left:15px;padding-right:15px}
.navbar{display:flex;align-items:center;background:#fff;padding:.5rem 1rem}
.navbar-brand img{height:40px}
.sticky-top,.sticky{position:sticky;top:0;z-index:10}
.fixed-bottom{position:fixed;left:0;right:0;bottom:0;z-index:20}
.border{border:1px solid var(--sf-border)}.border-bottom{border-bottom:1px solid var(--sf-border)}
.border-info{border-color:#17a2b8}.rounded{border-radius:.3rem}.rounded-0{border-radius:0}
.bg-light{background:#eef1f4}
.d-flex{display:flex}.d-none{display:none}.d-block{display:block}.flex-column{flex-direction:column}
@media(min-width:576px){.d-sm-block{display:block}.flex-sm-row{flex-direction:row}}
@media(min-width:768px){.d-md-block{display:block}.d-md-inline-flex{display:inline-flex}}
.align-items-center{align-items:center}.justify-content-center{justify-content:center}
.float-left{float:left}.text-center{text-align:center}.h-100{height:100%}
.invisible{visibility:hidden}.show-scrollbars{overflow:auto}
.text-success{color:var(--sf-ok)}.text-danger{color:var(--sf-bad)}.text-info{color:#117a8b}
.text-muted{color:var(--sf-muted)}
.card{background:#fff;border:1px solid var(--sf-border);border-radius:.4rem;margin-bottom:1rem;
  overflow:hidden}
.card-header{background:#eef3f8;border-bottom:1px solid var(--sf-border);padding:.6rem 1rem}
.card-body{padding:1rem}.card-text{margin:0}
.alert{position:relative;padding:.75rem 1.25rem;margin-bottom:1rem;border:1px solid transparent;
  border-radius:.3rem}
.alert-secondary{background:#e2e6ea;border-color:#d6d8db}.alert-info{background:#e3f4f8;border-color:#bee5eb}
.alert-heading{margin-top:0}.close{float:right;background:none;border:0;font-size:1.3rem;cursor:pointer}
.table,table{width:100%;border-collapse:collapse;margin-bottom:1rem;background:#fff}
.table th,.table td,table th,table td{padding:.45rem .6rem;border-top:1px solid var(--sf-border);
  vertical-align:top;text-align:left}
.table-sm th,.table-sm td{padding:.3rem .45rem}
.table-bordered th,.table-bordered td{border:1px solid var(--sf-border)}
thead th{background:#eef3f8;border-bottom:2px solid var(--sf-border)}
tbody tr:hover{background:#f3f7fb}
.table-responsive{display:block;width:100%;overflow-x:auto}
.nav{display:flex;flex-wrap:wrap;padding-left:0;margin:0;list-style:none}
.nav-tabs{border-bottom:1px solid var(--sf-border)}
.nav-item{margin-bottom:-1px}
.nav-link{display:block;padding:.45rem 1rem;border:1px solid transparent;border-radius:.3rem .3rem 0 0}
.nav-tabs .nav-link.active{background:#fff;border-color:var(--sf-border) var(--sf-border) #fff;
  color:#1d2329;font-weight:600}
.nav-pills .nav-link{border-radius:.3rem}.nav-pills .nav-link.active{background:var(--sf-accent);color:#fff}
.tab-content>.tab-pane{display:none}.tab-content>.active{display:block}
.collapse:not(.show){display:none}
.breadcrumb{display:flex;flex-wrap:wrap;list-style:none;padding:.5rem 1rem;margin:0 0 1rem;
  background:#eef1f4;border-radius:.3rem}
.breadcrumb-item+.breadcrumb-item::before{content:"/";padding:0 .5rem;color:var(--sf-muted)}
.btn{display:inline-block;padding:.3rem .75rem;font-size:.9rem;border:1px solid var(--sf-border);
  border-radius:.3rem;background:#fff;color:#1d2329;cursor:pointer}
.btn-sm{padding:.2rem .5rem;font-size:.82rem}
.btn-primary,.btn.active{background:var(--sf-accent);border-color:var(--sf-accent);color:#fff}
.btn-secondary{background:#6c757d;border-color:#6c757d;color:#fff}
.btn-group,.btn-group-toggle{display:inline-flex;gap:.25rem}
.btn-group-toggle input{margin-right:.3rem}
.ge-section{margin-bottom:1rem}
.fas{font-style:normal;font-weight:700}
.fa-check-circle::before{content:"\\2714"}.fa-times::before{content:"\\2716"}
.fa-question-circle::before{content:"?"}.fa-exclamation-triangle::before{content:"\\26A0"}
.fa-comment::before{content:"\\1F4AC"}
.segflow-row-link{color:inherit;display:block}
body>footer,[id$=-body-table-toolbar]{display:none}
.segflow-offline-note{font-size:.8rem;color:var(--sf-muted);padding:.25rem 1rem}
"""

SCRIPT = """
(function () {
  function target(el) {
    var sel = el.getAttribute("data-target") || el.getAttribute("href");
    return sel && sel.charAt(0) === "#" ? document.getElementById(sel.slice(1)) : null;
  }
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-toggle=tab],[data-toggle=collapse],[data-dismiss=alert]");
    if (!el) { return; }
    var kind = el.getAttribute("data-toggle") || "dismiss";
    if (kind === "dismiss") { el.closest(".alert").remove(); return; }
    var pane = target(el);
    if (!pane) { return; }
    ev.preventDefault();
    if (kind === "collapse") { pane.classList.toggle("show"); return; }
    el.closest(".nav").querySelectorAll(".nav-link").forEach(function (a) { a.classList.remove("active"); });
    el.classList.add("active");
    Array.prototype.forEach.call(pane.parentElement.children, function (p) {
      p.classList.remove("active", "show");
    });
    pane.classList.add("active", "show");
  });
  function showSucceeded(show) {  // the validation page's "Show All" / "Failed Only" filter
    var hidden = [];
    document.querySelectorAll(".hide-succeeded-validation-target-child").forEach(function (el) {
      hidden.push(el.parentElement);
    });
    document.querySelectorAll(".hide-succeeded-validation-target").forEach(function (el) {
      hidden.push(el);
    });
    var sections = ".hide-succeeded-validations-column-section-target-child";
    document.querySelectorAll(sections).forEach(function (el) {
      var section = el.parentElement.parentElement;
      hidden.push(section);
      if (section.id) {
        document.querySelectorAll('a[href$="' + section.id + '"]').forEach(function (a) { hidden.push(a); });
      }
    });
    hidden.forEach(function (el) { el.style.display = show ? "" : "none"; });
  }
  window.showAllValidations = function () { showSucceeded(true); };
  window.hideSucceededValidations = function () { showSucceeded(false); };
  document.addEventListener("click", function (ev) {
    var label = ev.target.closest(".btn-group-toggle .btn");
    if (!label) { return; }
    label.parentElement.querySelectorAll(".btn").forEach(function (b) { b.classList.remove("active"); });
    label.classList.add("active");
  });
})();
"""


def stylesheet() -> str:
    """The whole inline stylesheet."""
    return "\n".join([_COMPONENTS, _grid(), _spacing_utilities()])
