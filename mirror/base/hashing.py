"""A stable short hash of plain config values: the dataset cache key, checkpoint and
sweep-trial metadata."""

import hashlib
import json


def config_hash(values: dict) -> str:
    """Stable short hash of a JSON-able config dict (dataset cache key, checkpoint metadata)."""
    blob = json.dumps(values, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
