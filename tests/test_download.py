"""Downloads through the real path, from an upstream-shaped folder served on 127.0.0.1."""

import csv
import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from bamf_lib import cli
from bamf_lib.book import reproduce
from bamf_lib.data import datasets, download, registry

DATA = datasets.data_dir()
needs_data = pytest.mark.requires_data("UPSTREAM.tsv")

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a commit to pin URLs to


@pytest.fixture
def upstream(tmp_path, monkeypatch, serve_upstream):
    server, registry_file, expected = serve_upstream()
    monkeypatch.delenv("BAMF_DATA_DIR", raising=False)
    monkeypatch.setenv("BAMF_REGISTRY", str(registry_file))
    monkeypatch.setenv("BAMF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "BACKOFF", 0.0)
    return server, expected, tmp_path / "cache"


def _leftovers(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_a_data_folder_is_built_converted_cached_and_reused(upstream):
    server, expected, cache = upstream
    gray_a, gray_b = datasets.grayscale_pair(1)
    assert np.array_equal(gray_a, expected["grayscale/g_01_1.png"])  # TIFF -> PNG, same pixels
    assert np.array_equal(gray_b, expected["grayscale/g_01_2.png"])
    png = cache / "published/color/dsift/c_01.png"
    assert datasets.published_fused("dsift", "color", 1).shape == (40, 56, 3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(png))[..., ::-1], expected["published/color/dsift/c_01.png"])
    with open(datasets.path("published/scores_color.csv"), newline="") as fh:  # .mat -> CSV
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 * 2 and rows[0]["method"] == "dwt" and 0 <= float(rows[0]["QMI"]) <= 1
    assert (cache / "published/scores_color.csv").read_bytes() == expected["published/scores_color.csv"]
    assert datasets.path("lytro/triple/lytro-01-A.jpg").is_file()  # spaces and parentheses in the URL
    served = sum(server.requests.values())
    for name in ("grayscale/g_01_1.png", "published/color/dsift/c_01.png", "published/scores_color.csv"):
        assert datasets.path(name) == cache / name
    assert sum(server.requests.values()) == served, "a cached file was downloaded again"
    assert not [n for n in _leftovers(cache) if n.startswith(".download-")]


def test_a_tampered_download_is_refused_and_nothing_is_kept(upstream):
    server, _, cache = upstream
    with pytest.raises(datasets.DataIntegrityError) as err:
        datasets.path("classic/book1.bmp")
    message = str(err.value)
    entry = registry.entries()["classic/book1.bmp"]
    assert "classic/book1.bmp" in message and entry.url in message and entry.upstream_hash in message
    assert hashlib.sha256(b"BM served bytes").hexdigest() in message
    assert _leftovers(cache) == []


def test_a_conversion_that_does_not_give_the_registered_file_is_refused(upstream, tmp_path, monkeypatch):
    _, _, cache = upstream
    entry = registry.entries()["grayscale/g_01_1.png"]
    wrong = registry.Entry(entry.path, "0" * 64, entry.conversion, entry.upstream_hash, entry.url)
    (tmp_path / "wrong.txt").write_text(wrong.line() + "\n")
    monkeypatch.setenv("BAMF_REGISTRY", str(tmp_path / "wrong.txt"))
    with pytest.raises(datasets.DataIntegrityError, match=f"{entry.upstream_hash}.*tiff-to-png.*{'0' * 64}"):
        download.fetch(entry.path)
    assert _leftovers(cache) == []


def test_a_cached_copy_with_a_flipped_byte_is_refused(upstream):
    _, _, cache = upstream
    file = datasets.path("lytro/lytro-01-A.jpg")
    raw = bytearray(file.read_bytes())
    raw[10] ^= 0x01
    file.write_bytes(bytes(raw))
    with pytest.raises(datasets.DataIntegrityError, match="registry expects"):
        download.fetch("lytro/lytro-01-A.jpg")


def test_server_errors_are_retried_then_reported(upstream):
    server, _, cache = upstream
    up = f"/someone/MFIF/{server.commit}/Code/datasets/CMFDataset/lytro-01-A.jpg"
    server.fail[up] = 2
    assert download.fetch("lytro/lytro-01-A.jpg").is_file()
    assert server.requests[up] == 3
    up = f"/someone/MFIF/{server.commit}/sourceimages/grayscale/g_01_1.tif"
    server.fail[up] = 99
    with pytest.raises(datasets.DatasetNotFoundError, match="g_01_1.png could not be downloaded.*503") as err:
        datasets.grayscale_pair(1)
    assert "bamf data fetch" in str(err.value) and "BAMF_DATA_DIR" in str(err.value)
    assert server.requests[up] == 1 + download.RETRIES
    assert not (cache / "grayscale/g_01_1.png").exists()


def test_bamf_data_fetch_and_check(upstream, tmp_path, capsys):
    _, _, cache = upstream
    out = tmp_path / "folder"
    assert cli.main(["data", "check", str(out)]) == 1
    assert "missing lytro/lytro-01-A.jpg" in capsys.readouterr().out
    assert cli.main(["data", "fetch", str(out), "--only", "lytro,grayscale", "-q"]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "grayscale/g_01_1.png",
        "grayscale/g_01_2.png",
        "lytro/lytro-01-A.jpg",
        "lytro/triple/lytro-01-A.jpg",
    ]
    assert cli.main(["data", "check", str(out), "--only", "lytro", "--only", "grayscale"]) == 0
    (out / "lytro/lytro-01-A.jpg").write_bytes(b"changed")
    assert cli.main(["data", "check", str(out), "--only", "lytro"]) == 1
    assert "WRONG   lytro/lytro-01-A.jpg" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "--only", "nonsense"]) == 2
    assert "unknown data group" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "--only", "classic"]) == 2  # the tampered file: one line, exit 2
    assert "classic/book1.bmp" in capsys.readouterr().err and _leftovers(cache) == []


def test_the_book_stops_before_the_first_notebook_without_data(upstream, monkeypatch, capsys):
    server, _, _ = upstream
    server.shutdown()
    server.server_close()  # no internet: nothing answers
    monkeypatch.setattr(reproduce, "convert", lambda *a, **k: pytest.fail("a notebook was prepared"))
    assert cli.main(["reproduce", "--no-book"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("bamf reproduce: error:")
    assert re.search(r"lytro/ \(2 files\).*BAMF_DATA_DIR.*bamf data fetch", message), message


def test_the_book_stops_on_an_incomplete_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path))
    with pytest.raises(datasets.DatasetNotFoundError, match=r"missing from BAMF_DATA_DIR=.*lytro/ \(52 files\)"):
        reproduce.require_data()


def test_registry_build_pins_commits_and_encodes_paths(tmp_path):
    tsv = tmp_path / "UPSTREAM.tsv"
    head = "path\tsha256\trepository\tcommit\tupstream_path\tupstream_sha256\tconversion\n"
    tsv.write_text(
        head + f"nyud/nyud-51-A.jpg\t{'a' * 64}\tx/y\t{COMMIT}\tNYU-D-100/source_1/NYU-D (51).jpg\t"
        f"{'a' * 64}\tnone\n" + f"published/Q_color.mat\t{'b' * 64}\tx/y\t{COMMIT}\tevaluation/Q_color.mat\t"
        f"{'b' * 64}\tnone\n" + f"published/Q_grayscale.mat\t{'c' * 64}\tx/y\t{COMMIT}\tQ_grayscale.mat\t"
        f"{'c' * 64}\tnone\n"
    )
    (tmp_path / "registry.txt").write_text(registry.build(tsv))
    entries = registry.entries(tmp_path / "registry.txt")
    assert entries["nyud/nyud-51-A.jpg"].url == (
        f"https://raw.githubusercontent.com/x/y/{COMMIT}/NYU-D-100/source_1/NYU-D%20%2851%29.jpg"
    )
    csv_entry = entries["published/scores_color.csv"]
    assert (csv_entry.conversion, csv_entry.upstream_hash) == ("mat-to-scores-csv", "b" * 64)
    assert entries["coco/zips/val2017.zip"].hash.startswith("md5:")
    tsv.write_text(head + f"a.png\t{'a' * 64}\tx/y\tmaster\tb.png\t{'a' * 64}\tnone\n")
    with pytest.raises(ValueError, match="40-hex-digit"):
        registry.build(tsv)


@needs_data
def test_the_packaged_registry_is_what_the_build_command_makes_of_upstream_tsv():
    assert registry.build(DATA / "UPSTREAM.tsv") == registry.DEFAULT_FILE.read_text()


def test_every_github_url_is_commit_pinned():
    for entry in registry.entries(registry.DEFAULT_FILE).values():
        if "github" in entry.url:
            assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/\S+$", entry.url), entry


@needs_data
def test_conversions_give_the_shared_files_byte_for_byte():
    import cv2

    converted = [e for e in registry.entries(registry.DEFAULT_FILE).values() if e.conversion != "none"]
    assert len(converted) == 202
    for entry in converted[::20] + [e for e in converted if e.conversion == "mat-to-scores-csv"]:
        local = DATA / entry.path
        if entry.conversion == "tiff-to-png":  # a TIFF of the shared PNG's pixels stands in for the upstream file
            raw = cv2.imencode(".tif", cv2.imread(str(local), cv2.IMREAD_UNCHANGED))[1].tobytes()
        else:
            raw = (DATA / entry.path.replace("scores_", "Q_").replace(".csv", ".mat")).read_bytes()
            assert hashlib.sha256(raw).hexdigest() == entry.upstream_hash
        assert hashlib.sha256(download.convert(raw, entry.conversion)).hexdigest() == entry.hash, entry.path
