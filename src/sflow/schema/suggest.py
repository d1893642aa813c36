"""`did you mean ...?` for a misspelt field, task, variable or operator name.

The implementation is `sflow.errors.suggest`/`closest`, below every layer, so the Python door
and the dispatch configuration offer the same suggestions without loading the YAML schema.
"""

from sflow.errors import closest, suggest

__all__ = ["closest", "suggest"]
