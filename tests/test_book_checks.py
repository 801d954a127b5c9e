"""The build check for unrendered MyST markup (book/_ext/bamf_book_checks.py) fails on a broken copy.

The book's Sphinx extension runs the check after every build and raises on a hit, so
`make book` and `make test` stop there; these tests feed the checker deliberately broken
pages and clean ones, and, where the book is built, a broken copy of a real page.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from bamf_book_checks import check_html_dir, find_unrendered  # noqa: E402

BROKEN = {
    "glue in a code span (chapter 2's bug)": '<p>the <code class="docutils literal notranslate"><span class="pre">{glue:text}</span></code>profile_name` '
    "profile</p>",
    "a numref left as text": "<p>as {numref}`tab-eval-paper24` shows</p>",
    "an eq role": "<li>the band {eq}`eq-fdb`</li>",
    "a ref role": "<p>see {ref}`sec-departures`</p>",
    "a cite role": "<p>after {cite:p}`ma2019boundary`</p>",
    "a doc role": "<p>the {doc}`departures` page</p>",
    "a bare glue key marker": "<td>{glue:md}</td>",
    "an unparsed table directive": "<div class='output text_markdown'><p>:::{table} Fusion time.</p></div>",
    "an unparsed figure fence": "<p>```{figure} generated/intro.png</p>",
    "an unknown role with an argument": "<p>{unknownrole}`x`</p>",
    "inside a section MathJax ignores": '<section class="tex2jax_ignore mathjax_ignore"><p>the {numref}`t` '
    "table</p></section>",
}
CLEAN = {
    "rendered references": '<p>as <a href="#tab-x"><span class="std std-numref">Table 9.1</span></a> shows</p>',
    "roles in a code cell's source": '<div class="cell_input docutils container"><pre>'
    'f"{{numref}}`tab-eval-gt` and {glue:text}`x`"</pre></div>',
    "roles in a literal block": '<div class="highlight-python notranslate"><div class="highlight"><pre>'
    "{eq}`eq-fdb`</pre></div></div>",
    "LaTeX braces in math": '<div class="math notranslate nohighlight">\\[\\frac{1}{k^2}\\text{paper}\\]</div>',
    "a widget's state": '<script type="application/vnd.jupyter.widget-state+json">{"{ref}`x`": 1}</script>',
    "braces in prose": "<p>the set {k, tau} and a dict {'a': 1}</p>",
}


@pytest.mark.parametrize("html", BROKEN.values(), ids=BROKEN.keys())
def test_unrendered_markup_is_found(html):
    assert find_unrendered(html), f"the checker let through: {html}"


@pytest.mark.parametrize("html", CLEAN.values(), ids=CLEAN.keys())
def test_rendered_pages_pass(html):
    assert find_unrendered(html) == []


def test_a_broken_copy_of_a_book_fails_the_check(tmp_path):
    """A folder of pages, one of them broken: the command line exits 1 and names the page."""
    built = ROOT / "_build" / "html"
    pages = sorted(built.rglob("*.html")) if (built / "index.html").exists() else []
    pages = [p for p in pages if "_static" not in p.parts and not find_unrendered(p.read_text())][:3]
    good = tmp_path / "html"
    good.mkdir()
    for i, page in enumerate(pages):
        shutil.copy(page, good / f"page{i}.html")
    (good / "clean.html").write_text("<html><body><p>Table 9.1</p></body></html>")
    assert check_html_dir(good) == {}, "the clean copy should pass"
    broken = good / "book" / "executed" / "02-network.html"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        (pages[0].read_text() if pages else "<html><body></body></html>").replace(
            "</body>", "<p>Four networks: the <code>{glue:text}</code>profile_name` profile</p></body>"
        )
    )
    assert list(check_html_dir(good)) == ["book/executed/02-network.html"]
    run = subprocess.run(
        [sys.executable, str(ROOT / "book" / "_ext" / "bamf_book_checks.py"), str(good)], capture_output=True, text=True
    )
    assert run.returncode == 1 and "02-network.html: unrendered markup" in run.stdout, run.stdout


def test_the_built_book_has_no_unrendered_markup():
    built = ROOT / "_build" / "html"
    if not (built / "index.html").exists():
        pytest.skip("the book is not built: run `make book` (or `bamf reproduce`) first")
    assert check_html_dir(built) == {}
