"""A chat's run started by either transport, with the hooks that follow it from above the
relay (server/relay/runs.py RunHook): the history's answer writer, when the chat carries
`conversation`, and the budget's meter, when it is metered. One place, so every transport
starts its runs alike."""

from __future__ import annotations

from aiohttp import web

from server.errors import ChatError
from server.relay.request import ChatRequest
from server.relay.runs import ChatLease, Run, RunHook, runs_key
from server.web.budget_gate import Meter, hooks_of, run_started
from server.web.history_service import answer_writer


async def start_chat_run(
    app: web.Application,
    key: str,
    chat_id: str,
    transport: str,
    chat: ChatRequest,
    api_key: str,
    lease: ChatLease,
    *,
    account_id: str | None,
    conversation: object,
    meter: Meter | None = None,
) -> Run:
    """Start the chat (Runs.start), its assistant message made first when it writes history;
    the lease (and the budget's hold) is given back when it does not start."""
    try:
        writer = await answer_writer(app, account_id, conversation, chat_id, chat.model)
    except BaseException:
        await lease.release()
        if meter is not None:
            await meter.release()
        raise
    # The budget settles before the answer is written: the answer's write pokes the account's
    # devices (sync), and a device that reads the budget then must find the chat's cost in it.
    hooks: list[RunHook] = hooks_of(meter) + ([] if writer is None else [writer])
    max_chars = None if meter is None else meter.max_chars
    starting = app[runs_key].start(
        key, chat_id, transport, chat, api_key, lease, hooks, max_chars=max_chars
    )
    try:
        run = await run_started(meter, starting)
    except ChatError as error:
        if writer is not None:  # its message must not say `streaming` forever
            await writer.failed_to_start(error)
        raise
    # Its log line names the account (the pump has not run yet: nothing awaited since).
    run.observer.account_id = account_id
    return run
