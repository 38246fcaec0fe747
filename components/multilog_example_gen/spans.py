"""Spans of time-partitioned logs: filling a pattern for a span, listing a data root's spans.

Patterns follow TFX's conventions: `{SPAN}` (or `{SPAN:width}`, zero-padded) is
the span number; `{YYYY}`, `{MM}`, `{DD}` a date, whose span number is the day
count since 1970-01-01 (`tfx.components.example_gen.utils.date_to_span_number`).
"""

from __future__ import annotations

import os
import re

from apache_beam.io.filesystems import FileSystems
from tfx.components.example_gen import utils as example_gen_utils

from components.multilog_example_gen.spec import IngestSpec, partition_kind

_PLACEHOLDERS = {
    r"\{SPAN(?::\d+)?\}": r"(?P<span>\d+)",
    r"\{YYYY\}": r"(?P<year>\d{4})",
    r"\{MM\}": r"(?P<month>\d{2})",
    r"\{DD\}": r"(?P<day>\d{2})",
}
_GLOB = {"*": "[^/]*", "?": "[^/]"}


def span_pattern(pattern: str, span: int) -> str:
    """`pattern` with its partition placeholder filled for `span` (unchanged if it has none)."""
    kind = partition_kind(pattern)
    if kind is None:
        return pattern
    return example_gen_utils.get_pattern_for_span_version(
        pattern, kind == "span", kind == "date", False, span, None
    )


def _glob_and_regex(pattern: str) -> tuple[str, re.Pattern]:
    glob, regex = pattern, ""
    for placeholder in _PLACEHOLDERS:
        glob = re.sub(placeholder, "*", glob)
    tokens = re.split("(" + "|".join(_PLACEHOLDERS) + r"|\*|\?)", pattern)
    for token in tokens:
        if token in _GLOB:
            regex += _GLOB[token]
        elif any(re.fullmatch(p, token) for p in _PLACEHOLDERS):
            regex += next(r for p, r in _PLACEHOLDERS.items() if re.fullmatch(p, token))
        else:
            regex += re.escape(token)
    return glob, re.compile(regex + "$")


def spans_of(root: str, pattern: str) -> set[int]:
    """The spans for which `pattern` (relative to `root`) matches at least one file."""
    glob, regex = _glob_and_regex(os.path.join(root, pattern))
    found = set()
    for match in FileSystems.match([glob])[0].metadata_list:
        hit = regex.search(match.path)
        if hit is None:
            continue
        groups = hit.groupdict()
        if groups.get("span") is not None:
            found.add(int(groups["span"]))
        else:
            found.add(
                example_gen_utils.date_to_span_number(
                    int(groups["year"]), int(groups["month"]), int(groups["day"])
                )
            )
    return found


def available_spans(root: str, spec: IngestSpec) -> list[int]:
    """Spans that every partitioned input holds (what TFX's driver may resolve), ascending."""
    sets = [spans_of(root, pattern) for pattern in spec.partitioned_patterns().values()]
    return sorted(set.intersection(*sets)) if sets else []
