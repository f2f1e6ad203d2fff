"""Spin variable names and `{{ name }}` templates (spin-spec §2.3, §5.2). Pure.

Source: spinframework/spin crates/expressions/src/{lib,template}.rs. A template is literal text with
`{{ expr }}` parts; `expr` (trimmed) names an app variable. There is no escaping and no other syntax.
"""

from __future__ import annotations

from collections.abc import Callable


class TemplateError(ValueError):
    """A template that Spin would refuse (unmatched '{{')."""


def variable_name_error(name: str) -> str | None:
    """Why `name` is not a valid Spin variable name, or None if it is (Key::validate)."""
    if not name:
        return "must not be empty"
    for c in name:
        if not (("a" <= c <= "z") or ("0" <= c <= "9") or c == "_"):
            return (
                f"invalid character {c!r}. Variable names may contain only lower-case letters, "
                "numbers, and underscores."
            )
    if not ("a" <= name[0] <= "z"):
        return "must start with a lowercase ASCII letter"
    if name[-1] == "_":
        return "must end with a lowercase ASCII letter or digit"
    if "__" in name:
        return "must not contain multiple consecutive underscores"
    return None


def parse_template(template: str) -> tuple[tuple[bool, str], ...]:
    """The parts of a template as (is_expression, text). Raises TemplateError."""
    parts: list[tuple[bool, str]] = []
    rest = template
    while rest:
        if rest.startswith("{{"):
            expr, sep, after = rest[2:].partition("}}")
            if not sep:
                raise TemplateError("unmatched '{{' in template")
            parts.append((True, expr.strip()))
            rest = after
        else:
            idx = rest.find("{{")
            lit, rest = (rest, "") if idx < 0 else (rest[:idx], rest[idx:])
            parts.append((False, lit))
    return tuple(parts)


def template_variables(template: str) -> tuple[str, ...]:
    """The variable names a template refers to, in order (with repeats). Raises TemplateError."""
    return tuple(text for is_expr, text in parse_template(template) if is_expr)


def is_literal(template: str) -> bool:
    """True if the template has no `{{ … }}` part. Raises TemplateError."""
    return not template_variables(template)


def render_template(template: str, resolve: Callable[[str], str]) -> str:
    """Render a component config template; `resolve` maps an app variable name to its value.

    Raises TemplateError for a malformed template; whatever `resolve` raises propagates.
    """
    return "".join(resolve(text) if is_expr else text for is_expr, text in parse_template(template))
