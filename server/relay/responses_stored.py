"""A stored response rebuilt from its account's history once its own log has expired
(server/users/response_turns.py keeps the answer): its output as text and reasoning, its
usage and status. The request's own fields were never history's, so they are not shown.
"""

from __future__ import annotations

from typing import Any

from server.relay.responses import response_error
from server.relay.responses_items import usage_of

# A stored answer's status in the history, as a response's.
HISTORY_STATUS = {
    "done": "completed",
    "cancelled": "cancelled",
    "error": "failed",
    "streaming": "in_progress",
}


def kept_response(response_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A stored response rebuilt from the history's answer (its log expired): its output as
    text (and reasoning), its usage and status; the request's own fields are not kept."""
    base = response_id.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    status = HISTORY_STATUS.get(answer["status"], "completed")
    item_status = "completed" if status == "completed" else "incomplete"
    if answer["reasoning"]:
        part = {"type": "reasoning_text", "text": answer["reasoning"]}
        output.append(
            {
                "id": f"rs_{base}o0",
                "type": "reasoning",
                "status": item_status,
                "summary": [],
                "content": [part],
            }
        )
    if answer["text"]:
        part = {"type": "output_text", "text": answer["text"], "annotations": [], "logprobs": []}
        output.append(
            {
                "id": f"msg_{base}o{len(output)}",
                "type": "message",
                "role": "assistant",
                "status": item_status,
                "content": [part],
            }
        )
    error = answer["error"]
    return {
        "id": response_id,
        "object": "response",
        "created_at": answer["created_at"],
        "status": status,
        "background": None,
        "store": True,
        "previous_response_id": None,
        "conversation": {"id": answer["conversation_id"]},
        "model": answer["model"] or "",
        "instructions": None,
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "error": None if error is None else response_error(*error),
        "incomplete_details": None,
        "output": output,
        "usage": usage_of(answer["usage"]),
    }
