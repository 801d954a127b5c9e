"""Small Sphinx fixes that keep the bamf book's pages free of browser console errors.

* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1,
  so a page declares ``const THEBE_JS_URL`` twice (a SyntaxError): drop exact duplicates.
* pydata-sphinx-theme logs an error when no default colour mode is configured: use light.
* The ipywidgets manager (served offline from ``_static/widgets``) injects CSS whose
  font URLs resolve relative to each page (``@jupyter-widgets/...``): copy the fonts there.

And one check: a MyST role or directive that reached a page as text (``{numref}`...```,
``{glue:text}``, ``:::{table}``) fails the build (:mod:`bamf_book_checks`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bamf_book_checks import check_html_dir  # noqa: E402

_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_FONT_DIRS = ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", None) or "", attrs.get("body", ""))
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    scripts[:] = unique


def _default_mode(app, config):
    config.html_context.setdefault("default_mode", "light")


def _copy_widget_fonts(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    fonts = sorted((out / "_static" / "widgets").glob("*.woff*"))
    page_dirs = {p.parent for p in out.rglob("*.html") if _WIDGET_STATE in p.read_text(errors="ignore")}
    for page_dir in page_dirs:
        for sub in _FONT_DIRS:
            target = page_dir / sub
            target.mkdir(parents=True, exist_ok=True)
            for font in fonts:
                shutil.copy2(font, target / font.name)


def _fail_on_unrendered_markup(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    found = check_html_dir(Path(app.outdir))
    if found:
        log = logging.getLogger(__name__)
        for page, hits in found.items():
            for hit in hits:
                log.warning(f"{page}: unrendered role or directive left as text: {hit}")
        raise ExtensionError(
            f"{sum(map(len, found.values()))} unrendered roles or directives on "
            f"{len(found)} pages: {', '.join(found)} (book/_ext/bamf_book_checks.py)"
        )


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    app.connect("build-finished", _copy_widget_fonts)
    app.connect("build-finished", _fail_on_unrendered_markup)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
