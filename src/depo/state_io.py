"""Checkpoint state without pickle: nested Python state as JSON, its tensors as safetensors.

A trainer's resumable state (optimizer moments, RNG states, the data position, the selector
and its estimator) is a tree of dicts, lists, tuples, numbers, strings, numpy arrays and torch
tensors. `torch.load(weights_only=False)` would restore it, and would also run whatever code a
crafted file holds. Here the tree is written as `NAME.json`, with every torch tensor moved to
`NAME.safetensors` and referenced by key, and read back from those two formats alone, which
hold data only: loading a checkpoint someone else made can run nothing.

Encoding in the JSON: a tensor is {"__tensor__": key}; a numpy array is
{"__ndarray__": dtype, "shape": [...], "data": [...]} (small arrays: RNG states); a tuple is
{"__tuple__": [...]}; a dict whose keys are not all strings (torch optimizer states use int
keys) is {"__items__": [[key, value], ...]}. Python ints stay exact (JSON has no size limit).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from depo.errors import DepoError, describe_exception

MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__items__", "__float__")


def save_state(state: Any, directory: str | Path, name: str = "state") -> None:
    """Write `state` as `directory/NAME.json` + `directory/NAME.safetensors` (each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    _atomic(directory / f"{name}.safetensors", lambda p: save_file(tensors, str(p)))
    _atomic(directory / f"{name}.json", lambda p: p.write_text(json.dumps(tree), encoding="utf-8"))


def load_state(directory: str | Path, name: str = "state") -> Any:
    """The state written by `save_state`; anything else is a one-line DepoError (nothing is executed)."""
    directory = Path(directory)
    json_file, tensor_file = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not json_file.is_file() or not tensor_file.is_file():
        pickled = sorted(p.name for p in directory.glob("*.pt")) if directory.is_dir() else []
        hint = f" ({', '.join(pickled)} is a pickle, which depo does not load)" if pickled else ""
        raise DepoError(f"{directory} holds no depo state ({json_file.name} + {tensor_file.name}){hint}")
    try:
        tree = json.loads(json_file.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_file))
        return _decode(tree, tensors)
    except Exception as exc:  # malformed JSON, a corrupt safetensors header, a dangling tensor key...
        raise DepoError(f"cannot read the state in {directory}: {describe_exception(exc)}") from None


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "data": obj.reshape(-1).tolist()}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k in MARKERS for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a depo state (plain data, numpy arrays and tensors only)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["data"], dtype=np.dtype(obj["__ndarray__"])).reshape(obj["shape"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list | tuple) else key


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
