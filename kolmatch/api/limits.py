"""Query limits checked before execution: depth, aliases, and the cost of list fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

__all__ = ["Limits", "limit_rules"]


@dataclass(frozen=True)
class Limits:
    """Every bound the server enforces (docs/api.md)."""

    max_depth: int = 8
    max_aliases: int = 20
    max_tokens: int = 2_000
    max_cost: int = 20_000
    max_page: int = 100
    max_body_bytes: int = 64 * 1024
    max_batch: int = 10
    timeout_s: float = 10.0


def _first(field: FieldNode, max_page: int) -> int:
    """The page size a list field asks for: its ``first`` literal, else the maximum."""
    for arg in field.arguments or ():
        if arg.name.value == "first":
            if isinstance(arg.value, IntValueNode):
                return max(1, int(arg.value.value))
            return max_page  # a variable: assume the largest page
    return 1


def limit_rules(limits: Limits) -> list[type[ValidationRule]]:
    """Validation rules enforcing ``limits`` (with graphql-core's standard rules)."""

    class QueryLimits(ValidationRule):
        def enter_document(self, node: Any, *_: Any) -> None:
            frags = {
                d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
            }
            aliases = 0
            for d in node.definitions:
                if not isinstance(d, OperationDefinitionNode):
                    continue
                depth, cost, n_alias = _walk(d.selection_set, frags, limits.max_page, 1, set())
                aliases += n_alias
                if depth > limits.max_depth:
                    self.report_error(
                        GraphQLError(
                            f"query is {depth} levels deep; the limit is {limits.max_depth}",
                            extensions={"code": "LIMIT_EXCEEDED"},
                        )
                    )
                if cost > limits.max_cost:
                    self.report_error(
                        GraphQLError(
                            f"query may return about {cost:,} objects; the limit is "
                            f"{limits.max_cost:,} (ask for smaller pages)",
                            extensions={"code": "LIMIT_EXCEEDED"},
                        )
                    )
            if aliases > limits.max_aliases:
                self.report_error(
                    GraphQLError(
                        f"query uses {aliases} aliases; the limit is {limits.max_aliases}",
                        extensions={"code": "LIMIT_EXCEEDED"},
                    )
                )

    return [QueryLimits]


def _walk(
    sel: SelectionSetNode | None,
    frags: dict[str, FragmentDefinitionNode],
    max_page: int,
    mult: int,
    seen: set[str],
) -> tuple[int, int, int]:
    """(depth, cost, aliases) of a selection set; fragment cycles are cut (and reported by
    graphql-core's own NoFragmentCycles rule)."""
    if sel is None:
        return 0, 0, 0
    depth = cost = aliases = 0
    for s in sel.selections:
        if isinstance(s, FieldNode):
            aliases += s.alias is not None
            m = mult * _first(s, max_page)
            d, c, a = _walk(s.selection_set, frags, max_page, m, seen)
            depth = max(depth, 1 + d)
            cost += m + c
            aliases += a
        elif isinstance(s, InlineFragmentNode):
            d, c, a = _walk(s.selection_set, frags, max_page, mult, seen)
            depth, cost, aliases = max(depth, d), cost + c, aliases + a
        elif isinstance(s, FragmentSpreadNode) and s.name.value not in seen:
            f = frags.get(s.name.value)
            if f is not None:
                d, c, a = _walk(f.selection_set, frags, max_page, mult, seen | {s.name.value})
                depth, cost, aliases = max(depth, d), cost + c, aliases + a
    return depth, cost, aliases
