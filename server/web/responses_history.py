"""`store` and `previous_response_id` for an account: a stored response is a turn of a
conversation in the account's history (server/users/response_turns.py), its answer written
by its run like any chat's that carries `conversation`; `previous_response_id` continues that
conversation, its earlier turns sent upstream again. Without an account `store` is as if
false, and `previous_response_id` is a 400 naming it (SPEC "The Responses API").
"""

from __future__ import annotations

from aiohttp import web

from server.errors import BadRequest, ResponseNotFound
from server.relay.responses_input import turn_messages
from server.relay.responses_request import ResponseRequest
from server.relay.runs import RunHook
from server.users.answers import AnswerWriter
from server.users.history_rows import new_id
from server.users.response_turns import answer_of, context_of, write_turn
from server.web.history_service import answers_key, history_key

Place = tuple[str, str]


async def continued(
    request: web.Request, ask: ResponseRequest, account_id: str | None
) -> tuple[ResponseRequest, Place | None]:
    """The request with the turns `previous_response_id` continues before its input, and
    where that turn's answer is (its conversation and message)."""
    previous = ask.previous_response_id
    if previous is None:
        return ask, None
    if account_id is None:
        raise BadRequest(
            "previous_response_id needs an account (a signed-in session or a personal "
            "token): without one no response is stored to continue"
        )
    history = request.app[history_key]
    place = await answer_of(history, account_id, previous)
    if place is None:
        error = ResponseNotFound(previous)
        error.message = f"previous_response_id: {error.message}"
        raise error
    return ask.with_context(await context_of(history, account_id, *place)), place


async def stored_turn(
    request: web.Request,
    ask: ResponseRequest,
    account_id: str | None,
    place: Place | None,
    response_id: str,
) -> tuple[AnswerWriter | None, str | None]:
    """For a stored response of an account: its input written as a turn, and the hook that
    writes its answer there; with the conversation's id. (None, None) when not stored."""
    if account_id is None or not ask.store:
        return None, None
    history = request.app[history_key]
    turn = turn_messages(ask.input_items)
    conversation_id, parent_id = await write_turn(history, account_id, place, turn)
    writer = await request.app[answers_key].start(
        account_id, (conversation_id, parent_id, new_id()), response_id, ask.model
    )
    return writer, conversation_id


def answer_hooks(writer: AnswerWriter | None) -> list[RunHook]:
    # It keeps the log's Delta and Reasoning, which a response's text is logged as.
    return [] if writer is None else [writer]
