"""Search of an account's conversations in the database's own full-text index: SQLite's FTS5
tables, PostgreSQL's GIN index over `to_tsvector('simple', …)` (both made by the migration).

Words are matched case-insensitively, the last one as a prefix (the user is still typing);
a conversation matches when every word is in its title or one of its messages: first those
with all the words in one message or the title, best first, then those whose words are spread
over several, the most recently updated first. Each has a snippet of its best message.
Ranking reads only ids and scores; snippets are made for the page's few.
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


def one_word_queries(words: list[str], sqlite: bool) -> list[str]:
    """Each word as a query of its own, the last still a prefix."""
    last = len(words) - 1
    if sqlite:
        return [f'"{w}"' + ("*" if i == last else "") for i, w in enumerate(words)]
    return [f"'{w}'" + (":*" if i == last else "") for i, w in enumerate(words)]


def any_word_query(words: list[str], sqlite: bool) -> str:
    """A query matching a message with any of the words: the snippet of a spread match."""
    return (" OR " if sqlite else " | ").join(one_word_queries(words, sqlite))


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

# A conversation whose title or messages hold the word `:w{i}` (the account's own rows).
SQLITE_HOLDS_WORD = """c.id IN (
  SELECT c2.id FROM conversations_fts AS f JOIN conversations AS c2 ON c2.seq = f.rowid
  WHERE conversations_fts MATCH :w{i} AND c2.account_id = :account
  UNION
  SELECT m.conversation_id FROM messages_fts AS f JOIN messages AS m ON m.seq = f.rowid
  WHERE messages_fts MATCH :w{i} AND m.account_id = :account)"""
PG_HOLDS_WORD = """c.id IN (
  SELECT c2.id FROM conversations AS c2
  WHERE c2.account_id = :account
    AND to_tsvector('simple', c2.title) @@ to_tsquery('simple', :w{i})
  UNION
  SELECT m.conversation_id FROM messages AS m
  WHERE m.account_id = :account
    AND to_tsvector('simple', m.text) @@ to_tsquery('simple', :w{i}))"""
SPREAD_HITS = """
SELECT c.id AS cid FROM conversations AS c
WHERE c.account_id = :account{archived} AND {holds}
ORDER BY c.updated_at DESC, c.id DESC LIMIT :limit
"""
SQLITE_BEST_MESSAGE = """
SELECT f.rowid FROM messages_fts AS f JOIN messages AS m ON m.seq = f.rowid
WHERE messages_fts MATCH :match AND m.account_id = :account AND m.conversation_id = :cid
ORDER BY bm25(messages_fts) LIMIT 1
"""
PG_BEST_MESSAGE = """
SELECT m.seq FROM messages AS m, to_tsquery('simple', :match) AS q
WHERE m.account_id = :account AND m.conversation_id = :cid
  AND to_tsvector('simple', m.text) @@ q
ORDER BY ts_rank(to_tsvector('simple', m.text), q) DESC LIMIT 1
"""


async def spread_matches(
    db: AsyncConnection,
    account_id: str,
    words: list[str],
    limit: int,
    archived: bool | None,
) -> list[tuple[str, int | None]]:
    """Conversations holding every word, though in no one message or title: each with the
    message to quote (the best for any of the words), the most recently updated first."""
    sqlite = db.dialect.name == "sqlite"
    singles = one_word_queries(words, sqlite)
    holds = " AND ".join(
        (SQLITE_HOLDS_WORD if sqlite else PG_HOLDS_WORD).format(i=i) for i in range(len(words))
    )
    params: dict[str, Any] = {"account": account_id, "limit": limit}
    params.update({f"w{i}": query for i, query in enumerate(singles)})
    if archived is not None:
        params["archived"] = archived
    sql = SPREAD_HITS.format(archived=_archived_clause(archived), holds=holds)
    cids = [row.cid for row in await db.execute(text(sql), params)]
    quote_sql = text(SQLITE_BEST_MESSAGE if sqlite else PG_BEST_MESSAGE)
    match = any_word_query(words, sqlite)
    found = []
    for cid in cids:
        seq = await db.scalar(quote_sql, {"match": match, "account": account_id, "cid": cid})
        found.append((cid, seq))
    return found


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
    chosen = [(cid, seq) for cid, (_, seq) in sorted(best.items(), key=lambda item: item[1][0])]
    chosen = chosen[:limit]
    if len(words) > 1 and len(chosen) < limit:
        spread = await spread_matches(db, account_id, words, limit + len(chosen), archived)
        chosen += [(cid, seq) for cid, seq in spread if cid not in best][: limit - len(chosen)]
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
    any_word = any_word_query(words, sqlite)
    for cid, seq in chosen:
        conversation = rows.get(cid)
        if conversation is None:
            continue
        snippet = conversation.title
        if seq is not None:
            snippet_sql = SQLITE_SNIPPET if sqlite else PG_SNIPPET
            # A spread match's message holds some of the words only: quote those.
            match = params["match"] if cid in best else any_word
            quoted = await db.scalar(text(snippet_sql), {**params, "match": match, "seq": seq})
            snippet = quoted or snippet
        out.append({**conversation_json(conversation), "snippet": snippet})
    return out
