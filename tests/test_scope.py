"""The strict scope parser: single spaces between RFC 6749 scope tokens."""

from __future__ import annotations

import pytest

from agentiam.errors import InvalidScopeError
from agentiam.scope import split_scope


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("refunds", ("refunds",)),
        ("refunds tickets refunds", ("refunds", "tickets", "refunds")),
        ("a:b/c!#[]~", ("a:b/c!#[]~",)),
    ],
    ids=["one", "repeat", "punctuation"],
)
def test_split_scope_accepts(text: str, tokens: tuple[str, ...]) -> None:
    assert split_scope(text) == tokens


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The scope is empty."),
        (
            "a\tb",
            "Invalid scope value 'a\\tb': the character '\\t' is not allowed in a "
            "scope token.",
        ),
        (
            "a\nb",
            "Invalid scope value 'a\\nb': the character '\\n' is not allowed in a "
            "scope token.",
        ),
        (
            "a\u00a0b",
            "Invalid scope value 'a\\xa0b': the character '\\xa0' is not allowed in "
            "a scope token.",
        ),
        (
            'a "b',
            "Invalid scope value '\"b': the character '\"' is not allowed in a "
            "scope token.",
        ),
        (
            "a  b",
            "Invalid scope value 'a  b': scope tokens are separated by single spaces.",
        ),
        (
            " a",
            "Invalid scope value ' a': scope tokens are separated by single spaces.",
        ),
        (
            "a\\" + "x" * 100,
            "Invalid scope value 'a\\\\" + "x" * 62 + "': the character '\\\\' is "
            "not allowed in a scope token.",
        ),
    ],
    ids=["empty", "tab", "newline", "nbsp", "quote", "double-space", "leading", "long"],
)
def test_split_scope_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidScopeError) as caught:
        split_scope(text)
    assert caught.value.hint == message
    assert caught.value.error == "invalid_scope"
