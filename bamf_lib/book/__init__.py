"""Book: what the Jupyter Book companion needs beyond the library itself.

Figure and table helpers the chapters share (:mod:`~bamf_lib.book.figures`) and the
``bamf reproduce`` driver (:mod:`~bamf_lib.book.reproduce`), which executes every chapter with
papermill and builds the HTML book from a checkout named by argument or found from the current
folder.  It may use any stage below the CLI; no stage uses it.
"""
