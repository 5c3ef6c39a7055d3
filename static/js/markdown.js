// Model output as safe HTML: marked parses it, DOMPurify sanitizes it, highlight.js colours code.
// The libraries come from /vendor/ (npm); when they are missing, answers show as plain text.

async function loadLibraries() {
  const [marked, purify, highlight] = await Promise.allSettled([
    import("/vendor/marked.js"),
    import("/vendor/purify.js"),
    import("/vendor/highlight.js"),
  ]);
  // Markdown without a sanitizer would let model output write HTML: both or neither.
  if (marked.status !== "fulfilled" || purify.status !== "fulfilled") return null;
  const sanitizer = purify.value.default;
  sanitizer.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  return {
    parser: new marked.value.Marked({ gfm: true }),
    sanitizer,
    highlighter: highlight.status === "fulfilled" ? highlight.value.default : null,
  };
}

const libraries = await loadLibraries();

function addCodeTools(code, highlighter) {
  if (highlighter) highlighter.highlightElement(code);
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  code.parentElement.prepend(copy);
}

// Fills `element` with `text` rendered; returns nothing, so no unsanitized HTML ever leaves here.
export function renderMarkdown(element, text) {
  element.classList.toggle("plain", !libraries);
  if (!libraries) {
    element.textContent = text;
    return;
  }
  const { parser, sanitizer, highlighter } = libraries;
  const fragment = sanitizer.sanitize(parser.parse(text), { RETURN_DOM_FRAGMENT: true });
  for (const code of fragment.querySelectorAll("pre > code")) addCodeTools(code, highlighter);
  element.replaceChildren(fragment);
}
