"""The page's cost of a long streaming answer, measured in Debian's Chromium (issue 9, item 3).

A fake upstream streams a Markdown answer (paragraphs, lists, code, a table) of N words at a
steady pace through chatrelay to the real page; Chrome's own counters (CDP Performance
metrics) give the renderer main thread's busy time over the stream. Reported per word and as
a share of the stream's duration.

    .venv/bin/python -m bench.page_render                      # 1,200 / 6,000 / 20,000 words
    .venv/bin/python -m bench.page_render --words 1200 6000 --static /path/to/old/static

`--static DIR` serves the page's own files from another checkout (to measure the page before
a change against the same server and libraries).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import orjson
from aiohttp import web
from cryptography.fernet import Fernet
from playwright.async_api import CDPSession, Page, Route, async_playwright

from server.app import create_app
from server.config import Settings

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WORDS_PER_S = 500
BATCH_WORDS = 5  # upstream sends a few tokens per read, as real providers do under load


def markdown_words(count: int) -> list[str]:
    """An answer of `count` words as a model writes one: text, lists, code and tables."""
    blocks = [
        "## A heading for this part\n\n",
        "Some **bold** text and `inline code` in a paragraph that goes on for a while, "
        "with a [link](https://example.com) and *emphasis* here and there to parse.\n\n",
        "- a first item of the list\n- a second item with `code`\n- a third item\n\n",
        "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n```\n\n",
        "| name | value |\n| --- | --- |\n| alpha | 1 |\n| beta | 2 |\n\n",
        "> A quoted line that a model likes to add for no reason at all.\n\n",
    ]
    words: list[str] = []
    index = 0
    while len(words) < count:
        words += [w + " " for w in blocks[index % len(blocks)].split(" ")]
        index += 1
    return words[:count]


def upstream_app(words: list[str]) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        gap = BATCH_WORDS / WORDS_PER_S
        for start in range(0, len(words), BATCH_WORDS):
            batch = b"".join(
                b"data: "
                + orjson.dumps({"choices": [{"index": 0, "delta": {"content": w}}]})
                + b"\n\n"
                for w in words[start : start + BATCH_WORDS]
            )
            await response.write(batch)
            await asyncio.sleep(gap)
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + orjson.dumps(done) + b"\n\ndata: [DONE]\n\n")
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


COUNTERS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


async def counters(session: CDPSession) -> dict[str, float]:
    """Seconds the renderer's main thread has spent: in all (TaskDuration), in script, layout
    and style (Chrome's own counters)."""
    metrics = (await session.send("Performance.getMetrics"))["metrics"]
    return {m["name"]: float(m["value"]) for m in metrics if m["name"] in COUNTERS}


async def measure(words: int, static: Path | None) -> dict[str, float]:
    upstream, upstream_url = await serve(upstream_app(markdown_words(words)))
    settings = Settings(
        openrouter_base_url=f"{upstream_url}/v1",
        openrouter_api_key="sk-bench",
        upstream_timeout_s=60.0,
        session_secret=Fernet.generate_key().decode(),
    )
    relay, relay_url = await serve(create_app(settings))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            if static is not None:

                async def from_checkout(route: Route) -> None:
                    path = route.request.url.split("/static/", 1)[1].split("?")[0]
                    await route.fulfill(path=static / path)

                await page.route("**/static/**", from_checkout)
            session = await page.context.new_cdp_session(page)
            await session.send("Performance.enable")
            await page.goto(relay_url + "/")
            await page.get_by_text("Connected").wait_for()
            box = page.get_by_role("textbox", name="Message", exact=True)
            await box.fill("a long answer please")
            await page.evaluate(RECORD_INPUT_DELAY)
            before = await counters(session)
            started = time.monotonic()
            await box.press("Enter")
            typing = asyncio.create_task(keep_typing(page))
            await page.locator("#messages article.assistant[data-status=done]").wait_for(
                timeout=words / WORDS_PER_S * 1000 * 4 + 30_000
            )
            duration = time.monotonic() - started
            after = await counters(session)
            spent = {name: after[name] - before[name] for name in COUNTERS}
            typing.cancel()
            delays = sorted(await page.evaluate("window.inputDelays"))
            await browser.close()
    finally:
        await relay.cleanup()
        await upstream.cleanup()
    return {
        "words": words,
        "duration_s": duration,
        "busy_s": spent["TaskDuration"],
        "script_s": spent["ScriptDuration"],
        "layout_s": spent["LayoutDuration"],
        "style_s": spent["RecalcStyleDuration"],
        "input_p50_ms": delays[len(delays) // 2] if delays else 0.0,
        "input_max_ms": delays[-1] if delays else 0.0,
    }


# How long each key a user types during the stream waits before the page handles it.
RECORD_INPUT_DELAY = """() => {
  window.inputDelays = [];
  const record = (e) => window.inputDelays.push(performance.now() - e.timeStamp);
  document.addEventListener("keydown", record, {capture: true});
}"""


async def keep_typing(page: Page) -> None:
    """A user typing the next message while the answer streams: a key every 100 ms."""
    while True:
        await page.keyboard.press("a")
        await asyncio.sleep(0.1)


def report(rows: list[dict[str, float]]) -> str:
    lines = [
        "| words | stream (s) | main thread busy (s) | busy share | busy per word (µs) "
        "| script / layout / style (s) | key wait p50 / max (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        per_word_us = row["busy_s"] / row["words"] * 1e6
        share = row["busy_s"] / row["duration_s"]
        lines.append(
            f"| {row['words']:,.0f} | {row['duration_s']:.1f} | {row['busy_s']:.2f} "
            f"| {share:.0%} | {per_word_us:.0f} "
            f"| {row['script_s']:.2f} / {row['layout_s']:.2f} / {row['style_s']:.2f} "
            f"| {row['input_p50_ms']:.0f} / {row['input_max_ms']:.0f} |"
        )
    return "\n".join(lines)


async def run(words: list[int], static: Path | None) -> list[dict[str, float]]:
    return [await measure(count, static) for count in words]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, nargs="+", default=[1200, 6000, 20000])
    parser.add_argument("--static", type=Path, default=None, help="serve static/ from here")
    args = parser.parse_args()
    rows = asyncio.run(run(args.words, args.static))
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
