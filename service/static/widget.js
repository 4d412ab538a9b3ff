/*! citeqa chat widget — self-contained, no dependencies, no build step.
 *
 * Embed on any page:
 *   <script src="https://citeqa.example/widget.js" data-api="https://citeqa.example"></script>
 * data-api is the citeqa base URL; empty or absent means the origin the script was loaded from.
 *
 * The widget lives in a Shadow DOM root, so page styles and widget styles do not touch each other.
 * It never carries an API key: before asking it gets a short-lived, origin-bound token from
 * POST {api}/widget/token (when the service has API keys off, the token is empty and no header is sent).
 * Answers stream from POST {api}/ask/stream (server-sent events read with fetch), then are replaced
 * by the service's checked answer, whose [n] markers become citation buttons.
 * Under each answer, thumbs up / down (with an optional comment on a thumbs-down) POST {api}/feedback
 * with the same token; the thumbs-down become draft eval cases (`citeqa feedback export`).
 */
(() => {
  "use strict";

  if (window.__citeqaWidget) return; // loaded twice on one page: keep the first

  // ---------------------------------------------------------------- configuration
  const script =
    document.currentScript ||
    Array.from(document.querySelectorAll("script[src]"))
      .reverse()
      .find((s) => /\/widget\.js(?:[?#]|$)/.test(s.src));
  const scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  const apiAttr = script ? (script.getAttribute("data-api") || "").trim() : "";
  const API = (apiAttr ? new URL(apiAttr, location.href).href : scriptOrigin).replace(/\/+$/, "");

  const HISTORY_MESSAGES = 6; // the last three exchanges go along with a follow-up
  const MAX_TURN_CHARS = 8000; // the service's limit per history turn
  const MAX_QUESTION_CHARS = 2000;
  const MAX_COMMENT_CHARS = 2000; // the service's limit for a feedback comment
  const IDLE_TIMEOUT_MS = 120000; // no byte from the stream for this long: give up
  const TOKEN_RETRY_MS = 60000; // after a refused token request, ask again after this long
  const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;

  // ---------------------------------------------------------------- small DOM helpers
  const SVG_NS = "http://www.w3.org/2000/svg";

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
    return el;
  }

  function icon(d) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  }

  const ICONS = {
    chat: "M4 5.5A1.5 1.5 0 0 1 5.5 4h13A1.5 1.5 0 0 1 20 5.5v9a1.5 1.5 0 0 1-1.5 1.5H9l-5 4z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M5 12h13M13 6l6 6-6 6",
    plus: "M12 5v14M5 12h14",
    doc: "M7 3h7l4 4v14H7zM14 3v4h4",
    up: "M7 11v10H4V11zM7 11l4-8a2.5 2.5 0 0 1 3 2.5V9h5.2a2 2 0 0 1 2 2.3l-1.3 7.8a2 2 0 0 1-2 1.9H7",
    down: "M17 13V3h3v10zM17 13l-4 8a2.5 2.5 0 0 1-3-2.5V15H4.8a2 2 0 0 1-2-2.3l1.3-7.8a2 2 0 0 1 2-1.9H17",
  };

  const fileName = (source) => String(source || "").split(/[\\/]/).pop() || String(source || "");
  const lineRange = (c) =>
    c.start_line === c.end_line ? `line ${c.start_line}` : `lines ${c.start_line}\u2013${c.end_line}`;
  const stripMarkers = (text) => String(text || "").replace(/\s*\[\d+(?:\s*[,;]\s*\d+)*\]/g, "");

  // ---------------------------------------------------------------- styles
  const CSS = `
:host { all: initial; }
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.root {
  --accent: #2450d6; --accent-dark: #1b3ea8; --ink: #1d2230; --muted: #5b6375; --line: #dfe3ec;
  --bg: #ffffff; --soft: #f4f6fb; --focus: #f59e0b;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); -webkit-font-smoothing: antialiased; text-align: left; letter-spacing: normal;
}
svg { width: 20px; height: 20px; fill: none; stroke: currentColor; stroke-width: 2;
  stroke-linecap: round; stroke-linejoin: round; flex: none; }
button { font: inherit; color: inherit; cursor: pointer; }
button:focus-visible, textarea:focus-visible, .passage:focus-visible, .panel:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px;
}
.sr-only { position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  display: inline-flex; align-items: center; gap: 8px; height: 52px; padding: 0 20px 0 16px;
  border: 0; border-radius: 26px; background: var(--accent); color: #fff; font-weight: 600; font-size: 15px;
  box-shadow: 0 6px 20px rgba(20, 30, 70, .28);
}
.launcher:hover { background: var(--accent-dark); }

.panel {
  position: fixed; right: 20px; bottom: 84px; z-index: 2147483001;
  width: min(400px, calc(100vw - 40px)); height: min(620px, calc(100vh - 108px));
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--bg); border: 1px solid var(--line); border-radius: 14px;
  box-shadow: 0 18px 50px rgba(20, 30, 70, .28);
}
.head { display: flex; align-items: center; gap: 8px; padding: 12px 10px 12px 16px;
  background: var(--accent); color: #fff; }
.head h2 { margin: 0; font-size: 16px; font-weight: 650; line-height: 1.2; }
.head p { margin: 2px 0 0; font-size: 12px; opacity: .9; }
.head .titles { flex: 1; min-width: 0; }
.icon-btn { display: inline-flex; align-items: center; justify-content: center; width: 36px; height: 36px;
  border: 0; border-radius: 8px; background: transparent; color: inherit; padding: 0; }
.icon-btn:hover { background: rgba(255, 255, 255, .16); }

.log { flex: 1 1 auto; overflow-y: auto; padding: 14px 14px 6px; background: var(--soft);
  overscroll-behavior: contain; }
.intro { margin: 4px 2px 12px; color: var(--muted); font-size: 13px; }
.msg { display: flex; flex-direction: column; margin: 0 0 12px; }
.msg.user { align-items: flex-end; }
.msg.assistant { align-items: flex-start; }
.bubble { max-width: 88%; padding: 9px 12px; border-radius: 14px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.user .bubble { background: var(--accent); color: #fff; border-bottom-right-radius: 4px; }
.assistant .bubble { background: var(--bg); border: 1px solid var(--line); border-bottom-left-radius: 4px; }
.assistant[data-state="streaming"] .text::after { content: "\\258D"; color: var(--accent);
  animation: blink 1s steps(2, start) infinite; }
@keyframes blink { to { visibility: hidden; } }
.searched { margin: 0 0 4px 2px; font-size: 12px; color: var(--muted); max-width: 88%; }
.searched b { font-weight: 600; }
.dots { display: inline-flex; gap: 4px; padding: 4px 0; }
.dots i { width: 7px; height: 7px; border-radius: 50%; background: #9aa3b5; animation: bounce 1.2s infinite; }
.dots i:nth-child(2) { animation-delay: .15s; } .dots i:nth-child(3) { animation-delay: .3s; }
@keyframes bounce { 0%, 60%, 100% { transform: none; opacity: .5; } 30% { transform: translateY(-4px); opacity: 1; } }

.chip { display: inline-flex; align-items: center; justify-content: center; min-width: 22px; height: 20px;
  margin: 0 2px; padding: 0 6px; vertical-align: 1px; border: 1px solid #b9c6ef; border-radius: 10px;
  background: #e8eefc; color: var(--accent-dark); font-size: 12px; font-weight: 700; line-height: 1; }
.chip:hover, .chip[aria-expanded="true"] { background: var(--accent); border-color: var(--accent); color: #fff; }

.refusal { border-left: 4px solid #d89614; background: #fff8e8; color: #5c3d00; border-radius: 10px;
  padding: 9px 12px; max-width: 88%; }
.refusal strong, .error strong { display: block; font-weight: 650; margin-bottom: 2px; }
.refusal p, .error p { margin: 2px 0 0; }
.refusal .hint { font-size: 12px; color: #7a5a1a; }
.error { border-left: 4px solid #cf3b3b; background: #fdeeee; color: #6e1717; border-radius: 10px;
  padding: 9px 12px; max-width: 88%; }
.error .ref { font-size: 11px; color: #8d4b4b; }
.retry { margin-top: 8px; border: 1px solid #cf3b3b; background: #fff; color: #8a1c1c; border-radius: 8px;
  padding: 5px 12px; font-weight: 600; }
.retry:hover { background: #cf3b3b; color: #fff; }

.passage { flex: 0 0 auto; max-height: 45%; overflow-y: auto; border-top: 1px solid var(--line);
  background: var(--bg); padding: 10px 14px 12px; box-shadow: 0 -6px 16px rgba(20, 30, 70, .08); }
.passage-head { display: flex; align-items: center; gap: 8px; }
.passage-head h3 { flex: 1; margin: 0; font-size: 13px; font-weight: 650; color: var(--muted);
  text-transform: uppercase; letter-spacing: .04em; }
.passage-head .icon-btn { width: 32px; height: 32px; color: var(--muted); }
.passage-head .icon-btn:hover { background: var(--soft); }
.meta { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 10px; margin: 4px 0 8px; font-size: 13px; }
.meta .file { display: inline-flex; align-items: center; gap: 4px; font-weight: 600; overflow-wrap: anywhere; }
.meta .file svg { width: 16px; height: 16px; color: var(--accent); }
.meta .lines { color: var(--muted); }
.quote { margin: 0; padding: 8px 12px; border-left: 3px solid var(--accent); background: var(--soft);
  border-radius: 0 8px 8px 0; white-space: pre-wrap; overflow-wrap: anywhere; }

.composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px; border-top: 1px solid var(--line);
  background: var(--bg); }
.composer textarea { flex: 1; min-width: 0; resize: none; max-height: 120px; min-height: 40px; margin: 0;
  padding: 9px 12px; border: 1px solid #c5cbd8; border-radius: 10px; font: inherit; color: var(--ink);
  background: #fff; line-height: 1.4; }
.composer textarea::placeholder { color: #7b8396; }
.send { display: inline-flex; align-items: center; justify-content: center; width: 40px; height: 40px;
  border: 0; border-radius: 10px; background: var(--accent); color: #fff; padding: 0; flex: none; }
.send:hover { background: var(--accent-dark); }
.send[aria-disabled="true"] { background: #9aa6c8; cursor: progress; }
.foot { margin: 0; padding: 0 12px 8px; font-size: 11px; color: var(--muted); background: var(--bg); }

.feedback { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; margin: 4px 0 0 2px; max-width: 88%;
  font-size: 12px; color: var(--muted); }
.rate { display: inline-flex; align-items: center; justify-content: center; width: 30px; height: 30px; padding: 0;
  border: 1px solid transparent; border-radius: 8px; background: transparent; color: var(--muted); }
.rate svg { width: 16px; height: 16px; }
.rate:hover, .rate[aria-pressed="true"] { background: #e8eefc; border-color: #b9c6ef; color: var(--accent-dark); }
.rate[disabled], .fb-send[disabled] { opacity: .6; cursor: progress; }
.fb-box { display: flex; flex-direction: column; gap: 6px; width: 100%; margin-top: 2px; }
.fb-box textarea { width: 100%; min-height: 54px; resize: vertical; margin: 0; padding: 6px 9px; font: inherit;
  font-size: 13px; color: var(--ink); background: #fff; border: 1px solid #c5cbd8; border-radius: 8px; }
.fb-send { align-self: flex-start; border: 1px solid var(--accent); background: var(--accent); color: #fff;
  border-radius: 8px; padding: 4px 12px; font-size: 13px; font-weight: 600; }
.fb-send:hover { background: var(--accent-dark); }
.fb-status:empty { display: none; }
.fb-status.bad { color: #8a1c1c; }

@media (max-width: 480px) {
  .panel { inset: 0; right: 0; bottom: 0; width: 100%; height: 100%; max-height: none; border: 0;
    border-radius: 0; }
  .root.open .launcher { display: none; }
  .bubble, .refusal, .error { max-width: 94%; }
  .composer textarea { font-size: 16px; } /* no zoom-on-focus on phones */
}
@media (hover: none) and (pointer: coarse) { .foot { display: none; } } /* no keyboard hints on touch */
@media (prefers-reduced-motion: reduce) {
  .dots i, .assistant[data-state="streaming"] .text::after { animation: none; }
}
`;

  // ---------------------------------------------------------------- widget tokens
  let tokenCache = null; // {value: string|null, until: epoch ms}
  let tokenPending = null;

  async function fetchToken() {
    const now = Date.now();
    try {
      const res = await fetch(API + "/widget/token", {
        method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      });
      if (res.ok) {
        const body = await res.json();
        const ttl = Math.max(0, Number(body.expires_in) || 0) * 1000;
        if (typeof body.token === "string" && body.token && ttl > 0) {
          // Renew shortly before expiry: 30 s early, or a fifth of the lifetime for short ones.
          return { value: body.token, until: now + ttl - Math.min(30000, ttl / 5) };
        }
        return { value: null, until: now + 5 * 60000 }; // API keys are off: no header needed
      }
      if (res.status === 401) return { value: null, until: now + TOKEN_RETRY_MS }; // ask without one
      return { value: null, until: now }; // other failures: try without, ask again next time
    } catch (_) {
      return { value: null, until: now }; // unreachable: the question itself will report it
    }
  }

  async function getToken(force) {
    if (!force && tokenCache && Date.now() < tokenCache.until) return tokenCache.value;
    if (!tokenPending) {
      tokenPending = fetchToken().then((t) => { tokenCache = t; tokenPending = null; return t; });
    }
    return (await tokenPending).value;
  }

  // ---------------------------------------------------------------- errors
  class WidgetError extends Error {
    constructor(message, code, requestId) {
      super(message);
      this.code = code || "error";
      this.requestId = requestId || null;
    }
  }

  function friendly(code, message, retryAfter) {
    switch (code) {
      case "unauthorized": return "This page is not allowed to ask citeqa questions.";
      case "rate_limited":
        return `Too many questions at once. Try again${retryAfter ? ` in ${retryAfter} s` : " shortly"}.`;
      case "not_ready": return "The service is still starting up. Try again in a moment.";
      case "overloaded": return "The service is busy. Try again in a moment.";
      case "llm_timeout": return "The model took too long to answer.";
      case "llm_unavailable":
      case "llm_bad_response": return "The language model is not available right now.";
      case "invalid_request":
      case "payload_too_large": return message || "The service could not accept this question.";
      case "feedback_unavailable": return "Feedback cannot be saved right now. Try again later.";
      case "network": return "Could not reach the service. Check your connection and try again.";
      case "timeout": return "The service stopped responding.";
      case "incomplete": return "The answer stopped before it was complete.";
      default: return message || "Something went wrong.";
    }
  }

  async function httpError(res) {
    let code = `http_${res.status}`, message = "", requestId = res.headers.get("x-request-id");
    try {
      const body = await res.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || "";
        requestId = body.error.request_id || requestId;
      }
    } catch (_) { /* not JSON */ }
    return new WidgetError(friendly(code, message || `HTTP ${res.status}`, res.headers.get("retry-after")),
      code, requestId);
  }

  // ---------------------------------------------------------------- SSE over fetch
  /** Reads `event:`/`data:` blocks from a fetch body. Calls onToken(text) per token event and
   *  resolves with the `done` payload; rejects on an `error` event or a stream that just ends. */
  async function readEvents(res, onToken, armIdle) {
    if (!res.body) throw new WidgetError("This browser cannot read streamed answers.", "unsupported");
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let result = null;

    const handle = (block) => {
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (!data.length) return;
      let payload;
      try { payload = JSON.parse(data.join("\n")); } catch (_) { return; }
      if (event === "token") onToken(String((payload && payload.text) || ""));
      else if (event === "done") result = payload;
      else if (event === "error") {
        const err = (payload && payload.error) || {};
        throw new WidgetError(friendly(err.code, err.message), err.code, err.request_id);
      }
    };

    try {
      for (;;) {
        armIdle();
        const { value, done } = await reader.read();
        if (done) break;
        // Normalise line ends; a lone \r at the very end may be half of a \r\n split across chunks.
        buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n|\r(?!$)/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          handle(block);
          if (result) return result;
        }
      }
      buffer = (buffer + decoder.decode()).replace(/\r\n?/g, "\n");
      if (buffer.trim()) handle(buffer);
      if (result) return result;
      throw new WidgetError(friendly("incomplete"), "incomplete");
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- build the UI
  const host = document.createElement("citeqa-widget");
  host.style.setProperty("all", "initial", "important");
  const shadow = host.attachShadow({ mode: "open" });
  try {
    const sheet = new CSSStyleSheet(); // constructable sheets are not blocked by a page's style-src CSP
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } catch (_) {
    shadow.append(h("style", { text: CSS }));
  }

  const launcher = h("button", {
    type: "button", class: "launcher", "data-testid": "citeqa-launcher",
    "aria-label": "Ask the documents (opens chat)", "aria-expanded": "false", "aria-controls": "cq-panel",
  }, icon(ICONS.chat), h("span", { "aria-hidden": "true", text: "Ask" }));

  const closeBtn = h("button", {
    type: "button", class: "icon-btn", "data-testid": "citeqa-close", "aria-label": "Close chat", title: "Close",
  }, icon(ICONS.close));
  const resetBtn = h("button", {
    type: "button", class: "icon-btn", "data-testid": "citeqa-reset", "aria-label": "Start a new conversation",
    title: "New conversation",
  }, icon(ICONS.plus));

  const log = h("div", {
    class: "log", "data-testid": "citeqa-messages", role: "region", "aria-label": "Conversation", tabindex: "-1",
  }, h("p", { class: "intro", text: "Ask a question about the documents. Every answer cites the passages it comes from; select a number to read the source." }));

  // Polite announcements of finished answers (the streaming text itself is not announced piece by piece).
  const live = h("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true", "data-testid": "citeqa-live" });

  const passageTitle = h("h3", { id: "cq-passage-title", text: "Source" });
  const passageSource = h("span", { "data-testid": "citeqa-passage-source" });
  const passageLines = h("span", { class: "lines", "data-testid": "citeqa-passage-lines" });
  const passageText = h("blockquote", { class: "quote", "data-testid": "citeqa-passage-text" });
  const passageClose = h("button", {
    type: "button", class: "icon-btn", "data-testid": "citeqa-passage-close", "aria-label": "Close source",
    title: "Close source",
  }, icon(ICONS.close));
  const passage = h("section", {
    class: "passage", id: "cq-passage", "data-testid": "citeqa-passage", role: "region",
    "aria-labelledby": "cq-passage-title", tabindex: "-1", hidden: true,
  },
  h("div", { class: "passage-head" }, passageTitle, passageClose),
  h("p", { class: "meta" }, h("span", { class: "file" }, icon(ICONS.doc), passageSource), passageLines),
  passageText);

  const input = h("textarea", {
    id: "cq-input", rows: "1", maxlength: String(MAX_QUESTION_CHARS), placeholder: "Ask a question…",
    "data-testid": "citeqa-input", autocomplete: "off", "aria-describedby": "cq-hint",
  });
  const sendBtn = h("button", {
    type: "submit", class: "send", "data-testid": "citeqa-send", "aria-label": "Send question", title: "Send",
  }, icon(ICONS.send));
  const form = h("form", { class: "composer", "data-testid": "citeqa-form" },
    h("label", { class: "sr-only", for: "cq-input", text: "Your question" }), input, sendBtn);

  const panel = h("div", {
    class: "panel", id: "cq-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "cq-title",
    "data-testid": "citeqa-panel", hidden: true,
  },
  h("div", { class: "head" },
    h("div", { class: "titles" }, h("h2", { id: "cq-title", text: "Ask the documents" }),
      h("p", { text: "Answers with sources, powered by citeqa" })),
    resetBtn, closeBtn),
  log, passage, form,
  h("p", { class: "foot", id: "cq-hint", text: "Enter to send, Shift+Enter for a new line, Esc to close." }),
  live);

  const root = h("div", { class: "root" }, launcher, panel);
  shadow.append(root);

  // ---------------------------------------------------------------- state
  const conversation = []; // completed turns, [{role, content}]
  let busy = false;
  let current = null; // {controller, turn}
  let openChip = null;

  function setBusy(value) {
    busy = value;
    sendBtn.setAttribute("aria-disabled", value ? "true" : "false");
    sendBtn.setAttribute("aria-label", value ? "Answering…" : "Send question");
  }
  setBusy(false);

  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 60; }
  function scrollDown(force) { if (force || nearBottom()) log.scrollTop = log.scrollHeight; }

  function announce(text) {
    live.textContent = "";
    // A fresh text node after a tick makes screen readers read it even when it repeats.
    setTimeout(() => { live.textContent = text; }, 50);
  }

  // ---------------------------------------------------------------- open / close
  function isOpen() { return !panel.hidden; }

  function open() {
    if (isOpen()) { input.focus(); return; }
    panel.hidden = false;
    root.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close the documents chat");
    scrollDown(true);
    input.focus();
  }

  function close() {
    if (!isOpen()) return;
    closePassage(false);
    panel.hidden = true;
    root.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Ask the documents (opens chat)");
    launcher.focus();
  }

  launcher.addEventListener("click", () => (isOpen() ? close() : open()));
  closeBtn.addEventListener("click", close);
  root.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || e.isComposing) return;
    if (!passage.hidden) { e.preventDefault(); closePassage(true); return; }
    if (isOpen()) { e.preventDefault(); e.stopPropagation(); close(); }
  });

  // ---------------------------------------------------------------- passage viewer
  /** Where the passage sits: a PDF's page ("manual.pdf, page 3"), else the heading path that says
   *  where in a long page it is ("createdb › Options"), else just the file. */
  function placeOf(citation) {
    if (citation.page != null) return `${citation.source}, page ${citation.page}`;
    return citation.heading ? `${citation.source} › ${citation.heading}` : citation.source;
  }

  function openPassage(chip, citation) {
    if (openChip === chip && !passage.hidden) { closePassage(true); return; }
    if (openChip) openChip.setAttribute("aria-expanded", "false");
    openChip = chip;
    chip.setAttribute("aria-expanded", "true");
    passageTitle.textContent = `Source [${citation.id}]`;
    const where = placeOf(citation);
    passageSource.textContent = where;
    passageSource.title = citation.anchor ? `${where} (#${citation.anchor})` : where;
    passageLines.textContent = lineRange(citation);
    passageText.textContent = citation.text;
    passage.hidden = false;
    passage.scrollTop = 0;
    passage.focus();
  }

  function closePassage(returnFocus) {
    if (passage.hidden) return;
    passage.hidden = true;
    const chip = openChip;
    openChip = null;
    if (chip) {
      chip.setAttribute("aria-expanded", "false");
      if (returnFocus && chip.isConnected) chip.focus();
    }
  }
  passageClose.addEventListener("click", () => closePassage(true));

  function chipFor(citation) {
    const chip = h("button", {
      type: "button", class: "chip", "data-testid": "citeqa-citation", "data-citation-id": String(citation.id),
      "aria-label": `Source ${citation.id}: ${fileName(citation.source)}${citation.page != null ? `, page ${citation.page}` : ""}, ${lineRange(citation)}`,
      "aria-expanded": "false", "aria-controls": "cq-passage",
      title: `${placeOf(citation)}, ${lineRange(citation)}`,
      text: String(citation.id),
    });
    chip.addEventListener("click", () => openPassage(chip, citation));
    return chip;
  }

  /** The answer text with each [n] marker turned into a chip for citation n (markers pointing
   *  nowhere are dropped). Citations the text never marks get chips at the end. */
  function renderAnswer(target, answer, citations) {
    target.textContent = "";
    const byId = new Map((citations || []).map((c) => [Number(c.id), c]));
    const used = new Set();
    let last = 0;
    MARKER.lastIndex = 0;
    for (let m; (m = MARKER.exec(answer));) {
      target.append(answer.slice(last, m.index));
      for (const n of m[1].split(/\s*[,;]\s*/)) {
        const citation = byId.get(Number(n));
        if (citation) { target.append(chipFor(citation)); used.add(citation.id); }
      }
      last = MARKER.lastIndex;
    }
    target.append(answer.slice(last));
    for (const citation of byId.values()) {
      if (!used.has(citation.id)) target.append(" ", chipFor(citation));
    }
  }

  // ---------------------------------------------------------------- messages
  function addUser(question) {
    const el = h("div", { class: "msg user", "data-testid": "citeqa-message", "data-role": "user" },
      h("div", { class: "bubble" }, h("span", { class: "sr-only", text: "You: " }), question));
    log.append(el);
    scrollDown(true);
  }

  function addAssistant() {
    const searched = h("p", { class: "searched", "data-testid": "citeqa-rewritten", hidden: true });
    const bubble = h("div", { class: "bubble" });
    const el = h("div", {
      class: "msg assistant", "data-testid": "citeqa-message", "data-role": "assistant", "data-state": "pending",
    }, searched, bubble);
    log.append(el);
    scrollDown(true);
    return { el, searched, bubble, text: null };
  }

  function showPending(view) {
    view.el.dataset.state = "pending";
    view.searched.hidden = true;
    view.bubble.hidden = false;
    view.bubble.setAttribute("aria-busy", "true");
    view.bubble.replaceChildren(h("span", { class: "sr-only", text: "Answering…" }),
      h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")));
    view.text = null;
    for (const extra of view.el.querySelectorAll(".refusal, .error, .feedback")) extra.remove();
  }

  function showPartial(view, raw) {
    const stick = nearBottom();
    if (!view.text) {
      view.text = h("div", { class: "text", "data-testid": "citeqa-answer-text" });
      view.bubble.replaceChildren(h("span", { class: "sr-only", text: "citeqa: " }), view.text);
      view.el.dataset.state = "streaming";
    }
    view.text.textContent = raw;
    if (stick) scrollDown(true);
  }

  function showSearched(view, rewritten) {
    if (rewritten) {
      view.searched.replaceChildren(h("b", { text: "Searched for: " }), rewritten);
      view.searched.hidden = false;
    } else {
      view.searched.hidden = true;
    }
  }

  function showDone(view, result) {
    const stick = nearBottom();
    const answer = String(result.answer || "");
    const citations = Array.isArray(result.citations) ? result.citations : [];
    showSearched(view, result.rewritten_question);
    view.bubble.removeAttribute("aria-busy");
    if (result.refused) {
      view.el.dataset.state = "refused";
      view.bubble.hidden = true;
      const text = h("p", { "data-testid": "citeqa-answer-text" });
      renderAnswer(text, answer, citations);
      view.el.append(h("div", { class: "refusal", "data-testid": "citeqa-refusal" },
        h("strong", { text: "The documents don\u2019t answer this" }), text,
        h("p", { class: "hint", text: "Try rephrasing, or ask about something the documents cover." })));
      announce(`The documents don't answer this. ${stripMarkers(answer)}`);
    } else {
      view.el.dataset.state = "done";
      view.text = h("div", { class: "text", "data-testid": "citeqa-answer-text" });
      renderAnswer(view.text, answer, citations);
      view.bubble.replaceChildren(h("span", { class: "sr-only", text: "citeqa: " }), view.text);
      const n = citations.length;
      announce(`Answer: ${stripMarkers(answer)}${n ? ` (${n} source${n === 1 ? "" : "s"})` : ""}`);
    }
    if (stick) scrollDown(true);
  }

  function showError(view, err, retry) {
    view.el.dataset.state = "error";
    view.bubble.hidden = true;
    view.bubble.removeAttribute("aria-busy");
    const retryBtn = h("button", {
      type: "button", class: "retry", "data-testid": "citeqa-retry", "aria-label": "Retry this question",
      text: "Retry",
    });
    retryBtn.addEventListener("click", () => {
      if (busy) return;
      input.focus(); // the button is about to go away; keep the keyboard user in the composer
      retry();
    });
    view.el.append(h("div", { class: "error", role: "alert", "data-testid": "citeqa-error" },
      h("strong", { text: "Could not answer" }), h("p", { text: err.message }),
      err.requestId ? h("p", { class: "ref", text: `Reference: ${err.requestId}` }) : null, retryBtn));
    scrollDown(true);
  }

  // ---------------------------------------------------------------- feedback
  /** POST /feedback with the widget's token (one fresh try on a 401, like asking). */
  async function postFeedback(body) {
    const attempt = (token) => {
      const headers = { "Content-Type": "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      return fetch(API + "/feedback", {
        method: "POST", mode: "cors", credentials: "omit", cache: "no-store", headers, body: JSON.stringify(body),
      });
    };
    let res;
    try {
      let token = await getToken(false);
      res = await attempt(token);
      if (res.status === 401 && token) { token = await getToken(true); res = await attempt(token); }
    } catch (_) {
      throw new WidgetError(friendly("network"), "network");
    }
    if (!res.ok) throw await httpError(res);
  }

  /** Thumbs up / down under an answer; a thumbs-down opens an optional comment box first. */
  function addFeedback(view, turn, result) {
    const bar = h("div", {
      class: "feedback", role: "group", "aria-label": "Rate this answer", "data-testid": "citeqa-feedback",
    });
    const up = h("button", {
      type: "button", class: "rate", "data-testid": "citeqa-thumbs-up", "aria-label": "Good answer",
      "aria-pressed": "false", title: "Good answer",
    }, icon(ICONS.up));
    const down = h("button", {
      type: "button", class: "rate", "data-testid": "citeqa-thumbs-down", "aria-label": "Bad answer",
      "aria-pressed": "false", "aria-expanded": "false", title: "Bad answer",
    }, icon(ICONS.down));
    const status = h("span", { class: "fb-status", role: "status", "data-testid": "citeqa-feedback-status" });
    const boxId = `cq-fb-${Math.random().toString(36).slice(2, 10)}`;
    const comment = h("textarea", {
      id: `${boxId}-text`, maxlength: String(MAX_COMMENT_CHARS), rows: "2",
      placeholder: "What was wrong? (optional)", "data-testid": "citeqa-feedback-comment",
    });
    const send = h("button", { type: "button", class: "fb-send", "data-testid": "citeqa-feedback-send", text: "Send" });
    const box = h("div", { class: "fb-box", id: boxId, "data-testid": "citeqa-feedback-form", hidden: true },
      h("label", { class: "sr-only", for: `${boxId}-text`, text: "What was wrong with this answer? (optional)" }),
      comment, send);
    down.setAttribute("aria-controls", boxId);
    bar.append(up, down, status, box);

    const setDisabled = (value) => { for (const b of [up, down, send]) b.disabled = value; };
    async function submit(rating, text) {
      setDisabled(true);
      status.classList.remove("bad");
      status.textContent = "Sending…";
      const body = {
        question: turn.question, answer: String(result.answer || ""),
        citations: Array.isArray(result.citations) ? result.citations : [], model: String(result.model || ""),
        rating, refused: Boolean(result.refused),
      };
      if (text) body.comment = text.slice(0, MAX_COMMENT_CHARS);
      if (turn.requestId) body.request_id = turn.requestId;
      try {
        await postFeedback(body);
      } catch (err) {
        status.classList.add("bad");
        status.textContent = err instanceof WidgetError ? err.message : friendly("network");
        setDisabled(false);
        return;
      }
      const thanks = h("span", {
        class: "fb-status", tabindex: "-1", "data-testid": "citeqa-feedback-thanks", text: "Thanks for the feedback.",
      });
      const hadFocus = shadow.activeElement && bar.contains(shadow.activeElement);
      bar.dataset.state = "sent";
      bar.replaceChildren(thanks);
      if (hadFocus) thanks.focus(); // the focused button is gone: keep keyboard users in place
      announce("Thanks for the feedback.");
    }

    up.addEventListener("click", () => { up.setAttribute("aria-pressed", "true"); submit("up", ""); });
    down.addEventListener("click", () => {
      const opening = box.hidden;
      box.hidden = !opening;
      down.setAttribute("aria-pressed", String(opening));
      down.setAttribute("aria-expanded", String(opening));
      if (opening) comment.focus();
    });
    send.addEventListener("click", () => submit("down", comment.value.trim()));
    comment.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send.click(); }
    });
    view.el.append(bar);
  }

  // ---------------------------------------------------------------- asking
  async function post(question, history, token, signal) {
    const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const body = { question };
    if (history.length) body.history = history;
    return fetch(API + "/ask/stream", {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store", headers,
      body: JSON.stringify(body), signal,
    });
  }

  async function run(turn) {
    const view = turn.view;
    setBusy(true);
    showPending(view);
    const controller = new AbortController();
    current = { controller, turn };
    let idle = null;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(new WidgetError(friendly("timeout"), "timeout")), IDLE_TIMEOUT_MS);
    };
    let raw = "";
    try {
      armIdle();
      let token = await getToken(false);
      let res = await post(turn.question, turn.history, token, controller.signal);
      if (res.status === 401 && token) { // the token expired or was revoked: one fresh try
        token = await getToken(true);
        res = await post(turn.question, turn.history, token, controller.signal);
      }
      if (!res.ok) throw await httpError(res);
      turn.requestId = res.headers.get("x-request-id"); // ties a later rating to this answer's log lines
      const result = await readEvents(res, (text) => { raw += text; showPartial(view, raw); }, armIdle);
      showDone(view, result);
      addFeedback(view, turn, result);
      conversation.push({ role: "user", content: turn.question.slice(0, MAX_TURN_CHARS) });
      const reply = String(result.answer || "").trim();
      if (reply) conversation.push({ role: "assistant", content: reply.slice(0, MAX_TURN_CHARS) });
    } catch (caught) {
      if (turn.cancelled) return;
      let err = caught;
      if (controller.signal.aborted && controller.signal.reason instanceof WidgetError) err = controller.signal.reason;
      if (!(err instanceof WidgetError)) err = new WidgetError(friendly("network"), "network");
      showError(view, err, () => run(turn));
    } finally {
      clearTimeout(idle);
      if (current && current.controller === controller) { current = null; setBusy(false); }
    }
  }

  function ask(question) {
    question = String(question || "").trim().slice(0, MAX_QUESTION_CHARS);
    if (!question || busy) return false;
    const history = conversation.slice(-HISTORY_MESSAGES).map((t) => ({ role: t.role, content: t.content }));
    addUser(question);
    const turn = { question, history, view: addAssistant(), cancelled: false };
    run(turn);
    return true;
  }

  function resizeInput() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    if (ask(input.value)) { input.value = ""; resizeInput(); }
    input.focus();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  input.addEventListener("input", resizeInput);

  resetBtn.addEventListener("click", () => {
    if (current) { current.turn.cancelled = true; current.controller.abort(); current = null; setBusy(false); }
    conversation.length = 0;
    closePassage(false);
    for (const m of log.querySelectorAll(".msg")) m.remove();
    announce("New conversation.");
    input.focus();
  });

  // ---------------------------------------------------------------- mount
  function mount() { (document.body || document.documentElement).append(host); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  window.__citeqaWidget = {
    api: API,
    open,
    close,
    ask: (question) => { open(); return ask(question); },
  };
})();
