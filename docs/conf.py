"""Sphinx configuration: numpydoc API pages, a sphinx-gallery of examples and the
pydata theme. Build with ``make docs`` (warnings are errors)."""

import os
import warnings

import skvae

project = "skvae"
author = "the skvae developers"
copyright = "2026, the skvae developers"
release = version = skvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "examples", "auto_examples/*.ipynb", "auto_examples/*.py"]
# The API page names the methods to show; numpydoc must not list them again.
numpydoc_show_class_members = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
}
# The docs must build offline (CI machines reach only package registries):
# cross-links to other projects' docs are used only when SKVAE_DOCS_ONLINE is set.
if not os.environ.get("SKVAE_DOCS_ONLINE"):
    intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
}

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {version}"
html_theme_options = {
    "github_url": None,
    "navigation_with_keys": False,
    "show_prev_next": False,
}
html_static_path = []

# Fits in the examples stop at max_iter on purpose (a few seconds each).
warnings.filterwarnings("ignore", message=".*maximum iterations.*")
warnings.filterwarnings("ignore", category=UserWarning, message=".*warmup_epochs.*")
