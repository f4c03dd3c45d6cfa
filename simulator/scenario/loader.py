"""Read a scenario file; every mistake comes back as ``file:line:col: field: message``.

PyYAML's composer keeps each node's position; pydantic's errors carry a path into the
data. Walking the node tree along that path finds the line to blame: the key for an
unknown field, the value for a wrong one, the enclosing mapping for a missing one. All
errors are reported at once, so an author fixes a file in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .spec import Scenario

#: Where ``smsim run NAME`` looks for NAME.yaml when NAME is not a path.
SHIPPED = Path(__file__).resolve().parents[2] / "scenarios"


class ScenarioError(Exception):
    """A scenario file that can't be used; ``errors`` holds one located line each."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


Mark = tuple[int, int]  # 1-based line, column


class _Positions:
    """Path in the data -> where it is in the file."""

    def __init__(self, root: yaml.Node) -> None:
        self.values: dict[tuple[Any, ...], Mark] = {}
        self.keys: dict[tuple[Any, ...], Mark] = {}
        self.duplicates: list[tuple[tuple[Any, ...], Mark]] = []
        self._walk(root, ())

    @staticmethod
    def _mark(node: yaml.Node) -> Mark:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.values[path] = self._mark(node)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else None
                if k in seen:
                    self.duplicates.append(((*path, k), self._mark(key)))
                seen.add(k)
                self.keys[(*path, k)] = self._mark(key)
                self._walk(value, (*path, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def locate(self, loc: Sequence[Any], *, unknown_key: bool) -> tuple[Mark, str]:
        """The position and dotted name for a pydantic error location.

        Union and discriminator tags in ``loc`` (``'constant'``, ``function-after[...]``)
        are not in the file: they are skipped.
        """
        path: tuple[Any, ...] = ()
        shown: list[str] = []
        for part in loc:
            key: Any = part if isinstance(part, int) else str(part)
            if (*path, key) in self.values:
                path += (key,)
                shown.append(f"[{key}]" if isinstance(key, int) else str(key))
            elif not unknown_key and part is loc[-1]:
                shown.append(str(part))  # a missing field: name it, point at its parent
        name = ".".join(shown).replace(".[", "[") or "(top level)"
        if unknown_key and path in self.keys:
            return self.keys[path], name
        return self.values.get(path, (1, 1)), name


def parse_scenario(
    text: str, source: str = "<scenario>", expected_name: str | None = None
) -> Scenario:
    """Validate ``text``; ``expected_name`` (the file's stem) must equal its ``name``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ScenarioError([f"{where}: {exc.problem}"]) from exc
    if root is None or not isinstance(data, dict):
        raise ScenarioError([f"{source}:1:1: a scenario is a mapping (name:, load:, gates: ...)"])
    pos = _Positions(root)
    errors = [
        f"{source}:{line}:{col}: {'.'.join(str(p) for p in path)}: key given twice"
        for path, (line, col) in pos.duplicates
    ]
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            unknown = err["type"] == "extra_forbidden"
            (line, col), name = pos.locate(err["loc"], unknown_key=unknown)
            msg = "unknown field" if unknown else err["msg"]
            msg = msg.removeprefix("Value error, ")
            errors.append(f"{source}:{line}:{col}: {name}: {msg}")
        raise ScenarioError(errors) from exc
    if expected_name is not None and scenario.name != expected_name:
        line, col = pos.values.get(("name",), (1, 1))
        errors.append(
            f"{source}:{line}:{col}: name: {scenario.name!r} differs from the file name "
            f"{expected_name!r}"
        )
    if errors:
        raise ScenarioError(errors)
    return scenario


def resolve(name_or_path: str) -> Path:
    """A path as given, or NAME looked up in ``$SMSIM_SCENARIOS`` and the shipped folder."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.exists():
        return given
    folders = [Path(p) for p in os.environ.get("SMSIM_SCENARIOS", "").split(os.pathsep) if p]
    for folder in [*folders, SHIPPED]:
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name_or_path}{suffix}"
            if candidate.exists():
                return candidate
    known = ", ".join(shipped_names()) or "none"
    raise ScenarioError([f"{name_or_path}: no such scenario (shipped: {known})"])


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml")) if SHIPPED.is_dir() else []


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: {exc.strerror}"]) from exc
    return parse_scenario(text, str(path), expected_name=path.stem)
