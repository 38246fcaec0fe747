"""The one id rule, applied in ExampleGen (logs and catalogue) and in every signature.

User and item ids are opaque strings: surrounding ASCII whitespace is removed
and nothing else changes (case is kept, and "001" and "1" are different ids).
`tf.strings.strip` removes the same characters, so a padded id in a request
finds the same user or item as in the logs. A typed source (Parquet, TFRecord,
BigQuery) may hold numeric ids: an integer, or a float with an integral value,
is the text of that integer, so user 1 is "1" whichever log names them.
"""

import math
import numbers

ID_WHITESPACE = " \t\n\r\f\v"


def normalize_id(value: str) -> str:
    """Returns `value` without surrounding ASCII whitespace (the same as `tf.strings.strip`)."""
    return value.strip(ID_WHITESPACE)


def id_text(value) -> str:
    """The id text of a value read from any source (see the module doc).

    Raises:
        ValueError: for a list, a boolean, a float that is not a whole number, or
            another type, saying what was found.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return normalize_id(value)
    if value is None:
        return ""
    if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype.kind == "b"):
        raise ValueError(f"a boolean ({value!r}) is not an id")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        raise ValueError(f"the number {value!r} is not whole: ids are text or integers")
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__"):
        raise ValueError(f"a list ({value!r}) is not an id: an id column holds one value per row")
    raise ValueError(f"a {type(value).__name__} ({value!r}) is not an id")
