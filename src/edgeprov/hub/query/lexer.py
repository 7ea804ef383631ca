"""Tokens of the hub's query language (spec/hub-protocol.md §4).

A query is short (at most 8 KB), so it is tokenized whole before parsing; every token keeps
its offset so that an error can say where it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edgeprov.errors import InvalidQuery
from edgeprov.hub.query.functions import json_number

MAX_QUERY_CHARS = 8192
SNIPPET_CHARS = 24


class Kind(StrEnum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    QUOTED_NAME = "quoted name"
    SYMBOL = "symbol"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    value: Any
    position: int

    def is_word(self, *words: str) -> bool:
        return self.kind is Kind.WORD and self.text.upper() in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.kind is Kind.SYMBOL and self.text in symbols

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the query"
        return f"{self.kind} {self.text!r}" if self.kind is not Kind.SYMBOL else repr(self.text)


# Longest first, so that "<=" is not read as "<" then "=".
_SYMBOLS = ("<=", ">=", "!=", "<>", "(", ")", "[", "]", ",", ".", "*", "+", "-", "/", "%", "=", "<", ">")
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s+")
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def syntax_error(text: str, position: int, message: str) -> InvalidQuery:
    """An error that says what went wrong, where (1-based), and shows the text there."""
    near = text[position : position + SNIPPET_CHARS]
    where = f" (near {near!r})" if near.strip() else ""
    return InvalidQuery(f"invalid query: {message} at position {position + 1}{where}")


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"invalid query: it is {len(text)} characters long; at most {MAX_QUERY_CHARS} are allowed")
    tokens: list[Token] = []
    position = 0
    while True:
        space = _SPACE.match(text, position)
        if space:
            position = space.end()
        if position >= len(text):
            tokens.append(Token(Kind.END, "", None, position))
            return tokens
        token = _next_token(text, position)
        tokens.append(token)
        position += len(token.text)


def _next_token(text: str, position: int) -> Token:
    char = text[position]
    if char in "'\"":
        return _string(text, position)
    if text.startswith("[[", position):
        end = text.find("]]", position + 2)
        if end < 0:
            raise syntax_error(text, position, "a name opened with '[[' is not closed with ']]'")
        name = text[position + 2 : end]
        if not name:
            raise syntax_error(text, position, "'[[]]' names nothing")
        return Token(Kind.QUOTED_NAME, text[position : end + 2], name, position)
    if word := _WORD.match(text, position):
        return Token(Kind.WORD, word.group(), word.group(), position)
    if number := _NUMBER.match(text, position):
        return _number(text, number.group(), position)
    for symbol in _SYMBOLS:
        if text.startswith(symbol, position):
            return Token(Kind.SYMBOL, symbol, symbol, position)
    raise syntax_error(text, position, f"unexpected character {char!r}")


def _number(text: str, literal: str, position: int) -> Token:
    end = position + len(literal)
    if end < len(text) and (text[end].isalnum() or text[end] in "_$"):
        raise syntax_error(text, position, f"{literal + text[end]!r}... is neither a number nor a name")
    if literal[:2] in ("0x", "0X"):
        return Token(Kind.NUMBER, literal, json_number(int(literal, 16)), position)
    is_float = any(c in literal for c in ".eE")
    return Token(Kind.NUMBER, literal, float(literal) if is_float else json_number(int(literal)), position)


def _string(text: str, start: int) -> Token:
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return Token(Kind.STRING, text[start : position + 1], "".join(chars), start)
        if char == "\\":
            escaped, position = _escape(text, position)
            chars.append(escaped)
            continue
        chars.append(char)
        position += 1
    raise syntax_error(text, start, f"the string starting with {quote} is not closed")


def _escape(text: str, position: int) -> tuple[str, int]:
    """The character a backslash escape stands for, and the position after it."""
    code = text[position + 1 : position + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], position + 2
    if code == "u":
        digits = text[position + 2 : position + 6]
        if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
            return chr(int(digits, 16)), position + 6
        raise syntax_error(text, position, "'\\u' must be followed by four hexadecimal digits")
    raise syntax_error(text, position, f"unknown escape '\\{code}' in a string")
