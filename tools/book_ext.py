"""Sphinx extension of the dlbook build (loaded through `sphinx: local_extensions` in _config.yml).

- Chapter and section numbers. `_toc.yml` numbers the chapters and their sections (1, 1.1, ...),
  which also numbers figures and equations per chapter. The page sources keep their own number
  in the title ("# 1.2 The perceptron"), so that a notebook opened on its own still shows it; the
  build strips that number (Sphinx prints its own in front of the title) and warns when the two
  disagree, which fails the `-W` build.
- Drops duplicate `<script>` tags. sphinx-thebe 0.3.1 registers its inline configuration script
  (`const THEBE_JS_URL = ...`) twice under Sphinx 7.4, and the second `const` declaration throws
  "Identifier 'THEBE_JS_URL' has already been declared" on every page.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

CHAPTER_DOC = re.compile(r"chapters/\d+-")
OWN_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)*)\.?\s+(?=\S)")


def _strip_title_number(app, doctree: nodes.document) -> None:
    """Remove "1.2 " from the first title of a chapter page and remember it."""
    env = app.env
    numbers = env.__dict__.setdefault("dlbook_title_numbers", {})
    numbers.pop(env.docname, None)
    if not CHAPTER_DOC.match(env.docname):
        return
    section = doctree.next_node(nodes.section)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        return
    title = section[0]
    first = title[0] if title.children else None
    if not isinstance(first, nodes.Text):
        return
    match = OWN_NUMBER.match(first.astext())
    if match:
        numbers[env.docname] = match.group(1)
        title.replace(first, nodes.Text(first.astext()[match.end():]))


def _purge(app, env, docname: str) -> None:
    env.__dict__.setdefault("dlbook_title_numbers", {}).pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    mine = env.__dict__.setdefault("dlbook_title_numbers", {})
    theirs = other.__dict__.get("dlbook_title_numbers", {})
    mine.update({d: n for d, n in theirs.items() if d in docnames})


def _check_title_number(app, doctree: nodes.document, docname: str) -> None:
    """Warn when a title's own number differs from the one the table of contents gives it."""
    written = app.env.__dict__.get("dlbook_title_numbers", {}).get(docname)
    if written is None:
        return
    secnumber = app.env.toc_secnumbers.get(docname, {}).get("")
    given = ".".join(map(str, secnumber)) if secnumber else None
    if given != written:
        logger.warning(
            "the title is numbered %s but _toc.yml makes this page %s: fix the title or the "
            "order in _toc.yml (chapter folders chapters/NN-*/ are numbered by their part's "
            "`numbered:` setting)", written, given or "unnumbered", location=docname)


def _drop_duplicate_scripts(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app) -> dict[str, Any]:
    # Before the title and toc collectors (priority 500) read the title.
    app.connect("doctree-read", _strip_title_number, priority=100)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _check_title_number)
    # Late: after every extension (mathjax, thebe, ...) has added its scripts.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": "1", "env_version": 1, "parallel_read_safe": True, "parallel_write_safe": True}
