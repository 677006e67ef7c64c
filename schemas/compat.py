"""Schema compatibility: what changed between two versions of one event type's JSON Schema,
named the way a consumer meets it.

Every schema we publish is closed (`additionalProperties: false`, the models' `extra="forbid"`),
so a change is breaking in one of two directions, and usually in both:

- `older messages refused`: a message written under the older schema fails the newer one (a
  property removed or renamed, a type narrowed, an enum value removed, a property made
  required or a required one added, a bound tightened). A reader of the newer version reads
  those messages only through an upcaster (`schemas.upcasters`).
- `refused by older readers`: a message written under the newer schema fails the older one (a
  property added, a type widened, an enum value added, a bound loosened). A reader still on the
  older version must see a higher `schema_version` and refuse it as unsupported, rather than
  misread it or fail on a field it does not know.

So the rule is one: a type whose schema changes in anything a validator checks raises its
`schema_version`, and keeps an upcaster from the version before. Titles, descriptions,
examples and defaults are documentation (every field is always written), and may change under
the same version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["older messages refused", "refused by older readers", "both"]

# Bounds whose higher value accepts less, and those whose higher value accepts more.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
_EXACT = ("pattern", "format", "const")


@dataclass(frozen=True)
class Change:
    path: str
    what: str
    direction: Direction

    def __str__(self) -> str:
        return f"{self.path}: {self.what} ({self.direction})"


def changes(old: dict[str, Any], new: dict[str, Any], name: str = "") -> list[Change]:
    """Every change between two JSON Schemas of one message type that a validator would see,
    `old` being the kept version and `new` the current one. An empty list: the same messages
    pass both."""
    walk = _Walk(old, new)
    walk.node(old, new, name or old.get("title", "$"))
    return walk.found


class _Walk:
    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self.roots = (old_root, new_root)
        self.found: list[Change] = []

    def node(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        olds = self._alternatives(old, 0)
        news = self._alternatives(new, 1)
        # JSON Schema's integers are numbers: between the two it is a widening or a narrowing.
        for narrow, wide, direction in (
            ("integer", "number", "refused by older readers"),
            ("number", "integer", "older messages refused"),
        ):
            if narrow in olds and narrow not in news and wide in news and wide not in olds:
                self._add(path, f"{narrow} became {wide}", direction)  # type: ignore[arg-type]
                self._one(olds.pop(narrow), news.pop(wide), path)
        for kind in olds.keys() - news.keys():
            self._add(path, f"no longer accepts {kind}", "older messages refused")
        for kind in news.keys() - olds.keys():
            self._add(path, f"now accepts {kind}", "refused by older readers")
        for kind in olds.keys() & news.keys():
            self._one(olds[kind], news[kind], path)

    def _add(self, path: str, what: str, direction: Direction) -> None:
        self.found.append(Change(path, what, direction))

    def _resolve(self, schema: dict[str, Any], side: int) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            schema = self.roots[side]["$defs"][name]
        return schema

    def _alternatives(self, schema: dict[str, Any], side: int) -> dict[str, dict[str, Any]]:
        """A schema as the kinds of JSON it accepts, each kind's schema by it (an `anyOf` of
        a type and null is two kinds)."""
        schema = self._resolve(schema, side)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options is None:
            types = schema.get("type", "any")
            if isinstance(types, list):
                return {t: {**schema, "type": t} for t in types}
            return {types: schema}
        kinds: dict[str, dict[str, Any]] = {}
        for option in options:
            kinds.update(self._alternatives(option, side))
        return kinds

    def _one(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        self._enum(old, new, path)
        for key in _EXACT:
            if key in old and key not in new:
                self._add(path, f"{key} {old[key]!r} dropped", "refused by older readers")
            elif key in new and key not in old:
                self._add(path, f"{key} {new[key]!r} added", "older messages refused")
            elif key in old and old[key] != new[key]:
                self._add(path, f"{key} {old[key]!r} became {new[key]!r}", "both")
        for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            self._bound(old, new, key, path)
        if old.get("type") == "object":
            self._object(old, new, path)
        if old.get("type") == "array":
            for key in ("items", "prefixItems"):
                if key in old or key in new:
                    self._items(old.get(key, {}), new.get(key, {}), path)

    def _items(self, old: Any, new: Any, path: str) -> None:
        if isinstance(old, list) or isinstance(new, list):  # prefixItems: one per position
            old_list, new_list = list(old or []), list(new or [])
            for n, (a, b) in enumerate(zip(old_list, new_list, strict=False)):
                self.node(a, b, f"{path}[{n}]")
            if len(old_list) != len(new_list):
                self._add(f"{path}[]", f"{len(old_list)} positions became {len(new_list)}", "both")
            return
        self.node(old, new, f"{path}[]")

    def _enum(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if "enum" not in old and "enum" not in new:
            return
        if "enum" not in new:
            self._add(path, "no longer limited to its enum values", "refused by older readers")
            return
        if "enum" not in old:
            self._add(path, f"limited to {new['enum']!r}", "older messages refused")
            return
        removed = [v for v in old["enum"] if v not in new["enum"]]
        added = [v for v in new["enum"] if v not in old["enum"]]
        if removed:
            self._add(path, f"enum value(s) {removed!r} removed", "older messages refused")
        if added:
            self._add(path, f"enum value(s) {added!r} added", "refused by older readers")

    def _bound(self, old: dict[str, Any], new: dict[str, Any], key: str, path: str) -> None:
        if old.get(key) == new.get(key):
            return
        lower = key in _LOWER_BOUNDS
        if key not in new:
            self._add(path, f"{key} {old[key]} dropped", "refused by older readers")
        elif key not in old:
            self._add(path, f"{key} {new[key]} added", "older messages refused")
        else:
            tighter = new[key] > old[key] if lower else new[key] < old[key]
            self._add(
                path,
                f"{key} {old[key]} became {new[key]}",
                "older messages refused" if tighter else "refused by older readers",
            )

    def _object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        old_closed = old.get("additionalProperties") is False
        new_closed = new.get("additionalProperties") is False
        if new_closed and not old_closed:
            self._add(path, "closed to properties it does not name", "older messages refused")
        if old_closed and not new_closed:
            self._add(path, "opened to properties it does not name", "refused by older readers")
        for name in old_props.keys() - new_props.keys():
            # A message of the older version carries it; a closed newer schema refuses it.
            direction: Direction = "both" if name in old_required else "older messages refused"
            if not new_closed:
                direction = "refused by older readers"
            if name in old_required or new_closed:
                self._add(f"{path}.{name}", "property removed", direction)
        for name in new_props.keys() - old_props.keys():
            required = name in new_required
            what = "required property added" if required else "optional property added"
            if old_closed:
                direction = "both" if required else "refused by older readers"
            else:
                direction = "older messages refused"
            if required or old_closed:
                self._add(f"{path}.{name}", what, direction)
        for name in old_props.keys() & new_props.keys():
            here = f"{path}.{name}"
            if name in new_required and name not in old_required:
                self._add(here, "made required", "older messages refused")
            if name in old_required and name not in new_required:
                self._add(here, "made optional", "refused by older readers")
            self.node(old_props[name], new_props[name], here)
