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
    """Spans that every partitioned input holds (what TFX's driver may resolve), ascending.

    Raises:
        ValueError: if the inputs' newest spans differ (a span delivered in part:
            TFX's driver would fail on it with "Latest span should be the same for
            each split"), naming each input's newest span; or if an input has no span.
    """
    found = {name: spans_of(root, p) for name, p in spec.partitioned_patterns().items()}
    empty = sorted(name for name, spans in found.items() if not spans)
    if empty:
        raise ValueError(
            f"no span of {empty} under {root}: expected files matching "
            f"{[spec.partitioned_patterns()[n] for n in empty]}"
        )
    newest = {name: max(spans) for name, spans in found.items()}
    if len(set(newest.values())) > 1:
        raise ValueError(
            f"the newest span differs between inputs {newest}: span {max(newest.values())} "
            "is delivered in part; deliver every log (and the catalogue) of a span together"
        )
    return sorted(set.intersection(*found.values()))
