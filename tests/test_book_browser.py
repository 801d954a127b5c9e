"""The built book, as a reader sees it: headless Chromium over a localhost server.

Needs the built HTML (``make book`` or ``bamf reproduce``; ``make test`` builds it first)
and Debian's ``chromium`` + ``chromium-driver``.  Each chapter is opened, every image
must have loaded, the console must be free of errors, and on the FDB chapter moving the
slider must change the displayed image.  A screenshot of every chapter is saved under
``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
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
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
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
    assert figures, f"{chapter}: no figure on the page"
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
