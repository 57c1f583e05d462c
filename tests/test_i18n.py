"""The message catalogue, amounts, counts and the reader's language (kolmatch/i18n.py)."""

from __future__ import annotations

import re

import pytest

from kolmatch.errors import BadArgument
from kolmatch.i18n import (
    CATEGORY_NAMES,
    LANG_ENV,
    LANGS,
    MESSAGES,
    NOUNS,
    category_name,
    count,
    format_amount,
    message,
    negotiate,
    placeholders,
    resolve_lang,
)


def test_every_language_has_every_key() -> None:
    assert set(MESSAGES) == set(LANGS)
    keys = {lang: set(catalogue) for lang, catalogue in MESSAGES.items()}
    assert keys["zh-CN"] == keys["en"], keys["zh-CN"] ^ keys["en"]


@pytest.mark.parametrize("key", sorted(MESSAGES["en"]))
def test_every_translation_formats_the_same_placeholders(key: str) -> None:
    assert placeholders(MESSAGES["zh-CN"][key]) == placeholders(MESSAGES["en"][key])


def test_translations_are_chinese() -> None:
    """Every Chinese template with words of its own has Chinese words (none left in English)."""
    untranslated = []
    for key, template in MESSAGES["zh-CN"].items():
        words = re.sub(r"\{[^}]*\}", "", template)  # the placeholders are names, not words
        latin = re.sub(
            r"GMV|ROI|WAPE|PageRank|Jaccard|AUC|NDCG@20|recall@50|SDL|GraphQL|schema|"
            r"kolmatch|docs/\S+|Twitch|--store|match|plan|assign|load|id|x",
            "",
            words,
        )
        if any(c.isascii() and c.isalpha() for c in latin):
            untranslated.append(key)
    assert not untranslated


def test_message_formats_and_falls_back_to_english() -> None:
    assert message("evidence.no_violations", "zh-CN") == "无违规记录"
    assert message("evidence.no_violations", "fr") == "no violations"  # unknown language
    with pytest.raises(KeyError):
        message("no.such.key", "en")


@pytest.mark.parametrize(
    ("yuan", "en", "zh"),
    [
        (0, "¥0", "¥0"),
        (0.4, "¥0", "¥0"),
        (999, "¥999", "¥999"),
        (1234, "¥1,234", "¥1,234"),
        (9_999.4, "¥9,999", "¥9,999"),
        (9_999.6, "¥10,000", "¥1.0万"),
        (12_345, "¥12,345", "¥1.2万"),
        (123_456, "¥123,456", "¥12.3万"),
        (999_960, "¥999,960", "¥100.0万"),
        (999_999.7, "¥1.0M", "¥100.0万"),
        (1_234_567, "¥1.2M", "¥123.5万"),
        (99_990_000, "¥100.0M", "¥9999.0万"),
        (99_999_990, "¥100.0M", "¥1.0亿"),
        (1.2e8, "¥120.0M", "¥1.2亿"),
        (3.4e9, "¥3.4B", "¥34.0亿"),
        (1e12, "¥1.0T", "¥1.0万亿"),
        (5.6e14, "¥560.0T", "¥560.0万亿"),
        (1e15, "¥1.0e+15", "¥1000.0万亿"),
        (1e16, "¥1.0e+16", "¥1.0e+16"),
        (1e30, "¥1.0e+30", "¥1.0e+30"),
        (-1234, "-¥1,234", "-¥1,234"),
        (-5e4, "-¥50,000", "-¥5.0万"),
        (-2.5e9, "-¥2.5B", "-¥25.0亿"),
        (float("nan"), "-", "-"),
        (float("inf"), "-", "-"),
    ],
)
def test_format_amount(yuan: float, en: str, zh: str) -> None:
    assert format_amount(yuan, "en") == en
    assert format_amount(yuan, "zh-CN") == zh


@pytest.mark.parametrize("yuan", [10.0**k for k in range(0, 40)] + [1e308])
def test_format_amount_is_always_short(yuan: float) -> None:
    for lang in LANGS:
        assert len(format_amount(yuan, lang)) <= 10, format_amount(yuan, lang)


@pytest.mark.parametrize(
    ("n", "noun", "en", "zh"),
    [
        (0, "talent", "0 talents", "0 位达人"),
        (1, "talent", "1 talent", "1 位达人"),
        (2, "talent", "2 talents", "2 位达人"),
        (1, "blocking pair", "1 blocking pair", "1 个阻塞对"),
        (3, "blocking pair", "3 blocking pairs", "3 个阻塞对"),
        (1, "estimated fee", "1 estimated fee", "1 项估算费用"),
        (2, "category", "2 categories", "2 个品类"),
        (12_345, "row", "12,345 rows", "12,345 行"),
        (2, "widget", "2 widgets", "2 widget"),  # not in NOUNS: a regular plural
    ],
)
def test_count(n: int, noun: str, en: str, zh: str) -> None:
    assert count(n, noun, "en") == en
    assert count(n, noun, "zh-CN") == zh


def test_every_noun_has_both_forms() -> None:
    for noun, (plural, zh) in NOUNS.items():
        assert plural != noun and zh and not zh.startswith(" "), noun


def test_category_names_cover_the_markets() -> None:
    from kolmatch.loaders.synthetic import CATEGORY_NAMES as SYNTHETIC

    for c, name in enumerate(SYNTHETIC):
        assert category_name(name, "zh-CN") == CATEGORY_NAMES[name]
        assert category_name(f"cat{c:02d}", "zh-CN") == CATEGORY_NAMES[name]
        assert category_name(name, "en") == name  # English: the market's own name
    assert category_name("twitch-de", "zh-CN") == "Twitch 德国"
    assert category_name("other", "zh-CN") == "其他"
    # a game of the twitch data sets: its own name in any language
    assert category_name("Minecraft", "zh-CN") == category_name("Minecraft") == "Minecraft"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("zh-TW", "zh-CN"),
        ("fr, zh;q=0.5", "zh-CN"),
        ("fr", "en"),
        ("zh;q=0, en;q=0.1", "en"),
        ("", "en"),
        (None, "en"),
        ("q=;;,", "en"),
    ],
)
def test_negotiate(header: str | None, lang: str) -> None:
    assert negotiate(header) == lang


@pytest.mark.parametrize(
    ("flag", "env", "lang"),
    [
        (None, {}, "en"),
        (None, {LANG_ENV: ""}, "en"),
        (None, {LANG_ENV: "zh-CN"}, "zh-CN"),
        (None, {LANG_ENV: "zh_cn"}, "zh-CN"),
        ("zh", {}, "zh-CN"),
        ("en", {LANG_ENV: "zh-CN"}, "en"),  # the flag wins
        ("zh-CN", {LANG_ENV: "nonsense"}, "zh-CN"),  # a bad variable the flag overrides
    ],
)
def test_resolve_lang(flag: str | None, env: dict[str, str], lang: str) -> None:
    assert resolve_lang(flag, env) == lang


@pytest.mark.parametrize(
    ("flag", "env", "named"), [("fr", {}, "--lang"), (None, {LANG_ENV: "de"}, LANG_ENV)]
)
def test_resolve_lang_names_the_bad_source(
    flag: str | None, env: dict[str, str], named: str
) -> None:
    with pytest.raises(BadArgument) as info:
        resolve_lang(flag, env)
    assert info.value.argument == named
    assert "en, zh-CN" in str(info.value)
