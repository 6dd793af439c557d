"""The one configuration mechanism (depo.config): typed models, `extends`, dotted overrides, locked keys."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import Field

from depo.config import Config, add_arguments, apply_overrides, from_arguments, load, merge, read_yaml
from depo.errors import DepoError


class Inner(Config):
    rate: float = Field(0.5, ge=0.0, le=1.0)
    """A rate."""
    name: str = "x"


class Outer(Config):
    steps: int = Field(10, ge=0)
    """Training steps."""
    quick: bool = False
    """A switch that spans
    two lines.

    A second paragraph the flag's help leaves out."""
    inner: Inner = Inner()
    tags: dict = Field(default_factory=dict)


def test_unknown_key_names_the_nearest_valid_one():
    with pytest.raises(DepoError, match=r"unknown key 'stpes' \(did you mean 'steps'\?\); valid keys: inner, quick, steps, tags"):
        Outer.build({"stpes": 3})
    with pytest.raises(DepoError, match=r"config inner: unknown key 'rte' \(did you mean 'rate'\?\)"):
        Outer.build({"inner": {"rte": 0.1}})


def test_bad_values_are_one_line_naming_the_key():
    with pytest.raises(DepoError, match=r"^config steps: Input should be greater than or equal to 0$"):
        Outer.build({"steps": -1})
    with pytest.raises(DepoError, match="config inner.rate: Input should be a finite number"):
        Outer.build({"inner": {"rate": float("nan")}})
    with pytest.raises(DepoError, match="must be a mapping"):
        Outer.build([1, 2])  # type: ignore[arg-type]


def test_extends_merges_a_base_at_any_depth(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 5\ninner:\n  rate: 0.2\n  name: base\n")
    (tmp_path / "inner.yaml").write_text("rate: 0.9\n")
    (tmp_path / "run.yaml").write_text("extends: base.yaml\ninner:\n  name: run\ntags:\n  extends: inner.yaml\n  a: 1\n")
    assert read_yaml(tmp_path / "run.yaml") == {"steps": 5, "inner": {"rate": 0.2, "name": "run"}, "tags": {"rate": 0.9, "a": 1}}
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(DepoError, match="loops back"):
        read_yaml(tmp_path / "loop.yaml")


def test_path_keys_follow_the_file_that_holds_them_and_a_set_one_the_working_directory(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "base.yaml").write_text("tags:\n  model: est\n  items: [{model: a}, {model: /abs}]\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.yaml").write_text("extends: ../conf/base.yaml\ninner:\n  name: own\n")
    values = read_yaml(tmp_path / "run" / "run.yaml", path_keys=("model", "name"))
    conf = tmp_path / "run" / "../conf"  # the base's folder, as its `extends:` reached it
    assert values["tags"] == {"model": str(conf / "est"), "items": [{"model": str(conf / "a")}, {"model": "/abs"}]}
    assert values["inner"] == {"name": str(tmp_path / "run" / "own")}
    overridden = load(Outer, tmp_path / "run" / "run.yaml", ["inner.name=rel"], path_keys=("name",))
    assert overridden.inner.name == "rel"  # given on the command line: left to the working directory
    assert read_yaml(tmp_path / "run" / "run.yaml")["inner"] == {"name": "own"}  # no path_keys: values as written


def test_overrides_set_nested_keys_and_parse_yaml_values():
    values = apply_overrides({"inner": {"name": "a"}}, ["inner.rate=0.25", "steps=3", "tags.k=[1, 2]", "inner.name=none"])
    assert values == {"inner": {"name": None, "rate": 0.25}, "steps": 3, "tags": {"k": [1, 2]}}
    with pytest.raises(DepoError, match="expects key=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(DepoError, match="steps is not a mapping"):
        apply_overrides({"steps": 3}, ["steps.x=1"])


def test_locked_keys_are_refused_not_overridden():
    with pytest.raises(DepoError, match="--set inner.rate: the command sets it"):
        load(Outer, None, ["inner.rate=0.1"], locked={"inner": "the command sets it"})
    assert load(Outer, None, ["steps=4"], locked={"inner": "x"}).steps == 4


def test_flags_are_named_like_fields_and_override_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 7\ninner:\n  rate: 0.3\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer, ["steps", "quick", "inner.rate"])
    text = " ".join(parser.format_help().split())
    assert "Training steps." in text and "A switch that spans two lines. (the `quick` setting)" in text
    assert "second paragraph" not in text
    args = parser.parse_args(["--config", str(tmp_path / "c.yaml"), "--rate", "0.6", "--quick", "--set", "steps=9"])
    cfg = from_arguments(Outer, args)
    assert (cfg.steps, cfg.quick, cfg.inner.rate) == (9, True, 0.6)  # --set after flags, flags after the file
    assert from_arguments(Outer, parser.parse_args([])).steps == 10


def test_merge_and_replace():
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4}) == {"a": {"b": 1, "c": 3}, "d": 4}
    cfg = Outer.build({"inner": {"name": "n"}}).replace(inner={"rate": 0.1})
    assert cfg.inner == Inner(rate=0.1, name="n")
    with pytest.raises(DepoError):
        cfg.replace(steps=-3)


class Script(Config):
    source: Path
    """Where to read from."""
    steps: int = Field(10, ge=1)


def test_a_python_m_command_gets_a_flag_per_field_a_positional_and_a_file(tmp_path):
    from depo.config import parse_command

    cfg = parse_command(Script, ["data", "--steps", "3"], prog="python -m x", description="", positional=["source"])
    assert (cfg.source, cfg.steps) == (Path("data"), 3)
    (tmp_path / "s.yaml").write_text("source: from-file\nsteps: 4\n")
    cfg = parse_command(Script, ["--config", str(tmp_path / "s.yaml"), "--set", "steps=5"], prog="python -m x",
                        description="", positional=["source"])
    assert (cfg.source, cfg.steps) == (Path("from-file"), 5)
    with pytest.raises(DepoError, match="x source: Field required"):
        parse_command(Script, [], prog="python -m x", description="", positional=["source"])


def test_names_from_a_set_are_a_comma_list_and_the_error_names_both_sides():
    from depo.config import names_from

    registry = {"a": 1, "b": 2}

    class Pick(Config):
        names: names_from(registry, "thing(s)") = ("a",)

    assert Pick.build({"names": "a, b"}).names == ("a", "b") and Pick.build({"names": ["b"]}).names == ("b",)
    with pytest.raises(DepoError, match="unknown thing\\(s\\) c; choose from a, b"):
        Pick.build({"names": "a,c"})
    with pytest.raises(DepoError, match="unknown thing"):
        Pick.build({"names": ""})
    registry["c"] = 3  # a registry that grows after the model was defined
    assert Pick.build({"names": "c"}).names == ("c",)
