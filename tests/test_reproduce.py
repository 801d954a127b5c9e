import json
from pathlib import Path

import pytest

from bamf_lib.book import reproduce

BOOK = Path(__file__).resolve().parent.parent


def test_every_toc_chapter_has_a_notebook():
    toc = (BOOK / "_toc.yml").read_text()
    stems = [p.stem for p in reproduce.notebook_sources(root=BOOK)]
    assert len(stems) >= 8
    for stem in stems:
        assert f"book/executed/{stem}" in toc, f"{stem} is missing from _toc.yml"


def test_convert_writes_ipynb_with_a_parameters_cell(tmp_path):
    paths = reproduce.convert(tmp_path, root=BOOK)
    assert len(paths) == len(reproduce.notebook_sources(root=BOOK))
    for path in paths:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one 'parameters' cell"
        assert "profile" in "".join(tagged[0]["source"])


def test_unknown_filter_is_an_error():
    with pytest.raises(ValueError, match="no notebooks"):
        reproduce.notebook_sources(only=["no-such-chapter"])


def test_parameter_cells_are_removed_from_the_page_after_execution(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("profile = 'cpu'", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(profile)"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    reproduce._hide_default_parameters(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], []]


def test_every_chapter_installs_bamf_lib_where_it_is_missing_and_hides_that_cell():
    """Colab and Binder open a chapter without the repository: its first code cell installs it."""
    import jupytext

    for src in reproduce.notebook_sources(root=BOOK):
        cells = [c for c in jupytext.read(src).cells if c.cell_type == "code"]
        first = cells[0]
        assert "remove-cell" in first.metadata.get("tags", []), f"{src.name}: the install cell must be hidden"
        assert 'find_spec("bamf_lib") is None' in first.source and "pip" in first.source, src.name
        assert "parameters" in cells[1].metadata.get("tags", []), f"{src.name}: parameters follow the install cell"


def test_export_intro_writes_what_chapters_glued(tmp_path):
    import base64

    import nbformat

    executed = tmp_path / "executed"
    executed.mkdir()
    png = b"\x89PNG fake"
    record = "application/papermill.record/"
    outputs = {
        "07-fusion": [("fig-intro-fused", {record + "image/png": base64.b64encode(png).decode()})],
        "09-evaluation": [
            ("verdict", {record + "text/markdown": "Two sentences."}),
            ("weights", {record + "text/markdown": "shipped `exact` weights"}),
            ("build", {record + "text/markdown": "`bamf_lib` 0.1.0 on 2 CPU cores"}),
        ],
    }
    for chapter, glues in outputs.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("glue(...)")
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data", data=data, metadata={"scrapbook": {"name": key, "mime_prefix": record}}
            )
            for key, data in glues
        ]
        nb.cells = [cell]
        nbformat.write(nb, executed / f"{chapter}.ipynb")
    written = reproduce.export_intro(executed, tmp_path / "gen")
    assert sorted(p.name for p in written) == [
        "intro-build.md",
        "intro-fused.png",
        "intro-verdict.md",
        "intro-weights.md",
    ]
    assert (tmp_path / "gen" / "intro-fused.png").read_bytes() == png
    assert (tmp_path / "gen" / "intro-verdict.md").read_text() == "Two sentences.\n"
    with pytest.raises(KeyError, match="nothing"):
        reproduce.glued(executed / "07-fusion.ipynb", "nothing")


def test_the_book_is_found_from_the_current_folder_or_named_never_from_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(BOOK / "notebooks")  # a folder inside the checkout: its parent is the book
    assert reproduce.find_book() == BOOK
    monkeypatch.chdir(tmp_path)  # outside any checkout (as a non-editable install runs)
    with pytest.raises(FileNotFoundError, match="no book here"):
        reproduce.find_book()
    with pytest.raises(FileNotFoundError, match="is not the book"):
        reproduce.find_book(tmp_path)
    assert reproduce.find_book(BOOK) == BOOK
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "notebooks" / "01-only.md").write_text("# one\n")
    assert [p.name for p in reproduce.notebook_sources()] == ["01-only.md"]  # the current folder's, not the package's
