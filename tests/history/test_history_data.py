"""The history's data layer (server/users/history.py, sync.py, search.py) on SQLite and
PostgreSQL: rows, retries, ownership, versions and sync, search."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from server.errors import BadRequest
from server.users.history import History, HistoryConflict, HistoryNotFound
from server.users.history_tables import history_deletions
from server.users.sync import PAGE_CHANGES
from tests.history.conftest import ALICE, BOB, Told


async def test_a_conversation_is_made_once_and_a_retry_gives_it_back(
    history: History, told: Told
) -> None:
    made = await history.create_conversation(ALICE, {"id": "c1", "title": "Trip"})
    again = await history.create_conversation(ALICE, {"id": "c1", "title": "Trip"})
    assert again == made
    assert told.versions == [(ALICE, 1)]  # the retry took no version
    with pytest.raises(HistoryConflict):
        await history.create_conversation(ALICE, {"id": "c1", "title": "Other"})
    # Ids are the account's own: Bob may use the same one.
    assert (await history.create_conversation(BOB, {"id": "c1"}))["title"] == "New chat"


async def test_ids_over_64_characters_are_refused_naming_the_field(history: History) -> None:
    with pytest.raises(BadRequest, match=r"^id must be"):
        await history.create_conversation(ALICE, {"id": "x" * 65})
    await history.create_conversation(ALICE, {"id": "x" * 64})
    with pytest.raises(BadRequest, match=r"^parent_id must be"):
        await history.add_message(
            ALICE, "x" * 64, {"parent_id": "p" * 65, "role": "user", "content": "hi"}
        )


async def test_messages_form_a_tree_and_a_parent_elsewhere_changes_nothing(
    history: History, told: Told
) -> None:
    await history.create_conversation(ALICE, {"id": "c1"})
    await history.create_conversation(ALICE, {"id": "c2"})
    q = await history.add_message(
        ALICE, "c1", {"id": "q", "parent_id": None, "role": "user", "content": "Hi"}
    )
    other = await history.add_message(
        ALICE, "c2", {"id": "o", "parent_id": None, "role": "user", "content": "Yo"}
    )
    edited = {
        "id": "q2",
        "parent_id": None,
        "role": "user",
        "content": [{"type": "text", "text": "Hey"}],
    }
    await history.add_message(ALICE, "c1", edited)
    versions_before = list(told.versions)
    with pytest.raises(BadRequest, match="parent_id is not a message of conversation c1"):
        await history.add_message(
            ALICE, "c1", {"id": "bad", "parent_id": other["id"], "role": "user", "content": "x"}
        )
    assert told.versions == versions_before
    loaded = await history.conversation(ALICE, "c1")
    assert [m["id"] for m in loaded["messages"]] == ["q", "q2"]
    assert loaded["messages"][1]["content"] == [{"type": "text", "text": "Hey"}]
    assert q["status"] == "done" and q["parent_id"] is None
    # A retry of the same message is that message; other content under its id is refused.
    assert (
        await history.add_message(
            ALICE, "c1", {"id": "q", "parent_id": None, "role": "user", "content": "Hi"}
        )
    )["version"] == q["version"]
    with pytest.raises(HistoryConflict):
        await history.add_message(
            ALICE, "c1", {"id": "q", "parent_id": None, "role": "user", "content": "Changed"}
        )
    sync = await history.sync(ALICE, versions_before[-1][1])
    assert sync["changes"] == []


async def test_another_accounts_rows_are_as_unknown_as_missing_ones(history: History) -> None:
    await history.create_conversation(ALICE, {"id": "mine"})
    await history.add_message(
        ALICE, "mine", {"id": "m", "parent_id": None, "role": "user", "content": "secret"}
    )
    for call in (
        history.conversation(BOB, "mine"),
        history.update_conversation(BOB, "mine", {"title": "x"}),
        history.delete_conversation(BOB, "mine"),
        history.add_message(BOB, "mine", {"parent_id": None, "role": "user", "content": "x"}),
    ):
        with pytest.raises(HistoryNotFound, match="No conversation with id mine"):
            await call
    assert (await history.list(BOB, 50, None, None, None))["data"] == []
    assert (await history.list(BOB, 50, None, None, "secret"))["data"] == []
    assert (await history.sync(BOB, 0))["changes"] == []


async def test_the_list_pages_newest_first_by_cursor(history: History) -> None:
    for number in range(7):
        await history.create_conversation(ALICE, {"id": f"c{number}"})
    await history.add_message(ALICE, "c2", {"parent_id": None, "role": "user", "content": "x"})
    await history.update_conversation(ALICE, "c5", {"archived": True})
    seen, before = [], None
    while True:
        page = await history.list(ALICE, 2, before, False, None)
        seen += [c["id"] for c in page["data"]]
        before = page["next"]
        if before is None:
            break
    assert seen[0] == "c2"
    assert sorted(seen) == ["c0", "c1", "c2", "c3", "c4", "c6"]
    assert len(seen) == len(set(seen))
    assert [c["id"] for c in (await history.list(ALICE, 50, None, True, None))["data"]] == ["c5"]
    with pytest.raises(BadRequest, match=r"^before"):
        await history.list(ALICE, 2, "not-a-cursor", None, None)


async def test_sync_gives_every_change_once_in_pages_and_deletions(history: History) -> None:
    await history.create_conversation(ALICE, {"id": "c"})
    await history.create_conversation(ALICE, {"id": "gone"})
    parent = None
    for number in range(PAGE_CHANGES):
        message = {"id": f"m{number}", "parent_id": parent, "role": "user", "content": "x"}
        parent = (await history.add_message(ALICE, "c", message))["id"]
    await history.delete_conversation(ALICE, "gone")
    seen, since, pages = [], 0, 0
    while True:
        page = await history.sync(ALICE, since)
        pages += 1
        seen += page["changes"]
        assert page["version"] > since
        since = page["version"]
        if not page["more"]:
            break
    assert pages == 2  # c as it is now, its 500 messages, gone's deletion
    ids = [(c["kind"], c["op"], c["data"]["id"]) for c in seen]
    assert ids[-1] == ("conversation", "delete", "gone")
    assert ("conversation", "put", "c") in ids
    assert len(ids) == len(set(ids)) == PAGE_CHANGES + 2
    assert len([i for i in ids if i[0] == "message"]) == PAGE_CHANGES
    assert (await history.sync(ALICE, since)) == {"version": since, "changes": [], "more": False}


async def test_a_cursor_from_the_future_or_before_the_kept_deletions_resets(
    history: History, database: object
) -> None:
    await history.create_conversation(ALICE, {"id": "c"})
    await history.delete_conversation(ALICE, "c")
    assert await history.sync(ALICE, 99) == {"reset": True, "version": 2}
    # Forty days later another deletion forgets the first one: a device at version 1 reloads.
    async with history.database.transaction() as db:
        await db.execute(update(history_deletions).values(deleted_at=0))
    await history.create_conversation(ALICE, {"id": "d"})
    await history.delete_conversation(ALICE, "d")
    assert await history.sync(ALICE, 1) == {"reset": True, "version": 4}
    changes = await history.sync(ALICE, 2)
    assert [(c["op"], c["data"]) for c in changes["changes"]] == [("delete", {"id": "d"})]
    assert (await history.sync(ALICE, 0))["version"] == 4


async def test_two_devices_writing_at_once_get_distinct_versions_and_lose_nothing(
    history: History,
) -> None:
    await history.create_conversation(ALICE, {"id": "c"})

    async def device(name: str) -> None:
        for number in range(15):
            body = {"id": f"{name}{number}", "parent_id": None, "role": "user", "content": name}
            await history.add_message(ALICE, "c", body)

    await asyncio.gather(device("phone"), device("laptop"))
    sync = await history.sync(ALICE, 0)
    versions = [c["data"]["version"] for c in sync["changes"]]
    assert versions == sorted(set(versions))
    messages = {c["data"]["id"] for c in sync["changes"] if c["kind"] == "message"}
    assert len(messages) == 30
    assert sync["version"] == 1 + 30 * 2  # each message also moved the conversation up


async def test_search_finds_words_in_titles_and_messages_best_first(history: History) -> None:
    await history.create_conversation(ALICE, {"id": "t", "title": "Kubernetes notes"})
    await history.create_conversation(ALICE, {"id": "m"})
    await history.create_conversation(ALICE, {"id": "n"})
    text = "How do I deploy to KUBERNETES with helm charts and a rolling update?"
    await history.add_message(ALICE, "m", {"parent_id": None, "role": "user", "content": text})
    await history.add_message(
        ALICE, "n", {"parent_id": None, "role": "user", "content": "Bake bread with flour"}
    )
    await history.create_conversation(BOB, {"id": "b", "title": "kubernetes"})
    found = (await history.list(ALICE, 50, None, None, "kubernetes"))["data"]
    assert [c["id"] for c in found] == ["t", "m"]
    assert "KUBERNETES" in found[1]["snippet"]
    # Case-insensitive, every word, the last one a prefix.
    assert [c["id"] for c in (await history.list(ALICE, 50, None, None, "Deploy HEL"))["data"]] == [
        "m"
    ]
    assert (await history.list(ALICE, 50, None, None, "deploy bread"))["data"] == []
    assert (await history.list(ALICE, 50, None, None, "\"'*)"))["data"] == []


async def test_search_finds_words_spread_over_the_title_and_several_messages(
    history: History,
) -> None:
    async def say(account: str, cid: str, *texts: str) -> None:
        parent = None
        for said in texts:
            body = {"parent_id": parent, "role": "user", "content": said}
            parent = (await history.add_message(account, cid, body))["id"]

    await history.create_conversation(ALICE, {"id": "spread", "title": "Summer trip"})
    await say(ALICE, "spread", "Hotels in Paris?", "And a budget for five days?")
    await history.create_conversation(ALICE, {"id": "together"})
    await say(ALICE, "together", "Paris on a budget")
    await history.create_conversation(ALICE, {"id": "half"})
    await say(ALICE, "half", "Paris museums")
    await history.create_conversation(BOB, {"id": "bobs", "title": "Paris"})
    await say(BOB, "bobs", "budget")

    async def search(q: str) -> list[str]:
        return [c["id"] for c in (await history.list(ALICE, 50, None, None, q))["data"]]

    # All the words in one message first, then those spread over several; never Bob's.
    assert await search("paris budget") == ["together", "spread"]
    assert await search("paris budg") == ["together", "spread"]
    assert await search("summer paris days") == ["spread"]
    assert await search("paris museums budget") == []
    spread = (await history.list(ALICE, 50, None, None, "trip budget"))["data"][0]
    assert spread["id"] == "spread" and "budget" in spread["snippet"]
    one = (await history.list(ALICE, 1, None, None, "paris budget"))["data"]
    assert [c["id"] for c in one] == ["together"]
    await history.update_conversation(ALICE, "together", {"archived": True})
    archived = (await history.list(ALICE, 50, None, False, "paris budget"))["data"]
    assert [c["id"] for c in archived] == ["spread"]
