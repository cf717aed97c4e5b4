"""Command-line options built from the run configuration's fields (`run.config`).

Each option's flag is its field name with dashes (plus any `aliases`); its default,
help and choices come from the field, and its type from the annotation (a tuple is a
comma-separated list). The three front ends pick the fields they offer; none restates
a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from virnucpro.run import config as config_module


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_class: type,
    names: Iterable[str],
    *,
    required: Iterable[str] = (),
    overrides_only: bool = False,
) -> None:
    """Add `--name` options for the fields `names` of `config_class`.

    `required` fields must be given; with `overrides_only` no option has a default
    (absent options stay out of the namespace), for front ends that layer the
    command line over other defaults (`deployments/serve.py`).
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class, vars(config_module))
    required = set(required)
    for name in names:
        spec = fields[name]
        kwargs: dict[str, Any] = {"help": spec.metadata["help"], "dest": name}
        if "choices" in spec.metadata:
            kwargs["choices"] = spec.metadata["choices"]
        hint = hints[name]
        if hint is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _parser_for(hint)
        if name in required:
            kwargs["required"] = True
        elif overrides_only:
            kwargs["default"] = argparse.SUPPRESS
        elif hint is not bool:
            kwargs["default"] = spec.default
            if spec.default is not None:
                kwargs["help"] += " (default: %(default)s)"
        flags = [f"--{name.replace('_', '-')}", *spec.metadata.get("aliases", ())]
        parser.add_argument(*flags, **kwargs)


def _parser_for(hint: Any) -> Any:
    """The argparse `type` for a field's annotation (Optional unwrapped)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return lambda text: tuple(item(part) for part in text.split(","))
    return hint if hint in (int, float, Path) else str
