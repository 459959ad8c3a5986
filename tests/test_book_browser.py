"""The built book, checked in a real browser (Debian's Chromium, driven by Playwright).

`make test` builds the book, then runs this module (`make browser` runs it alone). It serves
`_build/html` on 127.0.0.1 from a thread and opens, in headless Chromium whose host resolver
fails every name (so the browser has no network), the index, every page listed in `_toc.yml`
(plus any other page the build wrote) and the index of terms. On every page:

- no console error, no uncaught exception, no failed request, no HTTP status >= 400;
- every formula typeset by MathJax: each `.math` element holds an `mjx-container`, no MathJax
  error, no raw `$$`, `\\(`, `\\[` or `$...\\...$` left in the text, and MathJax's own fonts loaded
  from the site (so the CDN is never needed);
- every image loaded (`naturalWidth > 0`), every figure numbered and captioned;
- every internal link points to an existing file and, if it has one, to an existing anchor;
- chapter pages numbered by the table of contents and their titles carrying no number of their own;
- notebook pages carrying the ".ipynb" download button, and no Binder, Colab or repository
  button (the book has no public repository address: such links would lead nowhere);
- with DLBOOK_SCREENSHOTS=1, a full-page screenshot saved under `_build/screenshots/` (off by
  default: the screenshots are for a person to look at, and they cost 1-6 s per page);
- accessibility, WCAG 2.1 AA: axe-core (the pinned npm package `make browser` installs into the
  git-ignored `_vendor/axe-core/`) is injected into the page and run after MathJax; any critical
  or serious violation fails, printed with its rule, element and page. Every image has a
  descriptive alt text (not empty, not a file name or path); every formula carries MathJax's
  assistive MathML (a MathML copy for screen readers beside the hidden visual rendering); every
  run of Chinese text sits in an element with `lang="zh"` (WCAG 3.1.2).

The search page must find DLBOOK_SEARCH_TERM (default "convolution"). Static checks over every
built HTML file: no remote script, style sheet or image; internal links and anchors resolve
(external links are never fetched); the index of terms is linked and not empty; chapters that
have errata or glossary entries link to those pages. The same pages also open from `file://`
with the network off. Negative cases run the same checks on pages made to break them.

Without Chromium (or axe-core) the tests fail (not skip) and say how to install it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("DLBOOK_SITE") or ROOT / "_build" / "html")
SCREENSHOTS = SITE.parent / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("DLBOOK_SCREENSHOTS") == "1"
CHROMIUM = os.environ.get("DLBOOK_CHROMIUM") or "/usr/bin/chromium"
SEARCH_TERM = os.environ.get("DLBOOK_SEARCH_TERM") or "convolution"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))

# Flags for Chromium on a closed network. Playwright adds --headless, --no-sandbox and a fresh
# --user-data-dir itself. The host-resolver rule makes every host name but the test server's
# address unresolvable: the browser is offline, and a request to a CDN fails (and is reported).
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 30_000

# axe-core: the version pinned in the Makefile, installed by `make browser` (test-only, so it lives
# outside html_static_path and the book never ships it).
AXE_VERSION = re.search(r"^AXE_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(),
                        re.M).group(1)
AXE_JS = ROOT / "_vendor" / "axe-core" / "axe.min.js"
# What fails the test: axe's two highest impact levels (moderate and minor are reported only).
AXE_FAILING = ("critical", "serious")
# Han characters (the book's Chinese: glossary, errata, bibliography titles).
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# An alt text that is a file name, a path or a hash, which is what a screen reader would read out
# for an image without a description (Sphinx uses the image's URI when no alt is given).
ALT_IS_A_NAME = re.compile(r"(^\S*[/\\]\S*$)|(\.(png|jpe?g|gif|svg|webp)\b)|([0-9a-f]{16,})", re.I)

# TeX that MathJax should have replaced: $$, \( \) \[ \], \begin{...}, or $...$ holding TeX.
RAW_TEX = re.compile(r"\$\$|\\[()\[\]]|\\begin\{|\$[^$\n]{0,80}?[\\^_][^$\n]{0,80}?\$")
# A title that repeats the number the table of contents already gives ("1.1. 1.1 Linear ...").
OWN_NUMBER = re.compile(r"^\s*\d+(\.\d+)*\.?\s")
FIG_NUMBER = re.compile(r"^(Fig\.|Figure) \d+(\.\d+)*")


# ---------------------------------------------------------------------------------------------
# Which pages: the table of contents, plus whatever else the build wrote.


def toc_docnames(toc_file: Path = ROOT / "_toc.yml") -> list[str]:
    """Every document of a jb-book `_toc.yml`, root first, in reading order, without suffix."""
    data = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    names = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                names.append(node["file"])
            if isinstance(node.get("glob"), str):
                names.extend(
                    str(p.relative_to(ROOT).with_suffix(""))
                    for p in sorted(ROOT.glob(node["glob"] + ".*"))
                    if p.suffix in (".md", ".ipynb")
                )
            for key, value in node.items():
                if key not in ("file", "glob"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in data.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb)$", "", name) for name in names]


def built_docnames(site: Path = SITE) -> list[str]:
    """The documents of the last build, as its search index lists them.

    Sphinx never deletes old output, so pages of earlier builds may linger in the folder; the
    search index names exactly the documents of the current build."""
    index = site / "searchindex.js"
    if not index.is_file():
        return []
    text = index.read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1:text.rindex(")")])["docnames"]


def built_pages(site: Path = SITE) -> list[str]:
    """Every HTML page of the current build, as docnames: the documents and Sphinx's own pages."""
    return ["index", *built_docnames(site), "genindex", "search"]


TOC_DOCS = toc_docnames()
# The index first; then the book in reading order; the index of terms; pages only the build knows.
PAGES = ["index", *TOC_DOCS, "genindex"]
PAGES += [p for p in built_pages() if p not in PAGES and p != "search"]


def test_site_has_exactly_the_toc_pages(site):
    assert sorted(built_docnames(site)) == sorted(TOC_DOCS), "the build is not of the current _toc.yml: run `make book`"


def is_chapter(doc: str) -> bool:
    """A page of a numbered chapter (chapters/NN-topic/...), not of the appendix."""
    return re.match(r"chapters/\d+-", doc) is not None


def is_notebook(doc: str) -> bool:
    return (ROOT / f"{doc}.ipynb").is_file()


# ---------------------------------------------------------------------------------------------
# Static reading of built HTML: ids, links and assets.


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.assets: list[str] = []
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        if tag in ("script", "img", "iframe") and a.get("src"):
            self.assets.append(a["src"])
        if tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.assets.append(a["href"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.refresh = (a.get("content") or "").split("url=", 1)[-1].strip()


@functools.lru_cache(maxsize=None)
def parse_html(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def check_link(href: str, base: str, site: Path, live_ids: frozenset = frozenset()) -> str | None:
    """Why an absolute URL `href` inside the site `base` (http://... or file:///...) is broken.

    Returns None for a good link and for links outside the site (never fetched)."""
    parts = urlsplit(href)
    if not href.startswith(base):
        if parts.scheme == "file":
            return f"link leaves the site: {href}"
        return None  # external (http, mailto, ...): not fetched, the book must work offline
    rel = unquote(parts.path[len(urlsplit(base).path):])
    target = site / rel
    if rel == "" or rel.endswith("/") or target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"broken link {href}: no file {target.relative_to(site)}"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html":
        if fragment not in parse_html(target).ids and fragment not in live_ids:
            return f"broken anchor {href}: no id {fragment!r} in {target.relative_to(site)}"
    return None


# ---------------------------------------------------------------------------------------------
# The server, the browser, and one page's inspection.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".woff": "font/woff", ".woff2": "font/woff2", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve `directory` on a free port of 127.0.0.1 from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def require_chromium(path: str = CHROMIUM) -> str:
    """The Chromium binary, or a test failure that says how to install it."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {path}. The browser test drives Debian's chromium package: "
            "install it with `apt-get install chromium` (as root; `make test` and .ci/run do "
            "this themselves when run as root), or set DLBOOK_CHROMIUM to a Chromium binary. "
            "Do not run `playwright install`: it downloads a browser, which fails offline.",
            pytrace=False,
        )
    return path


_COLLECT_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map(img => {
    img.loading = 'eager';
    return img.complete ? null : img.decode().catch(() => null);
  }));
  await document.fonts.ready;
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
  const text = [];
  const root = document.querySelector('main') || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && !node.parentElement.closest(skip)) text.push(node.nodeValue);
  }
  const h1 = document.querySelector('article h1') || document.querySelector('h1');
  const bare = el => {  // text without the '#' of header links
    const copy = el.cloneNode(true);
    copy.querySelectorAll('.headerlink').forEach(a => a.remove());
    return copy.textContent.trim();
  };
  const first = (el, sel) => ((el && el.querySelector(sel)) || {}).textContent || '';
  return {
    title: document.title,
    math: document.querySelectorAll('.math').length,
    mjx: document.querySelectorAll('mjx-container').length,
    unrendered: [...document.querySelectorAll('.math')]
      .filter(e => !e.querySelector('mjx-container'))
      .map(e => e.textContent.trim().slice(0, 80)),
    mathErrors: [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    mathjaxLoaded: !!(window.MathJax && window.MathJax.startup),
    fonts: [...document.fonts].filter(f => f.family.replace(/"/g, '').startsWith('MJX'))
      .map(f => [f.family.replace(/"/g, ''), f.status]),
    text: text.join(' '),
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
      alt: img.getAttribute('alt'), figure: !!img.closest('figure, .cell_output'),
    })),
    figures: [...document.querySelectorAll('figure')].map(f => ({
      id: f.id, number: first(f, '.caption-number').trim(), caption: first(f, 'figcaption').trim(),
      images: f.querySelectorAll('img').length,
    })),
    eqnos: [...document.querySelectorAll('.eqno')].map(bare),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    h1: h1 ? {number: first(h1, '.section-number').trim(), text: bare(h1)} : null,
    // Formulas whose container lacks MathJax's assistive MathML, or shows its visual rendering
    // to screen readers as well (then they would read it twice, or read glyph soup).
    mathNoMml: [...document.querySelectorAll('mjx-container')]
      .filter(c => !c.querySelector('mjx-assistive-mml math')
                   || (c.querySelector('mjx-math') || {getAttribute: () => 'true'})
                        .getAttribute('aria-hidden') !== 'true')
      .map(c => (c.closest('.math') || c).textContent.trim().slice(0, 60)),
    // Chinese text whose nearest lang attribute is not zh (WCAG 3.1.2, language of parts).
    chineseNoLang: (() => {
      const han = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/;
      const found = [];
      const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      while (w.nextNode()) {
        const node = w.currentNode, el = node.parentElement;
        if (!el || el.closest('script, style') || !han.test(node.nodeValue)) continue;
        const tagged = el.closest('[lang]');
        if (!tagged || !tagged.getAttribute('lang').toLowerCase().startsWith('zh')) {
          found.push(node.nodeValue.trim().slice(0, 40));
        }
      }
      return found;
    })(),
  };
}
"""


# axe's default rules (WCAG 2.0/2.1/2.2 A and AA, best practices) plus its experimental rules
# that test an A or AA criterion; never the AAA ones (color-contrast-enhanced, ...).
_AXE_RUN_JS = r"""
async () => {
  const levels = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];
  const rules = {};
  for (const rule of axe.getRules()) {
    if (rule.tags.includes('experimental') && rule.tags.some(t => levels.includes(t))
        && !rule.tags.includes('wcag2aaa')) {
      rules[rule.ruleId] = {enabled: true};
    }
  }
  const result = await axe.run(document, {rules, resultTypes: ['violations']});
  return {version: axe.version, violations: result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 160)})),
  }))};
}
"""


def require_axe(path: Path = AXE_JS) -> Path:
    """The axe-core script pinned in the Makefile, or a test failure that says how to install it."""
    if not path.is_file():
        pytest.fail(f"axe-core not found at {path}: run `make browser` (or `make {AXE_STAMP}`), "
                    "which installs the version pinned in the Makefile from npm.", pytrace=False)
    return path


AXE_STAMP = f"_vendor/.axe-core-{AXE_VERSION}"


def axe_audit(page, axe_js: Path = AXE_JS) -> list[dict]:
    """Inject axe-core into an open Playwright page, run it, and return its violations."""
    page.add_script_tag(path=str(require_axe(axe_js)))
    result = page.evaluate(_AXE_RUN_JS)
    assert result["version"] == AXE_VERSION, \
        f"axe-core {result['version']} is not the pinned {AXE_VERSION}"
    return result["violations"]


def axe_problems(violations: list[dict]) -> list[str]:
    """One line per element of each critical or serious violation: impact, rule, element."""
    return [f"axe {v['impact']} {v['id']} ({v['help']}) at {n['target']}: {n['html']}"
            for v in violations if v["impact"] in AXE_FAILING for n in v["nodes"]]


def alt_problem(alt: str | None, figure: bool = True) -> str | None:
    """Why an image's alt text does not describe it, or None when it may.

    Every image needs an alt text that is not a file name, path or hash; a figure (an image in
    a figure or a notebook output) needs a description, of at least six words, and an icon
    (the theme's "Binder logo") a short name."""
    if alt is None or not alt.strip():
        return "has no alt text"
    if ALT_IS_A_NAME.search(alt.strip()):
        return f"has a file name or path, not a description, as its alt text ({alt[:60]!r})"
    if figure and len(alt.split()) < 6:
        return f"is a figure with a label, not a description, as its alt text ({alt[:60]!r})"
    return None


def inspect_page(browser, url: str, base: str, site: Path, screenshot: Path | None = None,
                 lands_on: str | None = None, audit: bool = False) -> dict:
    """Open `url` and return what was found: the page's facts plus a list of `problems`.

    `lands_on`: the URL a redirecting page (index.html) must forward to; it is inspected.
    `audit`: also run axe-core over the page (facts["axe"]: its violations, every impact)."""
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda m: m.type == "error" and problems.append(
        f"console error: {m.text} (at {m.location.get('url') or '?'})"))
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    start = time.perf_counter()
    try:
        page.goto(url, wait_until="load")
        if lands_on is not None:
            page.wait_for_url(lands_on)
            page.wait_for_load_state("load")
        url = page.url
        facts = page.evaluate(_COLLECT_JS)
        facts["axe"] = axe_audit(page) if audit else []
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    facts["seconds"] = round(time.perf_counter() - start, 2)

    # Formulas: typeset, without errors, in MathJax's own fonts, nothing raw left over.
    for tex in facts["unrendered"]:
        problems.append(f"formula not typeset by MathJax: {tex!r}")
    for err in facts["mathErrors"]:
        problems.append(f"MathJax error: {err!r}")
    raw = list(RAW_TEX.finditer(facts["text"]))
    for match in raw[:5]:
        context = facts["text"][max(match.start() - 30, 0):match.end() + 30]
        problems.append(f"raw TeX {match.group(0)!r} left in the text: {context!r}")
    if len(raw) > 5:
        problems.append(f"raw TeX left in the text: {len(raw) - 5} more places")
    if facts["math"]:
        if not facts["mathjaxLoaded"]:
            problems.append("page has formulas but MathJax did not load")
        if facts["mjx"] and not any(status == "loaded" for _, status in facts["fonts"]):
            problems.append(f"MathJax fonts not loaded: {facts['fonts']}")
    for family, status in facts["fonts"]:
        if status == "error":
            problems.append(f"MathJax font {family} failed to load")

    # Images and figures.
    for img in facts["images"]:
        if not img["ok"]:
            problems.append(f"image not loaded: {img['src']}")
        why = alt_problem(img["alt"], img["figure"])
        if why:
            problems.append(f"image {why}: {img['src']}")
    for fig in facts["figures"]:
        name = fig["id"] or fig["caption"][:40]
        if not FIG_NUMBER.match(fig["number"]):
            problems.append(f"figure {name!r} has no number (caption {fig['caption'][:60]!r})")
        if len(fig["caption"]) <= len(fig["number"]) + 1:
            problems.append(f"figure {name!r} has no caption")
        if not fig["images"]:
            problems.append(f"figure {name!r} holds no image")
    for eqno in facts["eqnos"]:
        if not re.fullmatch(r"\(\d+(\.\d+)*\)", eqno):
            problems.append(f"badly numbered equation {eqno!r}")

    # Internal links and anchors (external links are not fetched).
    live_ids = frozenset(facts["ids"])
    for href in dict.fromkeys(facts["links"]):
        here = urlsplit(href)._replace(fragment="").geturl() == urlsplit(url)._replace(fragment="").geturl()
        why = check_link(href, base, site, live_ids if here else frozenset())
        if why:
            problems.append(why)

    # Accessibility: axe-core, formulas for assistive technology, language of parts.
    problems.extend(axe_problems(facts["axe"]))
    for tex in facts["mathNoMml"][:5]:
        problems.append("formula without assistive MathML (or with its rendering not "
                        f"aria-hidden): {tex!r}")
    if len(facts["mathNoMml"]) > 5:
        problems.append(f"formulas without assistive MathML: {len(facts['mathNoMml']) - 5} more")
    for text in facts["chineseNoLang"][:5]:
        problems.append(f"Chinese text outside an element with lang=\"zh\": {text!r}")
    if len(facts["chineseNoLang"]) > 5:
        problems.append(f"Chinese text outside lang=\"zh\": {len(facts['chineseNoLang']) - 5} "
                        "more places")

    # Titles numbered by the table of contents only.
    h1 = facts["h1"]
    if h1 and h1["number"] and OWN_NUMBER.match(h1["text"][len(h1["number"]):]):
        problems.append(
            f"title {h1['text']!r} shows its number twice: _toc.yml numbers chapters and sections, "
            "and tools/book_ext.py strips a title's own number only on pages in chapters/NN-*/"
        )
    facts["problems"] = problems
    return facts


def report(problems: list[str]) -> str:
    return "\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def site() -> Path:
    missing = [d for d in ("index", *TOC_DOCS) if not (SITE / f"{d}.html").is_file()]
    if missing:
        pytest.fail(f"not built: {missing} in {SITE}; run `make book` first", pytrace=False)
    return SITE


@pytest.fixture(scope="module")
def base_url(site):
    with serve(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


_SUMMARY: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_summary():
    """After the module: _build/screenshots/summary.json, one line of facts per page.

    Under pytest-xdist (`make browser` runs two workers) each worker writes the pages it
    checked to its own summary-<worker>.json.
    """
    yield
    if _SUMMARY:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        name = f"summary-{worker}.json" if worker else "summary.json"
        (SCREENSHOTS / name).write_text(json.dumps(_SUMMARY, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# The book in the browser.


@pytest.mark.parametrize("doc", PAGES)
def test_page_in_browser(doc, site, base_url, browser):
    target = site / f"{doc}.html"
    assert target.is_file(), f"{doc}.html was not built"
    refresh = parse_html(target).refresh
    if refresh is not None:  # index.html forwards to the first page
        landing = urljoin(base_url + f"{doc}.html", refresh)
        assert check_link(landing, base_url, site) is None
        facts = inspect_page(browser, base_url + f"{doc}.html", base_url, site, lands_on=landing,
                             audit=True)
        assert facts["title"], "the redirect led to an empty page"
        assert not facts["problems"], f"{doc} -> {landing}:" + report(facts["problems"])
        return
    facts = inspect_page(browser, base_url + f"{doc}.html", base_url, site,
                         screenshot=SCREENSHOTS / f"{doc}.png" if TAKE_SCREENSHOTS else None,
                         audit=True)
    problems = facts["problems"]
    if is_chapter(doc) and not (facts["h1"] and facts["h1"]["number"]):
        problems.append("chapter page without a section number: give its part `numbered: 2` in _toc.yml")
    if is_notebook(doc):
        problems.extend(launch_button_problems(doc, facts["links"], base_url))
    _SUMMARY[doc] = {k: facts[k] for k in ("math", "mjx", "seconds")} | {
        "images": len(facts["images"]), "figures": [f["number"] for f in facts["figures"]],
        "equations": facts["eqnos"], "problems": len(problems),
        "axe": {f"{v['impact']} {v['id']}": len(v["nodes"]) for v in facts["axe"]}}
    assert not problems, f"{doc}:" + report(problems)


def launch_button_problems(doc: str, links: list[str], base_url: str) -> list[str]:
    """A notebook page offers its .ipynb for download, and no launch link that leads nowhere."""
    problems = []
    download = f"{base_url}_sources/{doc}.ipynb"
    if download not in links:
        problems.append(f"no download button (expected a link to {download})")
    dead = ("mybinder.org", "colab.research.google.com", "github.com/dlbook/dlbook")
    problems += [f"a launch or repository link to a placeholder: {href}" for href in links
                 if any(host in href for host in dead)]
    return problems


def test_launch_button_check_can_fail():
    """Negative case: a page without the download link, or with a Binder link, is reported."""
    base = "http://127.0.0.1:1/"
    assert launch_button_problems("chapters/x", [], base) == [
        f"no download button (expected a link to {base}_sources/chapters/x.ipynb)"]
    links = [f"{base}_sources/chapters/x.ipynb", "https://mybinder.org/v2/gh/dlbook/dlbook/main"]
    assert len(launch_button_problems("chapters/x", links, base)) == 1


def test_search_finds_term(base_url, browser):
    found = search(browser, base_url, SEARCH_TERM)
    assert found, f"the search page found no page for {SEARCH_TERM!r}"
    _SUMMARY[f"search:{SEARCH_TERM}"] = {"results": found}


def test_search_reports_no_match_for_nonsense(base_url, browser):
    """Negative case: the search assertion above can fail."""
    assert search(browser, base_url, "qqxzv-no-such-word") == []


def search(browser, base_url: str, term: str) -> list[str]:
    """The pages (hrefs relative to the site) that the book's search page lists for `term`."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("requestfailed", lambda r: errors.append(f"failed request {r.url}"))
    try:
        page.goto(f"{base_url}search.html?q={quote(term)}", wait_until="load")
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results .search-summary');"
            " return s && s.textContent.trim().length > 0 }"
        )
        page.wait_for_timeout(200)  # results are appended one by one, 5 ms apart
        hrefs = page.eval_on_selector_all("#search-results ul.search li > a", "els => els.map(a => a.href)")
    finally:
        context.close()
    assert not errors, report(errors)
    return sorted({h[len(base_url):].split("#")[0].split("?")[0] for h in hrefs})


@pytest.mark.parametrize("doc", [d for d in TOC_DOCS if is_chapter(d)])
def test_chapter_page_offline_from_file(doc, site, browser):
    """A page opened straight from _build/html (file://), network off: formulas and figures render."""
    url = (site / f"{doc}.html").resolve().as_uri()
    facts = inspect_page(browser, url, site.resolve().as_uri() + "/", site)
    problems = [p for p in facts["problems"]
                if p.startswith(("formula", "MathJax", "raw TeX", "image", "figure", "failed request", "page has"))]
    assert not problems, f"{doc} from file://:" + report(problems)


# ---------------------------------------------------------------------------------------------
# Static checks of every built HTML page.


def _all_html(site: Path) -> list[Path]:
    return [site / f"{d}.html" for d in built_pages(site) if (site / f"{d}.html").is_file()]


def test_no_remote_assets(site):
    """No page loads a script, style sheet or image from another host (no CDN, works offline)."""
    remote = [f"{p.relative_to(site)}: {src}" for p in _all_html(site)
              for src in parse_html(p).assets if urlsplit(src).scheme or src.startswith("//")]
    assert not remote, report(remote)


def test_internal_links_and_anchors_resolve(site):
    """Every internal href of every built page, including genindex and search, resolves."""
    base = site.resolve().as_uri() + "/"
    broken = []
    for page in _all_html(site):
        page_url = page.resolve().as_uri()
        for href in parse_html(page).links:
            if href.startswith(("mailto:", "javascript:", "data:")):
                continue
            why = check_link(urljoin(page_url, href), base, site)
            if why:
                broken.append(f"{page.relative_to(site)}: {why}")
    assert not broken, report(broken)


def test_index_of_terms_is_linked_and_not_empty(site):
    linked_from = [d for d in TOC_DOCS if any(
        urlsplit(urljoin(f"https://x/{d}.html", href)).path == "/genindex.html"
        for href in parse_html(site / f"{d}.html").links if not href.startswith("#"))]
    assert linked_from, "no page of the book links the index of terms (genindex)"
    entries = re.findall(r'href="[^"]+#index-\d+"', (site / "genindex.html").read_text(encoding="utf-8"))
    assert len(entries) >= 5, "the index of terms is (nearly) empty: add {index} entries"


def _sections_with_entries(md_file: Path) -> set[int]:
    """Chapter numbers whose `## Chapter N: ...` section of an appendix page has any entry."""
    found, chapter, table_rows = set(), None, 0
    for line in md_file.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"##\s+Chapter\s+(\d+)\b", line)
        if heading:
            chapter, table_rows = int(heading.group(1)), 0
        elif line.startswith("## "):
            chapter = None
        elif chapter is not None and line.strip():
            if line.lstrip().startswith("|"):
                table_rows += 1
                if table_rows > 2:  # beyond the header row and the |---| row
                    found.add(chapter)
            else:
                found.add(chapter)
    return found


@pytest.mark.parametrize("appendix", ["errata", "glossary"])
def test_chapters_with_entries_link_the_appendix_page(appendix, site):
    """A chapter that has errata (glossary) entries links to the errata (glossary) page."""
    chapters = {}
    for doc in TOC_DOCS:
        m = re.match(r"chapters/(\d+)-", doc)
        if m:
            chapters.setdefault(int(m.group(1)), []).append(doc)
    target = f"/chapters/appendix/{appendix}.html"
    missing = []
    for number in sorted(_sections_with_entries(ROOT / "chapters" / "appendix" / f"{appendix}.md")):
        docs = chapters.get(number, [])
        links = [urlsplit(urljoin(f"https://x/{d}.html", h)).path
                 for d in docs for h in parse_html(site / f"{d}.html").links]
        if docs and target not in links:
            missing.append(f"chapter {number} has {appendix} entries but none of {docs} links {appendix}.md")
    assert not missing, report(missing)


def figure_cells_without_alt(docs: list[str]) -> list[str]:
    """Figure cells (with `mystnb.figure` metadata) of these notebooks that have no
    `mystnb.image.alt`, the description MyST-NB gives the figure's image as its alt text."""
    missing = []
    for doc in docs:
        path = ROOT / f"{doc}.ipynb"
        if not path.is_file():
            continue
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("mystnb", {})
            if "figure" in meta and not str(meta.get("image", {}).get("alt", "")).strip():
                missing.append(f"{doc}.ipynb cell {cell.get('id')} ({meta['figure'].get('name')})")
    return missing


def test_every_figure_cell_has_alt_text():
    """The source of the alt text the browser test checks: one description per figure cell."""
    missing = figure_cells_without_alt(TOC_DOCS)
    assert not missing, ("figure cells without a description in metadata mystnb.image.alt "
                         "(one sentence saying what the figure shows):" + report(missing))


def test_figure_cell_without_alt_text_is_found(tmp_path, monkeypatch):
    """Negative case: a figure cell without mystnb.image.alt is reported."""
    cell = {"cell_type": "code", "id": "abc", "source": [], "outputs": [],
            "metadata": {"mystnb": {"figure": {"name": "fig-x"}}}}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "page.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert figure_cells_without_alt(["page"]) == ["page.ipynb cell abc (fig-x)"]
    nb["cells"][0]["metadata"]["mystnb"]["image"] = {"alt": "A line falls from left to right."}
    (tmp_path / "page.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    assert figure_cells_without_alt(["page"]) == []


def test_every_chapter_has_a_formula(site):
    """Each chapter shows at least one formula (which the browser test checks is typeset)."""
    chapters = {}
    for doc in TOC_DOCS:
        m = re.match(r"(chapters/\d+-[^/]+)/", doc)
        if m:
            html = (site / f"{doc}.html").read_text(encoding="utf-8")
            chapters[m.group(1)] = chapters.get(m.group(1), False) or 'class="math' in html
    assert chapters, "no chapter in _toc.yml"
    assert all(chapters.values()), [c for c, has in chapters.items() if not has]


def test_mathjax_is_served_from_the_site(site):
    """MathJax and its CHTML fonts come from the package `make book` installs, not from a CDN."""
    assert CONFIG["sphinx"]["config"]["mathjax_path"] == "mathjax/tex-mml-chtml.js"
    mathjax = site / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file()
    fonts = list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_*.woff"))
    assert len(fonts) >= 20, fonts
    version = re.search(r"^MATHJAX_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f'"{version}"' in (mathjax / "tex-mml-chtml.js").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The bibliography.

REQUIRED_PAPERS = {
    "LeCun et al. 1998 (LeNet-5)": "gradient-based learning applied to document recognition",
    "Krizhevsky et al. 2012 (AlexNet)": "imagenet classification with deep convolutional neural networks",
    "Simonyan & Zisserman 2014 (VGG)": "very deep convolutional networks for large-scale image recognition",
    "Lin et al. 2013 (NIN)": "network in network",
    "Szegedy et al. 2015 (GoogLeNet)": "going deeper with convolutions",
    "He et al. 2016 (ResNet)": "deep residual learning for image recognition",
    "Hochreiter & Schmidhuber 1997 (LSTM)": "long short-term memory",
    "Rumelhart et al. 1986 (backpropagation)": "learning representations by back-propagating errors",
}


def _bib_entries(with_year: bool = False) -> list[tuple[str, str]]:
    """(key, normalised title) per entry; ``with_year`` appends the year, which tells apart two
    works of one title ("Deep learning", Nature 2015, and "Deep Learning", MIT Press 2016)."""
    text = (ROOT / "references.bib").read_text(encoding="utf-8")
    entries = []
    for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, flags=re.S):
        title = re.search(r"\btitle\s*=\s*[{\"](.*?)[}\"]\s*,?\s*\n", m.group(2), flags=re.S)
        norm = re.sub(r"[^a-z0-9 -]", "", re.sub(r"\s+", " ", title.group(1).lower())) if title else ""
        year = re.search(r"\byear\s*=\s*[{\"]?(\d{4})", m.group(2))
        if with_year and norm:
            norm = f"{norm.strip()} ({year.group(1) if year else '?'})"
        entries.append((m.group(1), norm.strip()))
    return entries


def test_bibliography_has_no_duplicates():
    entries = _bib_entries(with_year=True)
    keys = [k.lower() for k, _ in entries]
    assert len(entries) == len(re.findall(r"^\s*@\w+\s*\{", (ROOT / "references.bib").read_text(), re.M))
    assert sorted({k for k in keys if keys.count(k) > 1}) == [], "duplicate bibtex keys"
    titles = [t for _, t in entries if t]
    assert sorted({t for t in titles if titles.count(t) > 1}) == [], "one paper under two keys"


def test_bibliography_has_the_papers_the_chapters_name():
    titles = [t for _, t in _bib_entries()]
    missing = [name for name, title in REQUIRED_PAPERS.items() if title not in titles]
    assert not missing, f"references.bib lacks {missing}"


# ---------------------------------------------------------------------------------------------
# Negative cases: the checks above do fail on broken pages.

_BAD_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>broken on purpose</title>
<script src="https://cdn.example.com/mathjax/tex-chtml.js"></script>
<script>console.error("boom");</script>
</head><body><main>
<h1><span class="section-number">2.1. </span>2.1 A title with its own number</h1>
<p>Display math that was never typeset: $$ y = x^2 $$ and inline \( z \).</p>
<p><span class="math notranslate nohighlight">\(a + b\)</span></p>
<figure id="fig-broken"><img src="missing.png" alt=""><figcaption><p>No number here.</p></figcaption></figure>
<a href="nowhere.html">a missing page</a> <a href="good.html#no-such-anchor">a missing anchor</a>
<a href="#also-missing">a missing anchor on this page</a>
<img src="pixel.png">
<img src="pixel.png" alt="../../_images/516f64c7e0a1b2c3d4e5f60718293a4b.png">
<figure><img src="pixel.png" alt="A plot">
<figcaption><span class="caption-number">Fig. 1.2 </span>A.</figcaption></figure>
<details><summary><span class="toctree-toggle" role="presentation"><i></i></span></summary>
<a href="good.html">hidden</a></details>
<p>The glossary term 卷积 without its language.</p>
<span class="math"><mjx-container class="MathJax">x</mjx-container></span>
</main></body></html>
"""

_GOOD_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fine</title></head><body><main>
<h1 id="top">A page with nothing wrong</h1>
<p>The glossary term <span lang="zh">卷积</span>, convolution.</p>
<figure id="fig-ok"><img src="pixel.png" alt="A single white pixel on a white page.">
<figcaption><p><span class="caption-number">Fig. 1.1 </span>A one-pixel image.</p></figcaption></figure>
<a href="bad.html">a page</a> <a href="#top">this page</a> <a href="https://example.com/">not fetched</a>
</main></body></html>
"""

# A valid 1x1 PNG.
_PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken-site")
    (root / "bad.html").write_text(_BAD_PAGE, encoding="utf-8")
    (root / "good.html").write_text(_GOOD_PAGE, encoding="utf-8")
    (root / "pixel.png").write_bytes(_PIXEL)
    with serve(root) as url:
        yield root, url


def test_checks_flag_a_broken_page(broken_site, browser):
    root, url = broken_site
    facts = inspect_page(browser, url + "bad.html", url, root, screenshot=root / "bad.png",
                         audit=True)
    found = "\n".join(facts["problems"])
    for expected in [
        "console error: boom",
        "failed request: https://cdn.example.com/mathjax/tex-chtml.js",  # offline: no CDN
        "formula not typeset by MathJax: '\\\\(a + b\\\\)'",
        "raw TeX '$$' left in the text: ' math that was never typeset: $$ y = x^2 $$",
        "raw TeX '\\\\(' left in the text",
        "page has formulas but MathJax did not load",
        "image not loaded: " + url + "missing.png",
        "HTTP 404: " + url + "missing.png",
        "figure 'fig-broken' has no number",
        "broken link " + url + "nowhere.html",
        "broken anchor " + url + "good.html#no-such-anchor",
        "broken anchor " + url + "bad.html#also-missing",
        "shows its number twice",
        # Accessibility: axe-core's verdicts, then the book's own checks.
        "axe critical image-alt (Images must have alternative text) at img[src$=\"pixel.png\"]",
        "axe serious summary-name (Summary elements must have discernible text) at summary",
        "axe serious html-has-lang",
        "image has no alt text: " + url + "pixel.png",
        "image has a file name or path, not a description, as its alt text ('../../_images/516f",
        "image is a figure with a label, not a description, as its alt text ('A plot')",
        "formula without assistive MathML (or with its rendering not aria-hidden): 'x'",
        "Chinese text outside an element with lang=\"zh\": 'The glossary term 卷积 without",
    ]:
        assert expected in found, f"{expected!r} not flagged; found:{report(facts['problems'])}"
    assert (root / "bad.png").stat().st_size > 0


def test_checks_pass_a_good_page(broken_site, browser):
    """The checks do not flag a page that has nothing wrong."""
    root, url = broken_site
    facts = inspect_page(browser, url + "good.html", url, root, audit=True)
    assert facts["problems"] == []
    assert facts["axe"] == [], facts["axe"]  # not even a moderate or minor violation
    assert facts["images"] == [{"src": url + "pixel.png", "ok": True, "figure": True,
                                "alt": "A single white pixel on a white page."}]


def test_static_checks_flag_a_broken_page(broken_site):
    root, _ = broken_site
    page = root / "bad.html"
    assert parse_html(page).assets[0] == "https://cdn.example.com/mathjax/tex-chtml.js"
    base = root.resolve().as_uri() + "/"
    whys = [check_link(urljoin(page.resolve().as_uri(), h), base, root) for h in parse_html(page).links]
    assert whys[0].startswith("broken link") and whys[1].startswith("broken anchor")
    assert whys[2].startswith("broken anchor")
    assert check_link(base + "good.html#top", base, root) is None
    assert check_link("https://example.com/never-fetched", base, root) is None


def _tiny_book(root: Path, section_title: str) -> subprocess.CompletedProcess:
    """Build a two-page numbered book with this repository's Sphinx extension; return the run."""
    (root / "chapters" / "01-one").mkdir(parents=True)
    (root / "_config.yml").write_text(
        "title: tiny\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        f"sphinx:\n  local_extensions:\n    book_ext: {ROOT / 'tools'}\n", encoding="utf-8")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Part\n    numbered: 2\n    chapters:\n"
        "      - file: chapters/01-one/index\n        sections:\n          - file: chapters/01-one/01-a\n",
        encoding="utf-8")
    (root / "intro.md").write_text("# Tiny\n\nA book.\n", encoding="utf-8")
    (root / "chapters" / "01-one" / "index.md").write_text("# 1. One\n\nA chapter.\n", encoding="utf-8")
    (root / "chapters" / "01-one" / "01-a.md").write_text(f"# {section_title}\n\nA section.\n", encoding="utf-8")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jupyter_book), "build", str(root), "--warningiserror", "--keep-going"],
                          capture_output=True, text=True, timeout=300)


def test_title_number_that_disagrees_with_the_toc_fails_the_build(tmp_path):
    """tools/book_ext.py: a title's own number must be the one _toc.yml gives the page."""
    run = _tiny_book(tmp_path / "wrong", "1.3 A section")
    assert run.returncode != 0
    assert "the title is numbered 1.3 but _toc.yml makes this page 1.1" in run.stdout + run.stderr
    run = _tiny_book(tmp_path / "right", "1.1 A section")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    html = (tmp_path / "right" / "_build" / "html" / "chapters" / "01-one" / "01-a.html").read_text(encoding="utf-8")
    assert '<span class="section-number">1.1. </span>A section' in html


def test_axe_is_pinned_and_installed():
    """The audit runs the axe-core the Makefile pins (`make browser` installs it)."""
    text = require_axe().read_text(encoding="utf-8")
    assert text.startswith(f"/*! axe v{AXE_VERSION}"), text[:40]
    with pytest.raises(pytest.fail.Exception, match=r"make browser"):
        require_axe(Path("/nonexistent/axe.min.js"))


@pytest.mark.parametrize("alt, figure, verdict", [
    ("The training loss falls and the validation loss turns up after epoch 20.", True, None),
    ("Binder logo", False, None),
    (None, False, "has no alt text"), ("", True, "has no alt text"),
    ("  ", True, "has no alt text"),
    ("../../_images/516f64c7.png", True, "file name"), ("figure.png", False, "file name"),
    ("_images/plot", False, "file name"), ("516f64c7e0a1b2c3d4e5f607", True, "file name"),
    ("Binder logo", True, "a label, not a description"),
])
def test_alt_text_verdicts(alt, figure, verdict):
    why = alt_problem(alt, figure)
    assert (why is None) if verdict is None else (verdict in why)


def test_search_page_passes_axe(base_url, browser):
    """The search page, with its results shown, has no critical or serious axe violation."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base_url}search.html?q={quote(SEARCH_TERM)}", wait_until="load")
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results .search-summary');"
            " return s && s.textContent.trim().length > 0 }")
        page.wait_for_timeout(200)
        violations = axe_audit(page)
    finally:
        context.close()
    assert not axe_problems(violations), "search:" + report(axe_problems(violations))


# A page of each kind: prose, a notebook with figures and code, the glossary's tables, the
# bibliography. The full audit runs in the default light mode; these also in the theme's dark mode.
DARK_MODE_PAGES = ["intro", "chapters/01-neurons/03-activations", "chapters/appendix/glossary",
                   "chapters/appendix/references"]


@pytest.mark.parametrize("doc", [d for d in DARK_MODE_PAGES if d in TOC_DOCS])
def test_dark_mode_passes_axe(doc, base_url, browser):
    """The theme's colour-mode switch offers dark mode: its contrast must hold as well."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script("localStorage.setItem('mode', 'dark');"
                         " localStorage.setItem('theme', 'dark');")
    try:
        page.goto(f"{base_url}{doc}.html", wait_until="load")
        page.evaluate(_COLLECT_JS)  # waits for MathJax, images and fonts
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        violations = axe_audit(page)
    finally:
        context.close()
    assert not axe_problems(violations), f"{doc} (dark mode):" + report(axe_problems(violations))


def _book_ext():
    """tools/book_ext.py, imported from its file (it is a Sphinx extension, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_ext", ROOT / "tools" / "book_ext.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_step_marks_chinese_and_leaves_markup_alone():
    """book_ext.mark_chinese wraps Chinese runs in lang="zh", never inside tags or scripts."""
    ext = _book_ext()
    html = ('<p title="卷积">卷积 (convolution), 第 3 章。</p>'
            '<script>var s = "池化";</script>'
            '<a href="#x">池化层</a>')
    out = ext.mark_chinese(html)
    assert out == ('<p title="卷积"><span lang="zh">卷积</span> (convolution), '
                   '<span lang="zh">第 3 章。</span></p><script>var s = "池化";</script>'
                   '<a href="#x"><span lang="zh">池化层</span></a>')
    assert ext.mark_chinese("<p>no Chinese here</p>") == "<p>no Chinese here</p>"


def test_build_step_fixes_citation_roles_and_toc_toggles():
    ext = _book_ext()
    cites = ('<div role="list" class="citation-list">\n'
             '<div class="citation" id="id1" role="doc-biblioentry">')
    assert ext.list_citations(cites) == cites.replace("doc-biblioentry", "listitem")
    toc = ('<li class="toctree-l1 has-children">'
           '<a class="reference internal" href="a.html">1. Neurons</a>'
           '<details><summary><span class="toctree-toggle" role="presentation"></span></summary>'
           '<ul></ul></details></li>'
           '<li><details><summary><p class="caption">Part</p></summary></details></li>')
    out = ext.label_toc_toggles(toc)
    assert out.count('aria-label="Sections of 1. Neurons"') == 1
    assert out.count("aria-label") == 1  # a summary that has text keeps its own name


def test_missing_chromium_fails_with_install_hint():
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install chromium"):
        require_chromium("/nonexistent/chromium")


def test_appendix_entry_detection(tmp_path):
    md = tmp_path / "glossary.md"
    md.write_text("# G\n\n## Chapter 1: A\n\n| a | b |\n|---|---|\n\n## Chapter 2: B\n\n"
                  "| a | b |\n|---|---|\n| 卷积 | convolution |\n\n## Chapter 3: C\n\n- an erratum\n",
                  encoding="utf-8")
    assert _sections_with_entries(md) == {2, 3}
