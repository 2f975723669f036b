"""Per-class recall and precision (hop, jump, leap, help) from a confusion matrix laid out
as the paper's Table 3: rows predicted, columns actual.

recall_c = correct_c / rows whose label is c; precision_c = correct_c / rows predicted c.
Where a ratio is undefined it is None (JSON null), never NaN or 0, and `undefined` says
why: a class the model never predicts has no precision, one absent from the split has no
recall. `macro_recall` is the mean recall over the classes present (balanced accuracy).
"""

import numpy as np

from mirror.env.constants import ACTION_NAMES

NOTE = (
    "recall = correct / rows of the class, precision = correct / rows predicted as the class; "
    "null where undefined (a class never predicted has no precision, one absent from the split has no recall)"
)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def per_class_metrics(confusion) -> dict:
    """confusion int[4, 4] (rows predicted, columns actual) -> JSON-ready
    {"per_class": {name: {recall, precision, actual, predicted}}, "macro_recall", "undefined"}."""
    confusion = np.asarray(confusion, np.int64)
    correct, predicted, actual = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    per_class, undefined = {}, []
    for c, name in enumerate(ACTION_NAMES):
        per_class[name] = {
            "recall": _ratio(int(correct[c]), int(actual[c])),
            "precision": _ratio(int(correct[c]), int(predicted[c])),
            "actual": int(actual[c]),
            "predicted": int(predicted[c]),
        }
        if predicted[c] == 0:
            undefined.append(f"precision of {name}: never predicted")
        if actual[c] == 0:
            undefined.append(f"recall of {name}: no {name} rows")
    recalls = [m["recall"] for m in per_class.values() if m["recall"] is not None]
    return {"per_class": per_class, "macro_recall": float(np.mean(recalls)) if recalls else None, "undefined": undefined}
