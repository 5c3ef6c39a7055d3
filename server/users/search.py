"""Search of an account's conversations in the database's own full-text index: SQLite's FTS5
tables, PostgreSQL's GIN index over `to_tsvector('simple', …)` (both made by the migration).

Words are matched case-insensitively, the last one as a prefix (the user is still typing);
a conversation matches by its title or any of its messages, best first, with a snippet of
the best message. Ranking reads only ids and scores; snippets are made for the page's few.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.history_rows import conversation_json
from server.users.history_tables import conversations

MAX_WORDS = 12
# How many of the best hits are ranked into conversations: enough for a page of 200.
MAX_HITS = 2000
# A title hit outranks any message hit: it names the whole conversation.
TITLE_BONUS = 1000.0
SNIPPET_WORDS = 16

WORD = re.compile(r"\w+")


def words_of(q: str) -> list[str]:
    return WORD.findall(q.lower())[:MAX_WORDS]


def fts5_query(words: list[str]) -> str:
    # Each word quoted (\w+ holds no quote), the last as a prefix; FTS5 ANDs them.
    return " ".join(f'"{w}"' for w in words) + "*"


def tsquery(words: list[str]) -> str:
    return " & ".join(f"'{w}'" for w in words) + ":*"


def _archived_clause(archived: bool | None) -> str:
    if archived is None:
        return ""
    return " AND c.archived = :archived"


SQLITE_MESSAGE_HITS = """
SELECT m.conversation_id AS cid, f.rowid AS seq, bm25(messages_fts) AS score
FROM messages_fts AS f
JOIN messages AS m ON m.seq = f.rowid
JOIN conversations AS c ON c.account_id = m.account_id AND c.id = m.conversation_id
WHERE messages_fts MATCH :match AND m.account_id = :account{archived}
ORDER BY score LIMIT :cap
"""
SQLITE_TITLE_HITS = """
SELECT c.id AS cid, bm25(conversations_fts) AS score
FROM conversations_fts AS f
JOIN conversations AS c ON c.seq = f.rowid
WHERE conversations_fts MATCH :match AND c.account_id = :account{archived}
ORDER BY score LIMIT :cap
"""
SQLITE_SNIPPET = f"""
SELECT snippet(messages_fts, 0, '', '', '…', {SNIPPET_WORDS})
FROM messages_fts WHERE messages_fts MATCH :match AND rowid = :seq
"""

# ts_rank grows with relevance; negated so that lower is better on both engines.
PG_MESSAGE_HITS = """
SELECT m.conversation_id AS cid, m.seq AS seq,
       -ts_rank(to_tsvector('simple', m.text), q) AS score
FROM messages AS m
JOIN conversations AS c ON c.account_id = m.account_id AND c.id = m.conversation_id,
     to_tsquery('simple', :match) AS q
WHERE m.account_id = :account AND to_tsvector('simple', m.text) @@ q{archived}
ORDER BY score LIMIT :cap
"""
PG_TITLE_HITS = """
SELECT c.id AS cid, -ts_rank(to_tsvector('simple', c.title), q) AS score
FROM conversations AS c, to_tsquery('simple', :match) AS q
WHERE c.account_id = :account AND to_tsvector('simple', c.title) @@ q{archived}
ORDER BY score LIMIT :cap
"""
PG_SNIPPET = f"""
SELECT ts_headline('simple', m.text, to_tsquery('simple', :match),
                   'StartSel="", StopSel="", MaxWords={SNIPPET_WORDS}, MinWords=6')
FROM messages AS m WHERE m.account_id = :account AND m.seq = :seq
"""


async def search_conversations(
    db: AsyncConnection, account_id: str, q: str, limit: int, archived: bool | None
) -> list[dict[str, Any]]:
    words = words_of(q)
    if not words:
        return []
    sqlite = db.dialect.name == "sqlite"
    params: dict[str, Any] = {
        "match": fts5_query(words) if sqlite else tsquery(words),
        "account": account_id,
        "cap": MAX_HITS,
    }
    if archived is not None:
        params["archived"] = archived
    clause = _archived_clause(archived)
    message_sql, title_sql = (
        (SQLITE_MESSAGE_HITS, SQLITE_TITLE_HITS) if sqlite else (PG_MESSAGE_HITS, PG_TITLE_HITS)
    )
    # Each conversation's best hit: its score, and the message to quote (None: its title).
    best: dict[str, tuple[float, int | None]] = {}
    for row in await db.execute(text(title_sql.format(archived=clause)), params):
        best[row.cid] = (row.score - TITLE_BONUS, None)
    for row in await db.execute(text(message_sql.format(archived=clause)), params):
        if row.cid not in best:
            best[row.cid] = (row.score, row.seq)
        elif best[row.cid][1] is None:  # the title's rank, quoting its best message
            best[row.cid] = (best[row.cid][0], row.seq)
    chosen = sorted(best.items(), key=lambda item: item[1][0])[:limit]
    if not chosen:
        return []
    found = await db.execute(
        select(conversations).where(
            conversations.c.account_id == account_id,
            conversations.c.id.in_([cid for cid, _ in chosen]),
        )
    )
    rows: dict[str, Any] = {row.id: row for row in found}
    out = []
    for cid, (_, seq) in chosen:
        conversation = rows.get(cid)
        if conversation is None:
            continue
        snippet = conversation.title
        if seq is not None:
            snippet_sql = SQLITE_SNIPPET if sqlite else PG_SNIPPET
            quoted = (await db.execute(text(snippet_sql), {**params, "seq": seq})).scalar()
            snippet = quoted or snippet
        out.append({**conversation_json(conversation), "snippet": snippet})
    return out
