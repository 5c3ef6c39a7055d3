// Model output as safe HTML: marked parses it, DOMPurify sanitizes it, highlight.js colours code
// and KaTeX sets math. The libraries come from /vendor/ (npm); without marked or DOMPurify
// answers show as plain text, without the others they still render.

import { mathExtension } from "./math.js";

async function loadLibraries() {
  const [marked, purify, highlight, katex] = await Promise.allSettled([
    import("/vendor/marked.js"),
    import("/vendor/purify.js"),
    import("/vendor/highlight.js"),
    import("/vendor/katex.js"),
  ]);
  // Markdown without a sanitizer would let model output write HTML: both or neither.
  if (marked.status !== "fulfilled" || purify.status !== "fulfilled") return null;
  const sanitizer = purify.value.default;
  // Model output draws no form field: a task list's checkbox is the only input, read-only.
  sanitizer.addHook("uponSanitizeElement", (node, data) => {
    if (data.tagName !== "input") return;
    if (node.getAttribute("type") === "checkbox") node.setAttribute("disabled", "");
    else node.remove();
  });
  sanitizer.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  // `breaks`: a single line break is one, as models mean it (poems, addresses, short lists).
  const parser = new marked.value.Marked({ gfm: true, breaks: true });
  if (katex.status === "fulfilled") parser.use(mathExtension(katex.value.default));
  return {
    parser,
    sanitizer,
    highlighter: highlight.status === "fulfilled" ? highlight.value.default : null,
  };
}

const libraries = await loadLibraries();

// Output must never reach the page's own controls: no id or name (DOM clobbering), no forms.
const SANITIZE = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_ATTR: ["id", "name", "form", "style"],
  FORBID_TAGS: ["form", "style", "button", "textarea", "select"],
};

function languageOf(code) {
  const match = /(?:^|\s)language-(\S+)/.exec(code.className);
  return match ? match[1] : "";
}

// A code block gets a head with its language and a Copy button, above the code, not over it.
// Highlighting only for a named language that highlight.js knows: no guessing.
function dressCode(code, highlight) {
  const pre = code.parentElement;
  const language = languageOf(code);
  const { highlighter } = libraries;
  if (highlight && highlighter && language && highlighter.getLanguage(language)) {
    highlighter.highlightElement(code);
  }
  const block = document.createElement("div");
  block.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.textContent = language || "text";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  head.append(label, copy);
  pre.replaceWith(block);
  block.append(head, pre);
  reachable(pre, `Code: ${language || "text"}`, "group");
}

// A block that may scroll sideways (code, a wide table, displayed math) takes the keyboard
// focus, so arrow keys can scroll it, and says what it is.
function reachable(node, label, role) {
  node.tabIndex = 0;
  if (role) node.setAttribute("role", role);
  node.setAttribute("aria-label", label);
}

// External images cannot load under the page's CSP: show a link to them instead of a broken icon.
function linkImages(fragment) {
  for (const image of fragment.querySelectorAll("img")) {
    const src = image.getAttribute("src") ?? "";
    if (src.startsWith("data:image/")) continue;
    const link = document.createElement("a");
    link.className = "image-link";
    link.textContent = `Image: ${image.getAttribute("alt") || src}`;
    if (/^https?:/i.test(src)) {
      link.href = src;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    }
    image.replaceWith(link);
  }
}

function toFragment(html, highlight) {
  const fragment = libraries.sanitizer.sanitize(html, SANITIZE);
  for (const code of fragment.querySelectorAll("pre > code")) dressCode(code, highlight);
  // A task list's checkboxes (read-only) say what they mean.
  for (const box of fragment.querySelectorAll("input[type=checkbox]")) {
    box.setAttribute("aria-label", box.checked ? "Done" : "Not done");
    box.closest("li")?.classList.add("task");
  }
  for (const table of fragment.querySelectorAll("table")) reachable(table, "Table");
  for (const math of fragment.querySelectorAll(".math-block")) reachable(math, "Math", "group");
  linkImages(fragment);
  return fragment;
}

export const hasMarkdown = libraries !== null;

// Fills `element` with `text` rendered; returns nothing, so no unsanitized HTML ever leaves here.
export function renderMarkdown(element, text) {
  element.classList.toggle("plain", !libraries);
  if (!libraries) {
    element.textContent = text;
    return;
  }
  element.replaceChildren(toFragment(libraries.parser.parse(text), true));
}

// A streaming answer rendered block by block: blocks that are complete are rendered once and
// never touched again; only the last, unfinished block is re-rendered on each update. So the
// cost of an update follows the last block, not the whole answer, and selections survive.
export class MarkdownStream {
  constructor(element) {
    this.element = element;
    this.done = 0; // characters of the text already rendered as complete blocks
    this.live = []; // the nodes of the unfinished block
    this.plain = null;
    element.classList.toggle("plain", !libraries);
  }

  update(text, final = false) {
    if (!libraries) {
      this.updatePlain(text);
      return;
    }
    const tail = text.slice(this.done).replace(/\r\n?/g, "\n");
    const tokens = libraries.parser.lexer(tail);
    let liveFrom = tokens.length;
    if (!final) {
      liveFrom = tokens.findLastIndex((token) => token.type !== "space");
      if (liveFrom < 0) liveFrom = 0;
    }
    const start = liveFrom < tokens.length ? tail.lastIndexOf(tokens[liveFrom].raw) : tail.length;
    for (const node of this.live) node.remove();
    this.live = [];
    if (liveFrom > 0 && start > 0) {
      this.append(tokens.slice(0, liveFrom), true);
      this.done += start;
    }
    const rest = start > 0 || liveFrom === 0 ? tokens.slice(liveFrom) : tokens;
    if (rest.length) this.live = this.append(rest, final);
  }

  append(tokens, highlight) {
    const fragment = toFragment(libraries.parser.parser(tokens), highlight);
    const nodes = [...fragment.childNodes];
    this.element.append(fragment);
    return nodes;
  }

  // Without the libraries: one text node that only ever grows.
  updatePlain(text) {
    if (!this.plain) {
      this.plain = document.createTextNode("");
      this.element.replaceChildren(this.plain);
    }
    const shown = this.plain.length;
    if (text.length >= shown && text.startsWith(this.plain.data)) {
      this.plain.appendData(text.slice(shown));
    } else {
      this.plain.data = text;
    }
  }
}
