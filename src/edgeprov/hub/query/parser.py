"""A recursive-descent parser for the hub's query language (spec/hub-protocol.md §4).

    query      := SELECT [TOP n] ('*' | item {',' item}) FROM collection [WHERE expr] [GROUP BY path {',' path}]
    item       := (aggregate | expr) [[AS] name]
    condition  := [FROM collection WHERE] expr | '*'
    expr       := and {OR and}          and := not {AND not}          not := {NOT} comparison
    comparison := sum [('=' | '!=' | '<>' | '<' | '>' | '<=' | '>=') sum | [NOT] IN list | NIN list]
    sum        := product {('+' | '-') product}     product := unary {('*' | '/' | '%') unary}
    unary      := {'-'} primary
    primary    := literal | path | function '(' [expr {',' expr}] ')' | '[' [expr {',' expr}] ']' | '(' expr ')'

Keywords and function names are case-insensitive; so are the twin's system property names
(``DeviceId`` is ``deviceId``), which are stored here in their canonical case.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeprov.errors import InvalidQuery
from edgeprov.hub.query.functions import FUNCTIONS
from edgeprov.hub.query.lexer import Kind, Token, syntax_error, tokenize
from edgeprov.hub.query.nodes import (
    UNDEFINED,
    Aggregate,
    Arithmetic,
    Array,
    Call,
    Collection,
    Comparison,
    Condition,
    Expression,
    Literal,
    Logical,
    Membership,
    Negation,
    Path,
    Query,
    SelectItem,
)

MAX_NESTING = 20
MAX_PREFIXES = 8
AGGREGATES = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX"})
RESERVED = frozenset({"SELECT", "FROM", "WHERE", "GROUP", "BY", "TOP", "AS", "AND", "OR", "NOT", "IN", "NIN", "ORDER"})
CONSTANTS = {"TRUE": True, "FALSE": False, "NULL": None, "UNDEFINED": UNDEFINED}
COMPARISONS = ("=", "!=", "<>", "<=", ">=", "<", ">")
_SYSTEM_NAMES = (
    "deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime", "connectionState",
    "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint", "modelId", "version",
    "capabilities", "deviceScope", "parentScopes", "tags", "properties", "configurations",
)  # fmt: skip
TOP_LEVEL = {name.lower(): name for name in _SYSTEM_NAMES}
NESTED = {
    "properties": {"desired": "desired", "reported": "reported"},
    "capabilities": {"iotedge": "iotEdge"},
    "x509Thumbprint": {"primarythumbprint": "primaryThumbprint", "secondarythumbprint": "secondaryThumbprint"},
}


def parse_query(text: str) -> Query:
    return _Parser(text).query()


def parse_condition(text: str) -> Condition:
    """A target condition: a WHERE expression, optionally after ``FROM collection WHERE``; ``*`` is every twin."""
    return _Parser(text).condition()


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = tokenize(text)
        self._index = 0
        self._nesting = 0

    # -- tokens ----------------------------------------------------------------------------------
    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._peek()
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token

    def _accept_word(self, *words: str) -> Token | None:
        return self._advance() if self._peek().is_word(*words) else None

    def _accept_symbol(self, *symbols: str) -> Token | None:
        return self._advance() if self._peek().is_symbol(*symbols) else None

    def _expect_word(self, word: str) -> None:
        if not self._accept_word(word):
            raise self._expected(word)

    def _expect_symbol(self, symbol: str) -> None:
        if not self._accept_symbol(symbol):
            raise self._expected(repr(symbol))

    def _expected(self, expected: str, token: Token | None = None) -> InvalidQuery:
        return self._error(f"expected {expected} but found {(token or self._peek()).describe()}", token)

    def _error(self, message: str, token: Token | None = None) -> InvalidQuery:
        return syntax_error(self._text, (token or self._peek()).position, message)

    # -- statements --------------------------------------------------------------------------------
    def query(self) -> Query:
        self._expect_word("SELECT")
        top = self._top() if self._accept_word("TOP") else None
        items = None if self._accept_symbol("*") else self._select_items()
        self._expect_word("FROM")
        collection = self._collection()
        where = self._expression() if self._accept_word("WHERE") else None
        group_by = self._group_by() if self._accept_word("GROUP") else ()
        if self._peek().is_word("ORDER"):
            raise self._error("ORDER BY is not supported (results come in device id order)")
        self._end("WHERE, GROUP BY or the end of the query")
        query = Query(items, collection, where, group_by, top)
        _check_grouping(query)
        return query

    def condition(self) -> Condition:
        collection = None
        if self._accept_word("FROM"):
            collection = self._collection()
            self._expect_word("WHERE")
        elif self._peek().is_symbol("*") and self._peek(1).kind is Kind.END:
            return Condition(None, None, "*")
        start = self._peek().position
        expression = self._expression()
        self._end("AND, OR or the end of the condition")
        return Condition(collection, expression, self._text[start:].strip())

    def _end(self, expected: str) -> None:
        if self._peek().kind is not Kind.END:
            raise self._expected(expected)

    def _top(self) -> int:
        token = self._advance()
        if token.kind is not Kind.NUMBER or not isinstance(token.value, int) or token.value < 0:
            raise self._expected("a whole number after TOP", token)
        return int(token.value)

    def _collection(self) -> Collection:
        token = self._advance()
        if not token.is_word("DEVICES"):
            raise self._expected("devices or devices.modules", token)
        if not self._accept_symbol("."):
            return Collection.DEVICES
        token = self._advance()
        if token.is_word("MODULES"):
            return Collection.MODULES
        if token.is_word("JOBS"):
            raise self._error("devices.jobs is not supported: query devices or devices.modules", token)
        raise self._expected("modules after 'devices.'", token)

    def _select_items(self) -> tuple[SelectItem, ...]:
        items: list[SelectItem] = []
        while True:
            start = self._peek()
            value = self._aggregate() or self._expression()
            name = self._alias() or _default_name(value, len(items) + 1)
            if any(item.name == name for item in items):
                raise self._error(f"two SELECT items are named {name!r}; rename one with AS", start)
            items.append(SelectItem(value, name))
            if not self._accept_symbol(","):
                return tuple(items)

    def _aggregate(self) -> Aggregate | None:
        token = self._peek()
        if token.kind is not Kind.WORD or token.text.upper() not in AGGREGATES or not self._peek(1).is_symbol("("):
            return None
        self._index += 2
        function = token.text.upper()
        if function == "COUNT":
            self._expect_symbol(")")
            return Aggregate(function, None)
        argument = self._expression()
        self._expect_symbol(")")
        return Aggregate(function, argument)

    def _alias(self) -> str | None:
        if self._accept_word("AS"):
            token = self._advance()
            if token.kind is not Kind.WORD or token.text.upper() in RESERVED:
                raise self._expected("a name after AS", token)
            return token.text
        token = self._peek()
        if token.kind is Kind.WORD and token.text.upper() not in RESERVED:
            self._advance()
            return token.text
        return None

    def _group_by(self) -> tuple[Path, ...]:
        self._expect_word("BY")
        paths: list[Path] = []
        while True:
            token = self._peek()
            value = self._expression()
            if not isinstance(value, Path):
                raise self._expected("a property path in GROUP BY", token)
            paths.append(value)
            if not self._accept_symbol(","):
                return tuple(paths)

    # -- expressions ---------------------------------------------------------------------------------
    def _expression(self) -> Expression:
        self._nesting += 1
        if self._nesting > MAX_NESTING:
            raise self._error(f"the expression nests deeper than {MAX_NESTING} levels")
        try:
            return self._chain("OR", self._and)
        finally:
            self._nesting -= 1

    def _and(self) -> Expression:
        return self._chain("AND", self._not)

    def _chain(self, word: str, operand: Callable[[], Expression]) -> Expression:
        operands = [operand()]
        while self._accept_word(word):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Logical(word, tuple(operands))

    def _not(self) -> Expression:
        count = self._prefixes(lambda: self._accept_word("NOT") is not None)
        expression = self._comparison()
        for _ in range(count):
            expression = Negation("NOT", expression)
        return expression

    def _prefixes(self, accept: Callable[[], bool]) -> int:
        start, count = self._peek(), 0
        while accept():
            count += 1
            if count > MAX_PREFIXES:
                raise self._error(f"more than {MAX_PREFIXES} prefix operators in a row", start)
        return count

    def _comparison(self) -> Expression:
        left = self._sum()
        if operator := self._accept_symbol(*COMPARISONS):
            return Comparison(operator.text, left, self._sum())
        if self._accept_word("IN"):
            return Membership(left, self._list(), negated=False)
        if self._accept_word("NIN"):
            return Membership(left, self._list(), negated=True)
        if self._peek().is_word("NOT") and self._peek(1).is_word("IN"):
            self._index += 2
            return Membership(left, self._list(), negated=True)
        return left

    def _list(self) -> tuple[Expression, ...]:
        opening = self._accept_symbol("[", "(")
        if opening is None:
            raise self._expected("'[' to start the list of values")
        return self._items("]" if opening.text == "[" else ")")

    def _items(self, closing: str) -> tuple[Expression, ...]:
        items: list[Expression] = []
        if self._accept_symbol(closing):
            return ()
        while True:
            items.append(self._expression())
            if self._accept_symbol(closing):
                return tuple(items)
            if not self._accept_symbol(","):
                raise self._expected(f"',' or {closing!r}")

    def _sum(self) -> Expression:
        return self._arithmetic(("+", "-"), self._product)

    def _product(self) -> Expression:
        return self._arithmetic(("*", "/", "%"), self._unary)

    def _arithmetic(self, operators: tuple[str, ...], operand: Callable[[], Expression]) -> Expression:
        first = operand()
        rest: list[tuple[str, Expression]] = []
        while operator := self._accept_symbol(*operators):
            rest.append((operator.text, operand()))
        return Arithmetic(first, tuple(rest)) if rest else first

    def _unary(self) -> Expression:
        count = self._prefixes(lambda: self._accept_symbol("-") is not None)
        expression = self._primary()
        for _ in range(count):
            expression = _negative(expression)
        return expression

    def _primary(self) -> Expression:
        token = self._advance()
        if token.kind in (Kind.STRING, Kind.NUMBER):
            return Literal(token.value)
        if token.is_symbol("("):
            expression = self._expression()
            self._expect_symbol(")")
            return expression
        if token.is_symbol("["):
            return Array(self._items("]"))
        if token.kind is Kind.WORD and token.text.upper() in CONSTANTS:
            return Literal(CONSTANTS[token.text.upper()])
        if token.kind is Kind.WORD and token.text.upper() not in RESERVED:
            return self._call(token) if self._peek().is_symbol("(") else self._path(token)
        raise self._expected("a value, a property path or '('", token)

    def _call(self, name: Token) -> Expression:
        function = name.text.upper()
        if function in AGGREGATES:
            raise self._error(f"{function}() may only stand alone as a SELECT item", name)
        if function not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise self._error(f"unknown function {name.text!r} (known: {known})", name)
        self._advance()
        arguments = self._items(")")
        spec = FUNCTIONS[function]
        too_many = spec.max_arguments is not None and len(arguments) > spec.max_arguments
        if len(arguments) < spec.min_arguments or too_many:
            raise self._error(f"{function} takes {spec.arity()}, not {len(arguments)}", name)
        return Call(function, arguments)

    def _path(self, first: Token) -> Path:
        segments = [first.text]
        while self._accept_symbol("."):
            token = self._advance()
            if token.kind not in (Kind.WORD, Kind.QUOTED_NAME):
                raise self._expected("a property name after '.'", token)
            segments.append(str(token.value))
        return Path(_canonical(segments))


def _negative(expression: Expression) -> Expression:
    if isinstance(expression, Literal) and isinstance(expression.value, int | float):
        return Literal(-expression.value)
    return Negation("-", expression)


def _canonical(segments: list[str]) -> tuple[str, ...]:
    # The collection may prefix a path ("devices.capabilities.iotEdge"): no twin has such a field.
    if len(segments) > 1 and segments[0].lower() == "devices":
        segments = segments[1:]
        if len(segments) > 1 and segments[0].lower() == "modules":
            segments = segments[1:]
    first = TOP_LEVEL.get(segments[0].lower(), segments[0])
    canonical = [first]
    if len(segments) > 1:
        canonical.append(NESTED.get(first, {}).get(segments[1].lower(), segments[1]))
    return (*canonical, *segments[2:])


def _default_name(value: Expression | Aggregate, position: int) -> str:
    """A path is named by its last segment; anything else by its position, ``$1``, ``$2``…"""
    return value.name if isinstance(value, Path) else f"${position}"


def _check_grouping(query: Query) -> None:
    if not query.aggregates:
        return
    if query.items is None:
        raise InvalidQuery("invalid query: SELECT * cannot be combined with GROUP BY")
    for item in query.items:
        if not isinstance(item.value, Aggregate) and item.value not in query.group_by:
            raise InvalidQuery(
                f"invalid query: SELECT item {item.name!r} is neither an aggregate (COUNT, SUM, AVG, MIN, MAX) "
                "nor a GROUP BY path"
            )
