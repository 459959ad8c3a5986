"""Sphinx extension of the dlbook build (loaded through `sphinx: local_extensions` in _config.yml).

- Chapter and section numbers. `_toc.yml` numbers the chapters and their sections (1, 1.1, ...),
  which also numbers figures and equations per chapter. The page sources keep their own number
  in the title ("# 1.2 The perceptron"), so that a notebook opened on its own still shows it; the
  build strips that number (Sphinx prints its own in front of the title) and warns when the two
  disagree, which fails the `-W` build.
- Drops duplicate `<script>` tags. sphinx-thebe 0.3.1 registers its inline configuration script
  (`const THEBE_JS_URL = ...`) twice under Sphinx 7.4, and the second `const` declaration throws
  "Identifier 'THEBE_JS_URL' has already been declared" on every page.
- Accessibility (WCAG 2.1 AA, checked by axe-core in tests/test_book_browser.py), three fixes to
  HTML that other projects write:
  - the navigation's collapse toggles (`<summary>` holding only a chevron icon, written by
    pydata-sphinx-theme's toctree.py) get an accessible name, "Sections of <page title>"
    (axe summary-name; belongs upstream in pydata-sphinx-theme);
  - the bibliography's entries, `<div role="doc-biblioentry">` inside `<div role="list">`
    (written by docutils' HTML5 writer for sphinxcontrib-bibtex's citations), become list items:
    a list without items is an error for assistive technology (axe aria-required-children) and
    DPUB-ARIA 1.1 deprecates doc-biblioentry (belongs upstream in docutils);
  - runs of Chinese characters (glossary, errata, bibliography titles, anywhere in a page's body)
    are wrapped in `<span lang="zh">` so that a screen reader switches voice (WCAG 3.1.2).
"""

from __future__ import annotations

import re
from typing import Any

from bs4 import BeautifulSoup
from docutils import nodes
from markupsafe import Markup
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


# Han characters with the CJK punctuation and full-width forms that go with them; a run may hold
# spaces and digits between two Han characters ("第 3 章").
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = _HAN + "\u3000-\u303f\uff00-\uffef\u2014\u201c\u201d\u00b7"
CHINESE_RUN = re.compile(rf"[{_CJK}](?:[{_CJK}\s\d]*[{_CJK}])?")
# Text between tags; the contents of <script>, <style> and <textarea> are left alone.
_RAW_BLOCK = re.compile(r"(<(script|style|textarea)\b.*?</\2\s*>|<[^>]*>)", re.S | re.I)


def mark_chinese(html: str, lang: str = "zh") -> str:
    """Wrap every run of Chinese text in `html` in `<span lang="zh">` (WCAG 3.1.2).

    Only text between tags is touched, never a tag, an attribute or a script; a run that
    already sits directly in an element with a `lang="zh..."` attribute is wrapped again
    harmlessly (the nearest lang attribute wins)."""
    parts = _RAW_BLOCK.split(html)
    out = []
    i = 0
    while i < len(parts):
        text = parts[i]
        out.append(CHINESE_RUN.sub(lambda m: f'<span lang="{lang}">{m.group(0)}</span>', text)
                   if any(ch > "\u2fff" for ch in text) else text)
        if i + 1 < len(parts):
            out.append(parts[i + 1])  # the tag or raw block, unchanged
        i += 3  # split() also returns the inner group (the raw block's tag name)
    return "".join(out)


def list_citations(html: str) -> str:
    """Make the entries of docutils' `<div role="list" class="citation-list">` list items."""
    return html.replace('role="doc-biblioentry"', 'role="listitem"')


def label_toc_toggles(html: str) -> str:
    """Give each text-less `<summary>` of the navigation the name "Sections of <title>"."""
    if "<summary" not in html:
        return html
    soup = BeautifulSoup(html, "html.parser")
    for summary in soup.select("details > summary"):
        if summary.get_text(strip=True) or summary.get("aria-label"):
            continue
        item = summary.find_parent("li")
        link = item.find("a", recursive=False) if item is not None else None
        title = link.get_text(" ", strip=True) if link is not None else ""
        summary["aria-label"] = f"Sections of {title}" if title else "Sections"
    return str(soup)


def _accessible_page(app, pagename: str, templatename: str, context: dict[str, Any],
                     doctree) -> None:
    """Post-process the page body and the navigation the templates generate (see the docstring)."""
    if isinstance(context.get("body"), str):
        context["body"] = mark_chinese(list_citations(context["body"]))
    generate = context.get("generate_toctree_html")
    if callable(generate) and not getattr(generate, "dlbook_labelled", False):
        def labelled(*args, **kwargs):
            return Markup(label_toc_toggles(str(generate(*args, **kwargs))))
        labelled.dlbook_labelled = True
        context["generate_toctree_html"] = labelled


def setup(app) -> dict[str, Any]:
    # Before the title and toc collectors (priority 500) read the title.
    app.connect("doctree-read", _strip_title_number, priority=100)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _check_title_number)
    # Late: after every extension (mathjax, thebe, ...) has added its scripts.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    # After pydata-sphinx-theme (priority 500) has put generate_toctree_html into the context.
    app.connect("html-page-context", _accessible_page, priority=900)
    return {"version": "1", "env_version": 1, "parallel_read_safe": True, "parallel_write_safe": True}
