from __future__ import annotations

import sqlite3
import unicodedata

import pytest

from engramdb.lexical.tokenize import STOPWORDS_EN, query_terms, tokenize


def _unicode61(texts: list[str], spec: str = "unicode61 remove_diacritics 2") -> list[list[str]]:
    """Tokens per text as SQLite's own tokenizer produces them (via fts5vocab)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{spec}')")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        conn.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts))
        out: list[list[str]] = [[] for _ in texts]
        for doc, term in conn.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
            out[doc].append(term)
        return out
    finally:
        conn.close()


def test_splits_on_punctuation_and_underscore_and_lowercases() -> None:
    assert tokenize("Hello, WORLD! snake_case e-mail x2 3.14") == [
        "hello",
        "world",
        "snake",
        "case",
        "e",
        "mail",
        "x2",
        "3",
        "14",
    ]


def test_removes_latin_diacritics_but_keeps_sharp_s() -> None:
    assert tokenize("Café Müller señal Ångström Straße") == [
        "cafe",
        "muller",
        "senal",
        "angstrom",
        "straße",
    ]


def test_combining_marks_are_removed_inside_tokens() -> None:
    assert tokenize("Cafe\u0301 e\u0301te\u0301") == ["cafe", "ete"]


def test_greek_sigma_folds_without_context_and_cyrillic_lowercases() -> None:
    assert tokenize("ΟΔΟΣ Москва") == ["οδοσ", "москва"]


def test_cjk_runs_are_single_tokens() -> None:
    assert tokenize("東京 の ホテル") == ["東京", "の", "ホテル"]


def test_no_token_characters_gives_nothing() -> None:
    assert tokenize(" ,.;:!?'\"()[]{}*^-+=<>/\\|@#$%&~`_ ") == []
    assert tokenize("") == []


REALISTIC = [
    "Alice moved the deploy freeze to Friday (again!) — see JIRA-1234.",
    "Rendez-vous au Café de Flore à Paris: réservation confirmée.",
    "Treffen mit Herrn MÜLLER in der Friedrichstraße; Büro 3.OG",
    "La señal del móvil es débil en el tren de Madrid a Sevilla.",
    "Встреча с Ольгой в Москве перенесена на пятницу.",
    "Ταξίδι στην Αθήνα τον Ιούνιο· ΟΔΟΣ Ακρόπολη.",
    "東京 の ホテル は 新宿 駅 の 近く です",
    "emoji 🎉 party, tabs\tand\nnewlines, nbsp\u00a0here, µ-sign, ſ long s",
    "Ærø Øresund Łódź İstanbul Çay Ğ ﬁne",
]


@pytest.mark.parametrize("text", REALISTIC)
def test_matches_sqlite_unicode61(text: str) -> None:
    assert tokenize(text) == _unicode61([text])[0]


def test_matches_sqlite_unicode61_on_latin_greek_cyrillic_characters() -> None:
    # Code points assigned before SQLite's Unicode tables (newer ones may split differently).
    blocks = [range(0x20, 0x250), range(0x1E00, 0x1F00), range(0x386, 0x3F3), range(0x400, 0x528)]
    chars = [chr(cp) for block in blocks for cp in block if unicodedata.category(chr(cp)) != "Cn"]
    texts = [f"x{ch}y {ch}{ch.upper()}" for ch in chars]
    assert [tokenize(t) for t in texts] == _unicode61(texts)


def test_query_terms_drop_stop_words_and_repeats_in_order() -> None:
    assert query_terms("The freeze, the FREEZE and a deploy") == ["freeze", "deploy"]
    assert query_terms("The freeze and a deploy", stopwords=False) == [
        "the",
        "freeze",
        "and",
        "a",
        "deploy",
    ]


def test_query_of_only_stop_words_has_no_terms() -> None:
    assert query_terms("to be or not to be") == []


def test_stop_words_are_lowercase_tokens() -> None:
    assert all(tokenize(word) == [word] for word in STOPWORDS_EN)
