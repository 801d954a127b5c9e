"""Markup that failed to render: MyST roles and directives left as text in the built HTML.

A role written inside a code span (`` `{glue:text}`key` ``), a glue key that a chapter never
glued, or a role inside Markdown that a notebook displays unparsed, all reach the page as
literal text such as ``{numref}`tab-x``` or ``:::{table}``.  :func:`find_unrendered` reads a
page's text (not its code cells, literal blocks, math or scripts, where such text is
legitimate) and returns every such leftover; the book's Sphinx extension runs it over every
page after the build and fails the build on any hit.

Command line (a built book, or any folder of HTML pages)::

    python book/_ext/bamf_book_checks.py _build/html     # exit status 1 and one line per hit
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["ROLE_NAMES", "find_unrendered", "check_html_dir"]

#: roles and directives of MyST, Sphinx, myst-nb and sphinxcontrib-bibtex that the book uses or could
ROLE_NAMES = (
    "glue",
    "glue:text",
    "glue:md",
    "glue:any",
    "glue:figure",
    "glue:math",
    "numref",
    "eq",
    "ref",
    "doc",
    "cite",
    "cite:p",
    "cite:t",
    "cite:ps",
    "cite:ts",
    "term",
    "math",
    "download",
    "abbr",
    "sub",
    "sup",
    "figure",
    "table",
    "code-cell",
    "admonition",
    "bibliography",
    "include",
    "tableofcontents",
    "note",
    "warning",
    "dropdown",
    "list-table",
    "csv-table",
    "image",
    "prf:ref",
)
_NAMES = "|".join(re.escape(n) for n in sorted(ROLE_NAMES, key=len, reverse=True))
# a known role or directive name in braces, e.g. {numref} or {glue:text}, anywhere in the text;
# any {name}`...` (a role with a backtick argument), and any ```{name} / :::{name} fence
_PATTERN = re.compile(rf"\{{(?:{_NAMES})\}}|\{{[a-z][\w:-]*\}}`|(?:```|:::)\s*\{{[a-z][\w:-]*\}}", re.IGNORECASE)
# elements whose text may legitimately hold such markup: code cells' sources, literal blocks,
# math (LaTeX braces), scripts and styles (widget state, search index)
_SKIP_CLASSES = {"cell_input", "highlight", "math", "MathJax", "MathJax_Display"}  # whole class names: a
# section's "mathjax_ignore" must not hide its prose
_SKIP_TAGS = ("script", "style", "mjx-container", "textarea")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Text(HTMLParser):
    """The text a reader sees, with the skipped elements left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: does it (or an ancestor) skip?
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        classes = dict(attrs).get("class") or ""
        tokens = classes.split()
        skip = tag in _SKIP_TAGS or any(t in _SKIP_CLASSES or t.startswith(("highlight-", "mjx-")) for t in tokens)
        self.stack.append(skip or (self.stack[-1] if self.stack else False))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.parts.append(data)


def find_unrendered(html: str) -> list[str]:
    """Every unrendered role or directive in ``html``, each with a little context.

    Examples
    --------
    >>> find_unrendered('<p>Four networks: the <code>{glue:text}</code>profile_name` profile</p>')
    ['...Four networks: the {glue:text}profile_name` profile...']
    >>> find_unrendered('<p>see Table 2.1</p><div class="cell_input"><pre>f"{{numref}}`t`"</pre></div>')
    []
    """
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = re.sub(r"\s+", " ", "".join(parser.parts))
    hits = []
    for m in _PATTERN.finditer(text):
        hits.append("..." + text[max(0, m.start() - 40) : m.end() + 30].strip() + "...")
    return hits


def check_html_dir(folder: Path) -> dict[str, list[str]]:
    """:func:`find_unrendered` over every ``*.html`` page under ``folder`` (sources and static files
    excluded): ``{page: hits}`` for the pages with hits."""
    folder = Path(folder)
    out = {}
    for page in sorted(folder.rglob("*.html")):
        rel = page.relative_to(folder).as_posix()
        if rel.startswith(("_static/", "_sources/")) or rel in ("genindex.html", "search.html"):
            continue
        hits = find_unrendered(page.read_text(encoding="utf-8", errors="replace"))
        if hits:
            out[rel] = hits
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python book/_ext/bamf_book_checks.py HTML_DIR")
    found = check_html_dir(Path(sys.argv[1]))
    for page, hits in found.items():
        for hit in hits:
            print(f"{page}: unrendered markup: {hit}")
    print(f"{sum(map(len, found.values()))} unrendered roles or directives on {len(found)} pages")
    sys.exit(1 if found else 0)
