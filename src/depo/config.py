"""The one configuration mechanism: typed pydantic models, YAML files that extend a base, dotted overrides.

Every configurable thing in depo (training, the estimator, each selector's options, every
benchmark, the route service, DEPO's block in verl's config) is a `Config` subclass. Why
pydantic rather than a hand-written loader: its type coercion and error locations are exactly
what a config loader needs, and its models are also the documentation (field docstrings are
the field descriptions, as TRL's dataclass fields are its docs).

What every config gets from here:
- unknown keys are refused with the nearest valid name ("did you mean ...?");
- a wrong type or value is one line naming the key (`depo: error: config batch_size: ...`);
- a YAML mapping may hold `extends: other.yaml` (a path relative to the file), at the top or in
  any nested mapping: the base is read first and the mapping's own keys are merged into it,
  mappings key by key;
- a loader may name `path_keys`: their relative values are taken relative to the file that holds
  them (a base's paths follow the base), while a `--set` value stays relative to the working
  directory;
- `--set a.b=value` overrides any key, nested ones by dots; the value is parsed as YAML;
- keys a command sets itself can be `locked`: a `--set` of them is refused, not silently
  overridden.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from depo.errors import DepoError

C = TypeVar("C", bound="Config")
EXTENDS = "extends"


def _comma_split(value: Any) -> Any:
    """`"a, b"` -> ("a", "b"): a flag gives a comma list, a YAML file a list."""
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_split)]
"""A tuple of names, written as a YAML list or as one comma-separated string (`--methods a,b`)."""


def names_from(choices: Collection[str], what: str) -> Any:
    """A CommaList of at least one name, each one of `choices` (read when a value is checked, so a
    registry that grows stays current); the error names the unknown ones and the valid ones."""

    def check(names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(choices)}")
        return names

    return Annotated[CommaList, AfterValidator(check)]


class Config(BaseModel):
    """Base of every depo configuration: unknown keys forbidden, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True, allow_inf_nan=False)

    @classmethod
    def build(cls: type[C], values: Mapping[str, Any] | None = None, *, what: str = "config") -> C:
        """Validate `values` into this model; any problem becomes one DepoError line."""
        if values is not None and not isinstance(values, Mapping):
            raise DepoError(f"{what} must be a mapping of key: value, got {type(values).__name__}")
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as exc:
            raise DepoError(describe_error(exc, cls, what)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (what a YAML or JSON file holds)."""
        return self.model_dump(mode="json")

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with `changes` applied (nested mappings merged key by key)."""
        return type(self).build(merge(self.to_dict(), changes))


def describe_error(exc: ValidationError, model: type[BaseModel], what: str = "config") -> str:
    """The first error of a validation, as one line a user can act on."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        nested = _model_at(model, err["loc"][:-1])
        valid = sorted(nested.model_fields) if nested is not None else []
        hint = nearest_hint(key, valid)
        shown = key if key.isprintable() else repr(key)
        where = ".".join(str(p) for p in err["loc"][:-1])
        prefix = f"{what} {where}: " if where else f"{what}: "
        if not valid:
            return f"{prefix}unknown key {shown!r} (it takes no options)"
        return f"{prefix}unknown key {shown!r}{hint}; valid keys: {', '.join(valid)}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{what} {loc}: {message}" if loc else f"{what}: {message}"


def nearest_hint(name: str, valid: Collection[str]) -> str:
    """` (did you mean 'x'?)` for the valid name closest to a misspelt `name`, else ''."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The (nested) model at the field path `loc`, or None where the path leaves the models."""
    current = model
    for part in loc:
        field = current.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return None
        current = field.annotation
    return current


# ---------------------------------------------------------------------------------------- files
def read_yaml(path: str | Path, what: str = "config", path_keys: Collection[str] = ()) -> dict[str, Any]:
    """The mapping in a YAML file ({} for an empty file), with its `extends:` chain resolved and
    the relative values of `path_keys` (at any depth, lists of mappings included) made relative
    to the file each was written in."""
    return _read(Path(path), what, seen=(), path_keys=frozenset(path_keys))


def _read(path: Path, what: str, seen: tuple[Path, ...], path_keys: frozenset[str]) -> dict[str, Any]:
    if not path.is_file():
        raise DepoError(f"{what} file not found: {path}")
    if path.resolve() in seen:
        raise DepoError(f"{what} {path}: 'extends' loops back to itself")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DepoError(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DepoError(f"{what} {path} is not valid YAML: {str(exc).replace(chr(10), ' ')}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise DepoError(f"{what} {path} must be a mapping of key: value, got {type(values).__name__}")
    return _extend(_anchor(values, path.parent, path_keys), path, what, seen + (path.resolve(),), path_keys)


def _anchor(node: Any, folder: Path, path_keys: frozenset[str]) -> Any:
    """`node` with each relative string under a key in `path_keys` joined onto `folder`."""
    if isinstance(node, list):
        return [_anchor(v, folder, path_keys) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: str(folder / v) if k in path_keys and isinstance(v, str) and v and not Path(v).is_absolute()
            else _anchor(v, folder, path_keys) for k, v in node.items()}


def _extend(node: dict[str, Any], path: Path, what: str, seen: tuple[Path, ...], path_keys: frozenset[str]) -> dict[str, Any]:
    """`node` with every `extends: FILE` in it (at any depth) replaced by FILE's mapping merged under it."""
    node = {k: _extend(v, path, what, seen, path_keys) if isinstance(v, dict) else v for k, v in node.items()}
    base = node.pop(EXTENDS, None)
    if base is None:
        return node
    if not isinstance(base, str):
        raise DepoError(f"{what} {path}: 'extends' must be a file path, got {base!r}")
    return merge(_read(path.parent / base, what, seen, path_keys), node)


def write_yaml(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied; where both hold a mapping, merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merge(out[key], value) if both else value
    return out


# ---------------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    path = [p.strip() for p in key.split(".")]
    if not sep or not all(path):
        raise DepoError(f"--set expects key=value (dots for nested keys), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and value.strip().lower() == "none":  # as Python spells null
        value = None
    return path, value


def apply_overrides(values: Mapping[str, Any], overrides: Iterable[str], *, locked: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`values` with each `key=value` override set; a key in `locked` (key -> why) is refused."""
    out = dict(values)
    for text in overrides:
        path, value = parse_override(text)
        dotted = ".".join(path)
        for key, why in (locked or {}).items():
            if dotted == key or dotted.startswith(key + "."):
                raise DepoError(f"--set {dotted}: {why}")
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is not None and not isinstance(child, Mapping):
                raise DepoError(f"--set {dotted}: {part} is not a mapping (it is {child!r})")
            node[part] = dict(child or {})
            node = node[part]
        node[path[-1]] = value
    return out


def load(model: type[C], path: str | Path | None = None, overrides: Iterable[str] = (), *,
         locked: Mapping[str, str] | None = None, path_keys: Collection[str] = (), what: str = "config") -> C:
    """`model` from the YAML file at `path` (with its `extends` and `path_keys`), then overrides."""
    values = read_yaml(path, what, path_keys) if path is not None else {}
    return model.build(apply_overrides(values, overrides, locked=locked), what=what)


# ---------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser, model: type[Config], flags: Sequence[str] = (),
                  aliases: Mapping[str, str] | None = None) -> None:
    """`--config FILE`, `--set KEY=VALUE` and one `--field-name` flag per name in `flags`.

    A flag is named like its field (dots become dashes: `train.max_steps` is `--max-steps`;
    underscores become dashes) and documented by the field's docstring; a boolean field is a
    switch. `aliases` gives a field a second, older flag (`{"max_steps": "--steps"}`). Flags
    only override what is given on the command line.
    """
    parser.add_argument("--config", help="YAML file of this command's settings (may `extends:` another)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any setting by its name, nested keys by dots (repeatable)")
    for name in flags:
        field = _field(model, name)
        options = ["--" + name.split(".")[-1].replace("_", "-"), *([aliases[name]] if aliases and name in aliases else [])]
        help_text = " ".join((field.description or "").split("\n\n")[0].split()) + f" (the `{name}` setting)"
        switch = field.annotation is bool
        kind = {"action": "store_const", "const": "true"} if switch else {"metavar": "VALUE"}
        parser.add_argument(*options, dest=f"flag:{name}", default=None, help=help_text, **kind)


def from_arguments(model: type[C], args: argparse.Namespace, *, what: str = "config") -> C:
    """The config a command was given: its file, then flags, then `--set`s."""
    return load(model, args.config, overrides_from(args), what=what)


def parse_command(model: type[C], argv: Sequence[str] | None, *, prog: str, description: str,
                  flags: Sequence[str] | None = None, aliases: Mapping[str, str] | None = None,
                  positional: Sequence[str] = ()) -> C:
    """The settings of a `python -m` command: `--config`, one flag per field (all fields unless
    `flags` names some), `--set`; the fields in `positional` are taken as positional arguments."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for name in positional:
        parser.add_argument(f"flag:{name}", nargs="?", metavar=name.upper(), help=_field(model, name).description)
    names = [n for n in (flags if flags is not None else model.model_fields) if n not in positional]
    add_arguments(parser, model, names, aliases)
    return from_arguments(model, parser.parse_args(argv), what=prog.removeprefix("python -m "))


def overrides_from(args: argparse.Namespace) -> list[str]:
    """The `key=value` overrides a command line gave: its field flags first, then its `--set`s."""
    flags = [f"{k.removeprefix('flag:')}={v}" for k, v in vars(args).items() if k.startswith("flag:") and v is not None]
    return [*flags, *args.overrides]


def _field(model: type[BaseModel], dotted: str):
    *path, name = dotted.split(".")
    return _model_at(model, path).model_fields[name]
