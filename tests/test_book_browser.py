"""The built book, as a reader sees it: headless Chromium over a localhost server.

Needs the built HTML (``make book`` or ``bamf reproduce``; ``make test`` builds it first)
and Debian's ``chromium`` + ``chromium-driver``.  Each chapter is opened, every image
must have loaded, the console must be free of errors, and on the FDB chapter moving the
slider must change the displayed image.  At a wide (1300 px) and a phone-sized (420 px)
window, every figure and results table of every chapter and appendix page must carry a
numbered caption that the prose refers to, every image a describing alt text, and no
output, table, figure or equation may be wider than the column; no page may show a
parameters cell, a machine path, a raw dict, a progress bar or MyST markup left as text.  Screenshots and each page's length in screen heights
(``page-lengths.json``) are saved under ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.md"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTHS = (1300, 420)  # a laptop window and a phone (the sidebar folds away)
# pages that are not notebooks: book/<name>.html
PLAIN_PAGES = ("intro", "notation", "data", "bibliography")
# appendix pages whose content is tables only
NO_FIGURE = {"11-departures"}
SCREEN_HEIGHT = 900
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.skipif(
    not (HTML / "index.html").exists(),
    reason="the book is not built: run `make book` (or `bamf reproduce`) first",
)


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def browser():
    selenium = pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    assert selenium  # imported for the skip above
    yield driver
    driver.quit()


def _wait(predicate, timeout=20.0, step=0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _open(browser, url):
    browser.get(url)
    _wait(lambda: browser.execute_script("return document.readyState") == "complete")
    # images may be lazily decoded: wait until every <img> has finished loading
    _wait(lambda: browser.execute_script("return Array.from(document.images).every(i => i.complete)"))
    browser.get_log("browser")  # noqa: B018 - drained by the caller below when needed


def _console_errors(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_loads_with_figures_and_no_console_errors(browser, server, chapter):
    page = HTML / "book" / "executed" / f"{chapter}.html"
    assert page.exists(), f"{page} was not built"
    browser.get(f"{server}/book/executed/{chapter}.html")
    _wait(lambda: browser.execute_script("return document.readyState") == "complete")
    _wait(lambda: browser.execute_script("return Array.from(document.images).every(i => i.complete)"))
    time.sleep(1.0)  # widget managers render after load
    errors = _console_errors(browser)
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc.slice(0, 80), i.naturalWidth])"
    )
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / f"{chapter}.png"))
    figures = [src for src, _ in images if "logo" not in src]
    assert figures or chapter in NO_FIGURE, f"{chapter}: no figure on the page"
    broken = [src for src, width in images if not width]
    assert not broken, f"{chapter}: images that did not load: {broken}"
    assert not errors, f"{chapter}: console errors: {errors}"


def test_fdb_slider_changes_the_displayed_image(browser, server):
    chapter = next(c for c in CHAPTERS if "fdb" in c)
    browser.get(f"{server}/book/executed/{chapter}.html")
    slider = _wait(
        lambda: browser.execute_script(
            "return document.querySelector('.widget-slider input[type=range], .widget-slider .noUi-handle, input[type=range]')"
        ),
        timeout=30,
    )
    assert slider is not None, "no slider rendered on the FDB chapter (widget state missing or manager failed)"

    def visible_image():
        return browser.execute_script(
            """
            const imgs = Array.from(document.querySelectorAll('.widget-image, .jupyter-widgets img, img'))
              .filter(i => i.offsetParent !== null && i.naturalWidth > 0 && i.closest('.cell_output, .jupyter-widgets'));
            return imgs.length ? imgs[0].src.slice(-200) : null;
            """
        )

    before = _wait(visible_image, timeout=30)
    assert before, "no image is shown next to the slider"
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(browser).click(slider).perform()
    for _ in range(3):
        slider.send_keys(Keys.ARROW_RIGHT)
    after = _wait(lambda: (v := visible_image()) != before and v, timeout=10)
    browser.save_screenshot(str(ROOT / "_build" / "screenshots" / f"{chapter}-slider-moved.png"))
    assert after and after != before, "moving the slider did not change the displayed image"


# Everything below reads the page as a reader would, at each of WIDTHS.
_LAYOUT_JS = """
const article = document.querySelector('article.bd-article');
const col = article.getBoundingClientRect();
const shown = el => el.offsetParent !== null && el.getClientRects().length > 0;
const outputs = Array.from(article.querySelectorAll(
  '.cell_output, .cell_output *, figure, figure img, table, .math, mjx-container, .pst-scrollable-table-container'))
  .filter(el => shown(el) && !el.closest('.cell_input'));
const wide = [];
// on a phone (narrow) a wide table or a long equation may scroll inside its own box, as the theme
// and MathJax make them; nothing may stick out of the column, and the page itself may not scroll sideways
const narrow = window.innerWidth < 600;
const boxes = '.pst-scrollable-table-container, mjx-container, .highlight, .cell_output pre';
if (document.documentElement.scrollWidth > window.innerWidth + 1) {
  wide.push(`the page scrolls sideways (${document.documentElement.scrollWidth} px in ${window.innerWidth} px)`);
}
for (const el of outputs) {
  const r = el.getBoundingClientRect();
  const box = el.parentElement && el.parentElement.closest(boxes);
  if (narrow && box && box !== el && article.contains(box)) continue;  // clipped by a scrolling box
  const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1;
  if (r.right > col.right + 1 || r.left < col.left - 1 || (scrolls && !narrow)) {
    wide.push(`${el.tagName.toLowerCase()}.${String(el.className).slice(0, 40)} (${Math.round(r.width)} px` +
              `${scrolls ? ', scrolls ' + el.scrollWidth : ''}; column ${Math.round(col.width)} px)`);
  }
}
const captions = Array.from(article.querySelectorAll('figure, table'))
  .filter(el => shown(el) && !el.closest('.jupyter-widgets'))
  .map(el => {
    const cap = el.tagName === 'TABLE' ? el.querySelector('caption') : el.querySelector('figcaption');
    const number = cap ? (cap.querySelector('.caption-number') || {}).textContent || '' : '';
    const refs = el.id ? article.querySelectorAll(`a[href="#${el.id}"]`).length : 0;
    return {tag: el.tagName.toLowerCase(), id: el.id, number: number.trim(), refs: refs};
  });
const images = Array.from(article.querySelectorAll('img'))
  .filter(i => shown(i) && !i.closest('.jupyter-widgets'))
  .map(i => ({alt: i.alt || '', src: i.currentSrc.slice(-40), inFigure: !!i.closest('figure')}));
return {wide: wide, captions: captions, images: images, text: article.innerText,
        height: document.documentElement.scrollHeight, screen: window.innerHeight,
        parameterCells: article.querySelectorAll('.tag_parameters, .tag_injected-parameters').length};
"""

_RESIDUE = {
    "a machine path": r"(/work/|/home/|/tmp/|/usr/|site-packages|[A-Z]:\\)",
    "an environment dump": r"BAMF_DATA_DIR=",
    "a progress bar": r"(\d+(\.\d+)?\s?(it|cell|pair)s?/s|[\u2588\u258f\u258e\u258d\u258c\u258b\u258a\u2589]{2}|\d+%\|)",
    "a raw dict or repr": r"(\{'[\w.]+': |<bamf_lib\.|object at 0x)",
    "a parameters cell": r"(# Parameters|^profile = ['\"])",
    "MyST markup left as text": r"(\{(glue|numref|eq|ref|doc|cite)(:[\w-]+)?\}|\{[a-z][\w:-]*\}`|(```|:::)\s*\{[a-z])",
}


@pytest.fixture(scope="module")
def layouts(browser, server):
    """Each chapter's layout facts at each width (one page load per chapter and width)."""
    out = {}
    for width in WIDTHS:
        browser.set_window_size(width, SCREEN_HEIGHT)
        for chapter in [*PLAIN_PAGES, *CHAPTERS]:
            path = f"book/{chapter}.html" if chapter in PLAIN_PAGES else f"book/executed/{chapter}.html"
            _open(browser, f"{server}/{path}")
            time.sleep(1.0)  # MathJax typesets, the widget manager renders after load
            out[chapter, width] = browser.execute_script(_LAYOUT_JS)
            SHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SHOTS / f"{chapter}-{width}px.png"))
    lengths = {
        c: round(out[c, WIDTHS[0]]["height"] / out[c, WIDTHS[0]]["screen"], 1) for c in [*PLAIN_PAGES, *CHAPTERS]
    }
    (SHOTS / "page-lengths.json").write_text(
        json.dumps({"width": WIDTHS[0], "screen_height": SCREEN_HEIGHT, "screens": lengths}, indent=1)
    )
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("chapter", [*PLAIN_PAGES, *CHAPTERS])
def test_nothing_is_wider_than_its_column(layouts, chapter, width):
    wide = layouts[chapter, width]["wide"]
    assert not wide, f"{chapter} at {width} px: wider than the column: {wide[:5]}"


@pytest.mark.parametrize("chapter", [*CHAPTERS, "notation", "data", "bibliography"])
def test_every_figure_and_table_has_a_numbered_caption_the_prose_cites(layouts, chapter):
    for width in WIDTHS:
        caps = layouts[chapter, width]["captions"]
        assert caps, f"{chapter}: no captioned figure or table"
        missing = [c for c in caps if not c["number"]]
        assert not missing, f"{chapter} at {width} px: figures/tables without a numbered caption: {missing}"
        uncited = [c["number"] for c in caps if c["refs"] == 0]
        assert not uncited, f"{chapter}: captions the prose never refers to: {uncited}"
        loose = [i["src"] for i in layouts[chapter, width]["images"] if not i["inFigure"]]
        assert not loose, f"{chapter}: images outside a captioned figure: {loose}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_alt_texts_describe_the_pictures(layouts, chapter):
    for image in layouts[chapter, WIDTHS[0]]["images"]:
        alt = image["alt"]
        assert len(alt.split()) >= 4 and not re.search(r"(\.png|\.jpg|/|_images)", alt), (
            f"{chapter}: alt text {alt!r} does not describe the picture ({image['src']})"
        )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("chapter", [*PLAIN_PAGES, *CHAPTERS])
def test_no_plumbing_on_the_page(layouts, chapter, width):
    page = layouts[chapter, width]
    assert page["parameterCells"] == 0, f"{chapter}: a parameters cell is on the page"
    for what, pattern in _RESIDUE.items():
        hit = re.search(pattern, page["text"], flags=re.M)
        assert not hit, (
            f"{chapter}: the page shows {what}: ...{page['text'][max(0, hit.start() - 60) : hit.end() + 40]!r}"
        )


def test_chapter_9_is_short_and_no_page_is_long(layouts):
    """Issue 24: the evaluation chapter at most 13 screen heights at 1300 px, no page over 14."""
    screens = json.loads((SHOTS / "page-lengths.json").read_text())["screens"]
    assert screens["09-evaluation"] <= 13, screens
    long = {page: n for page, n in screens.items() if n > 14}
    assert not long, f"pages over 14 screen heights at {WIDTHS[0]} px: {long}"


def test_captions_counted_and_page_lengths_recorded(layouts):
    counts = {c: len(layouts[c, WIDTHS[0]]["captions"]) for c in CHAPTERS}
    assert sum(counts.values()) >= 3 * len(CHAPTERS), f"captions per chapter: {counts}"
    assert json.loads((SHOTS / "page-lengths.json").read_text())["screens"]["intro"] > 0
    intro = layouts["intro", WIDTHS[0]]
    assert intro["images"] and re.search(r"bamf.s mean", intro["text"]), (
        "the introduction shows no fused result or verdict"
    )
