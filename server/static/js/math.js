// Math in answers ($…$, $$…$$, \(…\), \[…\]) set by KaTeX as MathML: the browser lays it out
// itself, so it needs no inline styles (which the page's CSP forbids) and no fonts.

const BLOCK = /^(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n|$)/;
// `$5 and $6` is money, not math: no space just inside the dollars, no digit right after.
const INLINE = /^(?:\$(?![\s$])((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)|\\\((.+?)\\\))/;

export function mathExtension(katex) {
  const render = (tex, displayMode) =>
    katex.renderToString(tex, { output: "mathml", throwOnError: false, displayMode });
  return {
    extensions: [
      {
        name: "blockMath",
        level: "block",
        start: (src) => src.match(/\$\$|\\\[/)?.index,
        tokenizer(src) {
          const match = BLOCK.exec(src);
          if (match) return { type: "blockMath", raw: match[0], text: (match[1] ?? match[2]).trim() };
          return undefined;
        },
        renderer: (token) => `<p class="math-block">${render(token.text, true)}</p>`,
      },
      {
        name: "inlineMath",
        level: "inline",
        start: (src) => src.match(/\$|\\\(/)?.index,
        tokenizer(src) {
          const match = INLINE.exec(src);
          if (match) return { type: "inlineMath", raw: match[0], text: match[1] ?? match[2] };
          return undefined;
        },
        renderer: (token) => render(token.text, false),
      },
    ],
  };
}
