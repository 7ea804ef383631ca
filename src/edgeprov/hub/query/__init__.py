"""The hub's query language (spec/hub-protocol.md §4): parse once, then evaluate against twin documents.

Pure domain code: it knows the twin document's shape and nothing of where twins are stored.
"""

from edgeprov.hub.query.evaluate import evaluate, holds
from edgeprov.hub.query.nodes import UNDEFINED, Collection, Condition, Query
from edgeprov.hub.query.parser import parse_condition, parse_query
from edgeprov.hub.query.results import Aggregation, project

__all__ = [
    "UNDEFINED",
    "Aggregation",
    "Collection",
    "Condition",
    "Query",
    "evaluate",
    "holds",
    "parse_condition",
    "parse_query",
    "project",
]
