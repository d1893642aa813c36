"""The models' field types are objects, not strings: `msgspec.convert` reads them without evaluating
text, which was most of a one-task run's first load."""

from __future__ import annotations

import importlib
import pkgutil

import sflow.schema
from sflow.schema.base import SpecModel


def _models() -> list[type]:
    """Every model a workflow file is converted to (a module's own records are not converted)."""
    out = []
    for info in pkgutil.iter_modules(sflow.schema.__path__):
        module = importlib.import_module(f"sflow.schema.{info.name}")
        out += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, SpecModel) and obj.__module__ == module.__name__
        ]
    return out


def test_every_model_annotation_is_a_type_not_a_string():
    models = _models()
    assert len(models) > 30
    as_text = {
        f"{model.__module__}.{model.__qualname__}.{name}"
        for model in models
        for name, hint in vars(model).get("__annotations__", {}).items()
        if isinstance(hint, str)
    }
    assert not as_text, "a model module has `from __future__ import annotations` or a quoted type"
