"""What a staff search box's text becomes for the full-text index of tickets (migration 0011).

The text is never handed to the database's query syntax: it is cut into words (letters and digits), and
only those words, each quoted, are put into an FTS5 MATCH or a tsquery the desk writes itself. Quotes,
``*``, ``NEAR(``, ``:``, ``&``, backslashes and the like are separators, so hostile input can only yield
results or none, never a syntax error. Every word must match (AND), as a prefix, so "биоразн" finds
"биоразнообразие" while the staff member is still typing.

Russian and English words match in other forms too. PostgreSQL stems both the index and the query with its
'russian' configuration (Russian Snowball for Cyrillic, English for Latin words). SQLite's FTS5 has no
Russian stemmer, so the word is stemmed here with the classifier's Snowball stemmers and searched as a
prefix: "биоразнообразия" becomes "биоразнообраз*", "policies" becomes "polic*".
"""

from __future__ import annotations

import re
from itertools import takewhile

import snowballstemmer
from sqlalchemy import Select, column, func, literal_column, select, table

from helpdesk.classification.text import is_cyrillic

# Longer text is cut: a search box is a few words, not a document.
MAX_QUERY_CHARS = 1_000
MAX_WORDS = 12
MAX_WORD_CHARS = 64
# A stem shorter than this would match too much; the word is searched as typed instead.
MIN_STEM_CHARS = 3

_WORD = re.compile(r"[^\W_]+")
# Snowball, not the classifier's lemmas: the search needs a prefix every form of the word starts with
# (биоразнообразие and биоразнообразия share "биоразнообраз"), and a lemma is a whole word.
_RUSSIAN = snowballstemmer.stemmer("russian")
_ENGLISH = snowballstemmer.stemmer("english")


def _stem(word: str) -> str:
    return (_RUSSIAN if is_cyrillic(word) else _ENGLISH).stemWord(word)


def search_words(q: str | None) -> list[str]:
    """The words of ``q`` that are searched: lower case, ё as е (as the index folds it), bounded."""
    if not q:
        return []
    found = _WORD.findall(q[:MAX_QUERY_CHARS].lower().replace("ё", "е"))
    return list(dict.fromkeys(word[:MAX_WORD_CHARS] for word in found))[:MAX_WORDS]


def _prefix(word: str) -> str:
    """The stem as a prefix of the word itself (Snowball may rewrite the ending: policy → polici)."""
    same = takewhile(lambda pair: pair[0] == pair[1], zip(_stem(word), word, strict=False))
    stem = "".join(a for a, _ in same)
    if stem.endswith("i") and stem.isascii():
        # English Snowball writes y as i (policy → polici): "polic" matches both
        stem = stem[:-1]
    return stem if len(stem) >= MIN_STEM_CHARS else word


def fts5_match(words: list[str]) -> str:
    """An FTS5 query: every word as a quoted prefix (the words hold no quote: letters and digits only)."""
    return " ".join(f'"{_prefix(word)}"*' for word in words)


def tsquery(words: list[str]) -> str:
    """A to_tsquery text: every word quoted, as a prefix, joined by AND; PostgreSQL stems each one."""
    return " & ".join(f"'{word}':*" for word in words)


# The index is kept by triggers and has no model (migration 0011): its columns as the queries need them.
_INDEX = table("ticket_search", column("ticket_id"), column("rowid"), column("document"))


def matching_ticket_ids(dialect: str, words: list[str]) -> Select[tuple[int]]:
    """The ids of the tickets whose document holds every word (``words`` from ``search_words``)."""
    if dialect == "postgresql":
        query = func.to_tsquery(literal_column("'russian'::regconfig"), tsquery(words))
        return select(_INDEX.c.ticket_id).where(_INDEX.c.document.op("@@")(query))
    return select(_INDEX.c.rowid).where(literal_column("ticket_search").op("MATCH")(fts5_match(words)))
