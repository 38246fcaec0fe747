"""The one id rule, applied in ExampleGen (logs and catalogue) and in every signature.

User and item ids are opaque strings: surrounding ASCII whitespace is removed
and nothing else changes (case is kept, and "001" and "1" are different ids).
`tf.strings.strip` removes the same characters, so a padded id in a request
finds the same user or item as in the logs.
"""

ID_WHITESPACE = " \t\n\r\f\v"


def normalize_id(value: str) -> str:
    """Returns `value` without surrounding ASCII whitespace (the same as `tf.strings.strip`)."""
    return value.strip(ID_WHITESPACE)
