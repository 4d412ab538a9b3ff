"""The widget in a real browser: Debian's Chromium driven by Playwright against a real uvicorn server
running the real pipeline with the fake LLM (which streams word by word, 80 ms apart).

Needs /usr/bin/chromium (`apt-get install chromium`). Never run `playwright install`: these tests use
the system browser, and without it they fail, loudly, rather than skip.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.api.app import create_app
from service.testing import FakeLLM, fake_loader, fake_settings

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOG = "What breed of dog did Kim give Putin?"
FOLLOW_UP = "What else did he receive?"
FIFA = "Who won the 2022 FIFA World Cup?"
API_KEY = "sk-browser-test-key-0123456789"
ANSWER_TIMEOUT = 30_000  # ms

try:
    from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None  # type: ignore[assignment]


# ------------------------------------------------------------------ servers


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn stopped during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if self.server.started and httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the test server did not become ready within 60 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


class HostPage:
    """A plain static server for a third-party page that embeds the widget from another origin."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.html = ""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.html.encode()
                self.send_response(200 if self.path == "/" else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        sock.listen(16)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        self.httpd.socket.close()
        self.httpd.socket = sock
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service as specified for the internal page: API keys off, the fake LLM streaming slowly."""
    tmp = tmp_path_factory.mktemp("widget-browser")
    app = create_app(fake_settings(tmp), loader=fake_loader(FakeLLM(delay=0.08)))
    with LiveServer(app, _listening_socket()) as live:
        yield live


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, HostPage]]:
    """API keys on, and a page on another origin (allowed by CORS) that embeds the widget."""
    tmp = tmp_path_factory.mktemp("widget-embedded")
    api_sock, page_sock = _listening_socket(), _listening_socket()
    page_origin = f"http://127.0.0.1:{page_sock.getsockname()[1]}"
    settings = fake_settings(tmp, api_keys=API_KEY, cors_origins=page_origin)
    app = create_app(settings, loader=fake_loader(FakeLLM(delay=0.02)))
    with LiveServer(app, api_sock) as api, HostPage(page_sock) as host:
        host.html = HOSTILE_PAGE.replace("{API}", api.url)
        yield api, host


# A page whose styles try hard to restyle everything, including the widget's own class names.
HOSTILE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Partner page</title>
<style>
  * { font-family: "Comic Sans MS", cursive !important; color: rgb(255, 0, 0) !important; }
  button { background: rgb(0, 255, 0) !important; border: 6px dashed blue !important; }
  [data-testid], .launcher, .panel, .chip { display: none !important; }
  citeqa-widget { font-size: 40px; line-height: 5; }
</style></head>
<body><h1>Partner page</h1><p id="copy">Some partner content.</p>
<div class="panel launcher" id="lookalike">A page element that shares the widget's class names.</div>
<script src="{API}/widget.js"></script>
</body></html>"""


# ------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the widget browser tests need it. Install it with "
            "`apt-get update && apt-get install -y chromium` (Debian). Do not run `playwright install`.",
            pytrace=False,
        )
    if sync_playwright is None:
        pytest.fail("Python Playwright is missing: install the dev extra (`pip install -e '.[dev]'`).", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# ------------------------------------------------------------------ helpers


def tid(scope: Any, name: str) -> Any:
    return scope.get_by_test_id(name)


def assistant_messages(page: Page) -> Any:
    return page.locator('[data-testid="citeqa-message"][data-role="assistant"]')


def shadow_focus(page: Page) -> str | None:
    """The data-testid (or tag) of the focused element inside the widget's shadow root."""
    return page.evaluate("""() => {
        const host = document.querySelector('citeqa-widget');
        if (!host || document.activeElement !== host) return null;
        const el = host.shadowRoot.activeElement;
        return el ? (el.dataset.testid || el.tagName.toLowerCase()) : null;
    }""")


def open_widget(page: Page) -> None:
    tid(page, "citeqa-launcher").click()
    expect(tid(page, "citeqa-panel")).to_be_visible()


def ask(page: Page, question: str, state: str = "done") -> Any:
    """Type `question`, press Enter, wait for the answer to reach `state`; returns its message."""
    before = assistant_messages(page).count()
    tid(page, "citeqa-input").fill(question)
    tid(page, "citeqa-input").press("Enter")
    expect(assistant_messages(page)).to_have_count(before + 1)
    message = assistant_messages(page).nth(before)
    expect(message).to_have_attribute("data-state", state, timeout=ANSWER_TIMEOUT)
    return message


RECORD_ANSWER_TEXT = """() => {
    const root = document.querySelector('citeqa-widget').shadowRoot;
    const seen = window.__citeqaSeen = [];
    const record = () => {
        const all = root.querySelectorAll('[data-testid="citeqa-message"][data-role="assistant"]');
        const last = all[all.length - 1];
        if (!last) return;
        const text = last.querySelector('[data-testid="citeqa-answer-text"]');
        seen.push({state: last.dataset.state, text: text ? text.textContent : '', at: performance.now()});
    };
    new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true,
                                                attributes: true, attributeFilter: ['data-state']});
}"""


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def check_passage(page: Page) -> None:
    """The passage viewer shows a seed file, its line range, and text that is really on those lines."""
    viewer = tid(page, "citeqa-passage")
    expect(viewer).to_be_visible()
    source = tid(viewer, "citeqa-passage-source").inner_text().strip()
    lines = tid(viewer, "citeqa-passage-lines").inner_text().strip()
    text = tid(viewer, "citeqa-passage-text").inner_text().strip()
    assert re.fullmatch(r"seeds/[\w.-]+\.txt", source), source
    assert (ROOT / source).is_file()
    m = re.fullmatch(r"lines? (\d+)(?:\u2013(\d+))?", lines)
    assert m, lines
    start, end = int(m.group(1)), int(m.group(2) or m.group(1))
    quoted = squash(" ".join((ROOT / source).read_text(encoding="utf-8").splitlines()[start - 1 : end]))
    # The service may quote several, not necessarily adjacent, sentences of those lines.
    pieces = [p for p in re.split(r"(?<=[.!?])\s+", squash(text)) if p]
    assert pieces and all(p in quoted for p in pieces), (text, quoted)


# ------------------------------------------------------------------ tests


def test_streams_then_shows_the_checked_answer_with_citations(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_title("citeqa — internal demo")
    open_widget(page)
    page.evaluate(RECORD_ANSWER_TEXT)

    message = ask(page, DOG)
    final = tid(message, "citeqa-answer-text").inner_text()
    seen = page.evaluate("window.__citeqaSeen")
    partial = [s for s in seen if s["state"] == "streaming" and s["text"]]
    assert partial, f"no partial text was shown before the answer completed: {seen}"
    assert any(len(s["text"]) < len(final) for s in partial), (partial, final)
    assert len({s["text"] for s in partial}) >= 3, "the text should grow piece by piece"
    for a, b in itertools.pairwise(partial):  # each state extends the one before
        assert b["text"].startswith(a["text"])
    done_at = next(s["at"] for s in seen if s["state"] == "done")
    assert done_at - partial[0]["at"] > 500, "the first words should show well before the answer completes"

    # The checked answer replaced the streamed text; its [n] markers are chips now.
    assert "[1]" not in final
    chips = tid(message, "citeqa-citation")
    expect(chips.first).to_be_visible()
    label = chips.first.get_attribute("aria-label") or ""
    assert re.fullmatch(r"Source 1: [\w.-]+\.txt, lines? \d+(\u2013\d+)?", label), label
    expect(tid(page, "citeqa-live")).to_contain_text("Answer:")
    expect(tid(message, "citeqa-rewritten")).to_be_hidden()  # no history, no rewrite
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "widget-answered.png"))

    # Opening a citation shows the passage, moves focus there; Escape goes back to the chip.
    chips.first.click()
    check_passage(page)
    assert chips.first.get_attribute("aria-expanded") == "true"
    assert shadow_focus(page) == "citeqa-passage"
    page.screenshot(path=str(OUT / "widget-passage.png"))
    page.keyboard.press("Escape")
    expect(tid(page, "citeqa-passage")).to_be_hidden()
    expect(tid(page, "citeqa-panel")).to_be_visible()  # the first Escape only closes the passage
    assert shadow_focus(page) == "citeqa-citation"


def test_follow_up_sends_the_conversation_as_history(page: Page, server: LiveServer) -> None:
    bodies: list[Any] = []

    def on_request(request: Request) -> None:
        if request.url.endswith("/ask/stream") and request.method == "POST":
            bodies.append(request.post_data_json)

    page.on("request", on_request)
    page.goto(server.url + "/")
    open_widget(page)
    first = ask(page, DOG)
    first_answer = squash(tid(first, "citeqa-answer-text").inner_text())

    follow = ask(page, FOLLOW_UP)  # refused without history: see test_widget.test_follow_up_needs_the_history
    assert [b["question"] for b in bodies] == [DOG, FOLLOW_UP]
    assert "history" not in bodies[0]
    history = bodies[1]["history"]
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == DOG
    assert "[1]" in history[1]["content"]  # the answer as the service gave it
    assert squash(history[1]["content"]).startswith(first_answer[:40])

    expect(tid(follow, "citeqa-citation").first).to_be_visible()
    rewritten = tid(follow, "citeqa-rewritten")
    expect(rewritten).to_be_visible()
    expect(rewritten).to_contain_text("Searched for:")
    expect(rewritten).to_contain_text(FOLLOW_UP)
    tid(follow, "citeqa-citation").first.click()
    check_passage(page)


def test_off_topic_question_shows_the_refusal_state(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    open_widget(page)
    message = ask(page, FIFA, state="refused")
    refusal = tid(message, "citeqa-refusal")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text(re.compile(r"documents don.t answer this", re.I))
    expect(tid(message, "citeqa-citation")).to_have_count(0)
    expect(tid(message, "citeqa-error")).to_have_count(0)
    expect(tid(page, "citeqa-live")).to_contain_text(re.compile(r"don.t answer", re.I))
    # Styled apart from an answer, not just worded differently.
    background = refusal.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), background


def test_error_state_and_retry_resends_the_same_question(page: Page, server: LiveServer) -> None:
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/ask/stream") else None)
    overloaded = {"error": {"code": "overloaded", "message": "LLM queue full", "request_id": "rid-1"}}
    timeout = {"error": {"code": "llm_timeout", "message": "no answer in 60 s"}}
    failures = iter(
        [
            # a service error before the stream starts ...
            (503, {"Retry-After": "5", "Content-Type": "application/json"}, json.dumps(overloaded)),
            # ... and an error event in the middle of a stream
            (
                200,
                {"Content-Type": "text/event-stream"},
                f'event: token\ndata: {{"text": "Partial "}}\n\nevent: error\ndata: {json.dumps(timeout)}\n\n',
            ),
        ]
    )

    def fail_twice(route: Route) -> None:
        status, headers, body = next(failures)
        route.fulfill(status=status, headers=headers, body=body)

    page.route("**/ask/stream", fail_twice, times=2)
    page.goto(server.url + "/")
    open_widget(page)

    message = ask(page, DOG, state="error")
    error = tid(message, "citeqa-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile("busy", re.I))
    expect(error).to_contain_text("rid-1")
    assert error.get_attribute("role") == "alert"

    tid(message, "citeqa-retry").click()
    expect(message).to_have_attribute("data-state", "error", timeout=ANSWER_TIMEOUT)
    expect(tid(message, "citeqa-error")).to_contain_text(re.compile("too long", re.I))
    expect(tid(message, "citeqa-error")).to_have_count(1)
    assert shadow_focus(page) == "citeqa-input"  # focus is not lost when the Retry button goes away

    tid(message, "citeqa-retry").click()  # now the real service answers, in the same message
    expect(message).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT)
    expect(tid(message, "citeqa-error")).to_have_count(0)
    expect(tid(message, "citeqa-citation").first).to_be_visible()
    expect(assistant_messages(page)).to_have_count(1)
    assert len(bodies) == 3 and all(b == {"question": DOG} for b in bodies), bodies


def test_token_refusal_falls_back_to_no_header(page: Page, server: LiveServer) -> None:
    seen: list[dict[str, str]] = []
    page.on("request", lambda r: seen.append(r.headers) if r.url.endswith("/ask/stream") else None)
    page.route(
        "**/widget/token",
        lambda route: route.fulfill(
            status=401,
            content_type="application/json",
            body=json.dumps({"error": {"code": "unauthorized", "message": "not for you"}}),
        ),
    )
    page.goto(server.url + "/")
    open_widget(page)
    ask(page, FIFA, state="refused")  # keys are off, so the question still goes through
    assert seen and "authorization" not in seen[0]


def test_keyboard_operation(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    launcher = tid(page, "citeqa-launcher")
    for _ in range(40):
        page.keyboard.press("Tab")
        if shadow_focus(page) == "citeqa-launcher":
            break
    else:
        pytest.fail("Tab never reached the widget's launcher")
    outline = launcher.evaluate("el => [getComputedStyle(el).outlineStyle, getComputedStyle(el).outlineWidth]")
    assert outline[0] != "none" and float(outline[1].rstrip("px")) >= 2, f"no visible focus style: {outline}"
    assert launcher.get_attribute("aria-expanded") == "false"
    assert launcher.get_attribute("aria-label")

    page.keyboard.press("Enter")
    expect(tid(page, "citeqa-panel")).to_be_visible()
    assert launcher.get_attribute("aria-expanded") == "true"
    assert shadow_focus(page) == "citeqa-input", "focus should move into the panel"
    panel = tid(page, "citeqa-panel")
    assert panel.get_attribute("role") == "dialog"
    for name in ("citeqa-send", "citeqa-close", "citeqa-reset"):
        assert tid(page, name).get_attribute("aria-label"), name

    page.keyboard.type(FIFA)
    page.keyboard.press("Enter")  # Enter sends
    expect(assistant_messages(page).first).to_have_attribute("data-state", "refused", timeout=ANSWER_TIMEOUT)
    expect(tid(page, "citeqa-input")).to_have_value("")
    page.keyboard.press("Tab")
    assert shadow_focus(page) == "citeqa-send"

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert shadow_focus(page) == "citeqa-launcher", "focus should return to the launcher"
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(assistant_messages(page)).to_have_count(1)  # the conversation is kept while closed
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_phone_screen_shows_the_panel_full_screen(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        open_widget(page)
        box = tid(page, "citeqa-panel").bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["y"] >= 0, box
        assert box["x"] + box["width"] <= 375 + 0.5 and box["y"] + box["height"] <= 667 + 0.5, box
        assert box["width"] >= 374 and box["height"] >= 666, f"expected a full-screen panel: {box}"
        for name in ("citeqa-input", "citeqa-send", "citeqa-close"):
            b = tid(page, name).bounding_box()
            assert b, name
            assert b["x"] >= 0 and b["y"] >= 0, (name, b)
            assert b["x"] + b["width"] <= 375 and b["y"] + b["height"] <= 667, (name, b)
        ask(page, FIFA, state="refused")
        OUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUT / "widget-phone.png"))
        tid(page, "citeqa-close").click()
        expect(tid(page, "citeqa-panel")).to_be_hidden()
        expect(tid(page, "citeqa-launcher")).to_be_visible()
    finally:
        context.close()


def test_cross_origin_embed_uses_a_short_lived_token(page: Page, embedded: tuple[LiveServer, HostPage]) -> None:
    api, host = embedded
    token_calls: list[Request] = []
    asks: list[dict[str, str]] = []
    page.on("request", lambda r: token_calls.append(r) if r.url.endswith("/widget/token") else None)
    page.on(
        "request",
        lambda r: asks.append(r.all_headers()) if r.url.endswith("/ask/stream") and r.method == "POST" else None,
    )
    page.goto(host.url + "/")

    # Page styles do not reach into the widget ...
    launcher = tid(page, "citeqa-launcher")
    expect(launcher).to_be_visible()
    style = launcher.evaluate(
        "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color, s.fontFamily, s.borderTopStyle]; }"
    )
    assert style[0] == "rgb(36, 80, 214)" and style[1] == "rgb(255, 255, 255)", style
    assert "Comic" not in style[2] and style[3] != "dashed", style
    # ... and widget styles do not leak out onto the page's look-alike element.
    lookalike = page.locator("#lookalike").evaluate(
        "el => { const s = getComputedStyle(el); return [s.position, s.display]; }"
    )
    assert lookalike == ["static", "none"], lookalike

    open_widget(page)
    message = ask(page, DOG)
    expect(tid(message, "citeqa-citation").first).to_be_visible()
    # A new conversation (no history, or the fake rewriter would fold the dog question into this one).
    tid(page, "citeqa-reset").click()
    expect(assistant_messages(page)).to_have_count(0)
    ask(page, FIFA, state="refused")

    assert len(token_calls) == 1, "the token should be cached between questions"
    token = token_calls[0].response().json()["token"]  # type: ignore[union-attr]
    assert token and API_KEY not in token
    assert len(asks) == 2
    for headers in asks:
        assert headers["authorization"] == f"Bearer {token}"
        assert headers["origin"] == host.url
    assert API_KEY not in page.content()
    assert API_KEY not in httpx.get(api.url + "/widget.js").text


GUIDE = """# Install

Download the package from the release page.

## From source

Run make install in the unpacked folder to build and install the server.
"""


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A Markdown corpus: its passages sit under a heading path."""
    tmp = tmp_path_factory.mktemp("widget-headings")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "guide.md").write_text(GUIDE)
    app = create_app(fake_settings(tmp, corpus_dir=tmp / "docs"), loader=fake_loader(FakeLLM()))
    with LiveServer(app, _listening_socket()) as live:
        yield live


def test_a_passage_from_a_markdown_file_shows_its_heading_path(page: Page, docs_server: LiveServer) -> None:
    page.goto(docs_server.url + "/")
    open_widget(page)
    message = ask(page, "How do I install the server from source with make install?")
    chip = tid(message, "citeqa-citation").first
    expect(chip).to_be_visible()
    assert "Install › From source" in (chip.get_attribute("title") or "")
    chip.click()
    viewer = tid(page, "citeqa-passage")
    expect(viewer).to_be_visible()
    source = tid(viewer, "citeqa-passage-source").inner_text().strip()
    assert source == "docs/guide.md › Install › From source", source
    assert tid(viewer, "citeqa-passage-lines").inner_text().strip() == "line 7"
    assert "make install" in tid(viewer, "citeqa-passage-text").inner_text()


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A corpus of one real PDF (printed by Chromium), the fact on page 3."""
    from tests.binary_files import MANUAL_HTML, print_pdf

    tmp = tmp_path_factory.mktemp("widget-pdf")
    (tmp / "docs").mkdir()
    print_pdf(MANUAL_HTML, tmp / "docs" / "manual.pdf")
    app = create_app(fake_settings(tmp, corpus_dir=tmp / "docs"), loader=fake_loader(FakeLLM()))
    with LiveServer(app, _listening_socket()) as live:
        yield live


def test_a_passage_from_a_pdf_shows_its_page(page: Page, pdf_server: LiveServer) -> None:
    from tests.binary_files import FACT_PAGE, QUESTION

    page.goto(pdf_server.url + "/")
    open_widget(page)
    message = ask(page, QUESTION)
    chip = tid(message, "citeqa-citation").first
    expect(chip).to_be_visible()
    assert f"docs/manual.pdf, page {FACT_PAGE}" in (chip.get_attribute("title") or "")
    chip.click()
    viewer = tid(page, "citeqa-passage")
    expect(viewer).to_be_visible()
    source = tid(viewer, "citeqa-passage-source").inner_text().strip()
    assert source == f"docs/manual.pdf, page {FACT_PAGE}", source
    assert "Marmalade Quasar" in tid(viewer, "citeqa-passage-text").inner_text()


# ------------------------------------------------------------------ feedback


def _feedback_db(live: LiveServer) -> str:
    app: Any = live.server.config.app  # the FastAPI app the fixture built
    return str(app.state.citeqa.settings.feedback_db)


def test_thumbs_down_with_a_comment_ends_up_in_the_eval_export(
    page: Page, server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli import main as cli_main

    comment = f"It should say they were hunting dogs ({tmp_path.name})."
    page.goto(server.url + "/")
    open_widget(page)
    message = ask(page, DOG)
    bar = tid(message, "citeqa-feedback")
    expect(bar).to_have_attribute("role", "group")
    expect(tid(bar, "citeqa-thumbs-up")).to_have_attribute("aria-label", "Good answer")
    down = tid(bar, "citeqa-thumbs-down")
    expect(down).to_have_attribute("aria-label", "Bad answer")
    expect(tid(bar, "citeqa-feedback-form")).to_be_hidden()

    down.click()
    expect(down).to_have_attribute("aria-expanded", "true")
    expect(tid(bar, "citeqa-feedback-form")).to_be_visible()
    assert shadow_focus(page) == "citeqa-feedback-comment"
    tid(bar, "citeqa-feedback-comment").fill(comment)
    tid(bar, "citeqa-feedback-send").click()
    thanks = tid(message, "citeqa-feedback-thanks")
    expect(thanks).to_be_visible()
    expect(thanks).to_have_text("Thanks for the feedback.")
    expect(tid(message, "citeqa-thumbs-down")).to_have_count(0)  # rated once: the buttons are gone
    answer_text = tid(message, "citeqa-answer-text").inner_text()
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "widget-feedback.png"))

    out = tmp_path / "drafts.jsonl"
    monkeypatch.setenv("CITEQA_FEEDBACK_DB", _feedback_db(server))
    assert cli_main(["feedback", "export", "--out", str(out)]) == 0
    drafts = [json.loads(line) for line in out.read_text().splitlines()]
    [draft] = [d for d in drafts if d["feedback"]["comment"] == comment]
    assert draft["question"] == DOG
    assert draft["reference"] == "TODO" and draft["answerable"] is None
    assert draft["feedback"]["rating"] == "down"
    assert draft["feedback"]["model"] == "fake/extractive"
    assert draft["feedback"]["citations"] and draft["feedback"]["request_id"]
    assert "[1]" in draft["feedback"]["answer"]  # the answer as the service gave it, markers and all
    assert squash(re.sub(r"\[(\d+)\]", r"\1", draft["feedback"]["answer"])) == squash(answer_text)  # chips show n


def test_thumbs_up_from_an_embedding_page_uses_the_widget_token(
    page: Page, embedded: tuple[LiveServer, HostPage]
) -> None:
    from service.feedback.store import FeedbackStore

    api, host = embedded
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if r.url.endswith("/feedback") and r.method == "POST" else None)
    page.goto(host.url + "/")
    open_widget(page)
    message = ask(page, FIFA, state="refused")
    tid(message, "citeqa-thumbs-up").click()
    expect(tid(message, "citeqa-feedback-thanks")).to_be_visible()
    assert sent and sent[-1].get("authorization", "").startswith("Bearer ")
    assert API_KEY not in sent[-1]["authorization"]
    stored = FeedbackStore(_feedback_db(api)).records(rating="up")
    assert [(r.question, r.refused) for r in stored] == [(FIFA, True)]
