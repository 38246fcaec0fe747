"""Checks a logs file against the data before any Beam work: files and columns.

A logs file can be well-formed and still name a file that is not there or a
column a file lacks; this says so in seconds, naming the logs file, the key and
the data file, instead of failing deep inside ExampleGen.
"""

from __future__ import annotations

import os

from components.multilog_example_gen import sources
from components.multilog_example_gen.read import match_files
from components.multilog_example_gen.spans import available_spans, span_pattern
from components.multilog_example_gen.spec import IngestSpec
from pipeline.logs_file import LogsFileError, load

_fail = LogsFileError.at


def check_data(path: str, data_root: str, require_schema: bool = True) -> None:
    """Checks a logs file against the data before any Beam work: files and columns.

    Every non-optional file-based log must match a file (the newest span's, with
    spans) whose columns include those the file maps; likewise the catalogue.

    Raises:
        LogsFileError: naming the logs file, the key, and the data file.
    """
    ingest = IngestSpec.from_json_dict(load(path, require_schema)["ingest"])
    span = None
    if ingest.spans is not None:
        try:
            spans = available_spans(data_root, ingest)
        except ValueError as e:
            raise _fail(path, "logs", str(e)) from e
        if not spans:
            raise _fail(path, "logs", f"no span that every log holds under {data_root}")
        span = spans[-1]

    def resolve(pattern: str) -> str:
        return os.path.join(data_root, pattern if span is None else span_pattern(pattern, span))

    for i, log in enumerate(ingest.logs):
        if log.format == "bigquery":
            continue
        files = match_files(data_root, os.path.relpath(resolve(log.file), data_root), "", True)
        if not files:
            if log.optional:
                continue
            raise _fail(path, f"logs[{i}].file", f"no file matches {resolve(log.file)!r}")
        _check_columns(path, f"logs[{i}].columns", files[0], log.required_columns, log)
    catalog = ingest.catalog
    if catalog.format != "bigquery":
        _check_columns(
            path, "catalog.columns", resolve(catalog.file), catalog.required_columns, catalog
        )


def _check_columns(where: str, key: str, data_file: str, required, spec) -> None:
    try:
        columns = sources.columns_of(data_file, spec.format, spec.csv)
    except ValueError as e:
        raise _fail(where, key.rsplit(".", 1)[0] + ".file", str(e)) from e
    missing = [c for c in required if c not in columns]
    if missing:
        raise _fail(
            where, key, f"column(s) {missing} are not in {data_file!r}, which has {columns}"
        )
