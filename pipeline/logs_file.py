"""Logs described in a file: YAML or JSON in, the data-set fields of a `PipelineConfig` out.

A logs file says what the pipeline reads and how each log feeds the model, so
a new data set takes a file, not code. The shipped presets are such files
(`configs/`). Keys (a `?` marks an optional key, defaults in brackets):

    extends?: another logs file (relative) whose keys this file overrides
    name: data set name (the pipeline is `recommender-<name>`)
    schema: curated schema file, relative to this file
    logs:                       # one entry per log
      - name: ratings
        file: ratings.csv       # relative to the data root; globs, {SPAN}, {YYYY}{MM}{DD};
                                # a BigQuery table or query with format bigquery
        format?: csv            # csv | parquet | tfrecord | bigquery
        csv?: {delimiter: ",", header: true, columns: [], encoding: utf-8-sig, quotechar: '"'}
        columns: {user: userId, item: movieId, timestamp: timestamp, rating?: rating,
                  event_type?: kind}
        timestamp_unit?: seconds  # seconds | milliseconds | iso8601
        event_type: watch       # the events' type (or, with columns.event_type, the log's)
        retrieval?: 1.0         # retrieval loss weight, or {event type: weight} [1.0]
        rating?: false          # its ratings train the rating task, or [event types]
        evaluate?: true         # the gate's top-K counts its events, or [event types]
        optional?: false        # absent files are skipped
    catalog:
      file: movies.csv
      format?: csv
      csv?: {...}
      columns: {item: movieId, title: title}
      categorical?: [{column: genres, separator: "|", empty: ""} | {flags: [a, b]}]
      text?: [description]      # more text, tokenised with the title
    features?: {title_year: false}   # a "(1995)" at the end of titles -> year buckets
    split?: {by: temporal, eval_percent: 20, seed: 42}   # by: temporal | pair_hash
    spans?: {window: 14, holdout: 1, drift_blocks: false}
    max_unknown_item_share?: 0.5
    model?: {...ModelConfig fields but events}
    gate?: {...GateConfig fields}

Every mistake is a `ValueError` naming the file and the key (`logs[0].columns.user`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import yaml

from components.multilog_example_gen.spec import (
    SPLIT_RULES,
    CatalogSpec,
    CategoricalSpec,
    CsvDialect,
    IngestSpec,
    LogSpec,
    SpanConfig,
)
from components.recommender_evaluator.spec import GateConfig
from contracts import jsonable
from models.config import FeatureConfig, ModelConfig, TaskEvents
from pipeline import logs_types

TOP = {"extends", "name", "schema", "logs", "catalog", "features", "split", "spans",
       "max_unknown_item_share", "model", "gate"}  # fmt: skip
LOG = {"name", "file", "format", "csv", "columns", "timestamp_unit", "event_type", "retrieval",
       "rating", "evaluate", "optional"}  # fmt: skip
LOG_COLUMNS = {"user", "item", "timestamp", "rating", "event_type"}
CATALOG_KEYS = {"file", "format", "csv", "columns", "categorical", "text"}
CATALOG_COLUMNS = {"item", "title"}


class LogsFileError(ValueError):
    """A mistake in a logs file, naming the file and the key."""

    @classmethod
    def at(cls, path: str, key: str, message: str) -> LogsFileError:
        """The error for `key` of the logs file `path`: "<path>: <key>: <message>"."""
        return cls(f"{path}: {key}: {message}")


_fail = LogsFileError.at


def _mapping(value: Any, path: str, key: str, allowed: set[str], required=()) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, key, f"expected a mapping, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(path, key, f"unknown key(s) {unknown}; known: {sorted(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _fail(path, key, f"missing key(s) {missing}")
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise json.JSONDecodeError(f"key(s) {twice} written twice", "", 0)
    return dict(pairs)


def read_file(path: str, _chain: tuple[str, ...] = ()) -> dict:
    """The raw mapping of a logs file, `extends` resolved (the base's keys, overridden).

    Raises:
        LogsFileError: if the file is missing, does not parse, or its `extends`
            chain comes back to a file already in it (named in order).
    """
    if os.path.abspath(path) in _chain:
        cycle = " -> ".join([*_chain[_chain.index(os.path.abspath(path)) :], os.path.abspath(path)])
        raise _fail(_chain[-1], "extends", f"a cycle of logs files: {cycle}")
    if not os.path.isfile(path):
        raise LogsFileError(f"{path}: no such logs file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if path.endswith(".json"):
            raw = json.loads(text, object_pairs_hook=_unique_json_keys)
        else:
            raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise LogsFileError(f"{path}: does not parse: {e}") from e
    raw = _mapping(raw, path, "<top>", TOP)
    base = raw.pop("extends", None)
    if base is None:
        return {**raw, "_dir": os.path.dirname(os.path.abspath(path)), "_path": path}
    base_path = os.path.join(os.path.dirname(path), base)
    if os.path.abspath(base_path) == os.path.abspath(path):
        raise _fail(path, "extends", "a logs file cannot extend itself")
    merged = read_file(base_path, (*_chain, os.path.abspath(path)))
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return (
        {**merged, "_path": path}
        if "schema" not in raw
        else {**merged, "_path": path, "_dir": os.path.dirname(os.path.abspath(path))}
    )


def _typed(value: Any, kind: type, path: str, key: str) -> Any:
    """`value` if it is a `kind` (an int is a float; a bool is no int)."""
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise _fail(path, key, f"expected {kind.__name__}, got {value!r}")
    return value


def _build(path: str, key: str, cls, **kwargs):
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise _fail(path, key, str(e)) from e


def _csv(value: Any, path: str, key: str) -> CsvDialect:
    fields = {f.name for f in dataclasses.fields(CsvDialect)}
    value = dict(_mapping(value or {}, path, key, fields))
    if "columns" in value:
        value["columns"] = tuple(value["columns"])
    return _build(path, key, CsvDialect, **value)


def _log(raw: Any, path: str, key: str) -> tuple[LogSpec, dict, dict, dict]:
    raw = _mapping(raw, path, key, LOG, required=("name", "file", "event_type", "columns"))
    columns = _mapping(
        raw["columns"], path, f"{key}.columns", LOG_COLUMNS, required=("user", "item", "timestamp")
    )
    log = _build(
        path,
        key,
        LogSpec,
        name=raw["name"],
        file=raw["file"],
        event_type=raw["event_type"],
        user_column=columns["user"],
        item_column=columns["item"],
        timestamp_column=columns["timestamp"],
        rating_column=columns.get("rating"),
        event_type_column=columns.get("event_type"),
        format=raw.get("format", "csv"),
        csv=_csv(raw.get("csv"), path, f"{key}.csv"),
        timestamp_unit=raw.get("timestamp_unit", "seconds"),
        optional=_typed(raw.get("optional", False), bool, path, f"{key}.optional"),
    )
    types = [log.event_type]
    retrieval = raw.get("retrieval", 1.0)
    if isinstance(retrieval, dict):
        weights = {str(t): float(w) for t, w in retrieval.items()}
        types = list(weights)
    elif isinstance(retrieval, (int, float)) and not isinstance(retrieval, bool):
        weights = {log.event_type: float(retrieval)}
    else:
        raise _fail(
            path, f"{key}.retrieval", f"expected a weight or {{type: weight}}, got {retrieval!r}"
        )
    if log.event_type_column and not isinstance(retrieval, dict):
        raise _fail(
            path,
            f"{key}.retrieval",
            "with columns.event_type, give a weight per event type ({type: weight})",
        )
    rating = _flags(raw.get("rating", False), types, path, f"{key}.rating")
    evaluate = _flags(raw.get("evaluate", True), types, path, f"{key}.evaluate")
    if any(rating.values()) and not log.rating_column:
        raise _fail(path, f"{key}.rating", "the log has no rating column (columns.rating)")
    return log, weights, rating, evaluate


def _flags(value: Any, types: list[str], path: str, key: str) -> dict[str, bool]:
    if isinstance(value, bool):
        return dict.fromkeys(types, value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        unknown = sorted(set(value) - set(types))
        if unknown:
            raise _fail(path, key, f"event type(s) {unknown} are not this log's {types}")
        return {t: t in value for t in types}
    raise _fail(path, key, f"expected true/false or a list of event types, got {value!r}")


def _catalog(raw: Any, path: str) -> CatalogSpec:
    raw = _mapping(raw, path, "catalog", CATALOG_KEYS, required=("file", "columns"))
    columns = _mapping(
        raw["columns"], path, "catalog.columns", CATALOG_COLUMNS, required=("item", "title")
    )
    categorical = []
    for i, attribute in enumerate(raw.get("categorical") or []):
        key = f"catalog.categorical[{i}]"
        attribute = dict(_mapping(attribute, path, key, {"column", "separator", "empty", "flags"}))
        if "flags" in attribute:
            attribute["flags"] = tuple(attribute["flags"])
        categorical.append(_build(path, key, CategoricalSpec, **attribute))
    return _build(
        path,
        "catalog",
        CatalogSpec,
        file=raw["file"],
        item_column=columns["item"],
        title_column=columns["title"],
        categorical=tuple(categorical),
        text_columns=tuple(raw.get("text") or ()),
        format=raw.get("format", "csv"),
        csv=_csv(raw.get("csv"), path, "catalog.csv"),
    )


def load(path: str, require_schema: bool = True) -> dict[str, Any]:
    """The `PipelineConfig` fields a logs file sets (as `pipeline.presets.preset_fields` does).

    Args:
        path: The logs file.
        require_schema: Whether the curated schema must exist (not yet when it is
            being bootstrapped from the logs).

    Returns:
        JSON fields: pipeline_name, ingest, schema_path, features, model (with the
        task events the logs declare) and gate.

    Raises:
        LogsFileError: naming the file and the key of any mistake.
    """
    return _fields(read_file(path), require_schema)


def load_dict(
    raw: dict, name: str = "<logs>", base_dir: str = ".", require_schema: bool = True
) -> dict[str, Any]:
    """`load` for a logs mapping already in memory (e.g. inline in a cloud config).

    Args:
        raw: The mapping (no `extends`).
        name: What messages call it.
        base_dir: What a relative `schema` is relative to.
        require_schema: As for `load`.

    Raises:
        LogsFileError: naming `name` and the key of any mistake.
    """
    raw = dict(_mapping(raw, name, "<top>", TOP - {"extends"}))
    return _fields({**raw, "_dir": os.path.abspath(base_dir), "_path": name}, require_schema)


def _fields(raw: dict, require_schema: bool) -> dict[str, Any]:
    where = raw["_path"]
    for key in ("name", "schema", "logs", "catalog"):
        if key not in raw:
            raise _fail(where, key, "missing")
    if not isinstance(raw["logs"], list) or not raw["logs"]:
        raise _fail(where, "logs", "expected a non-empty list of logs")
    parsed = [_log(entry, where, f"logs[{i}]") for i, entry in enumerate(raw["logs"])]
    names = [log.name for log, *_ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _fail(where, "logs", f"log name(s) {repeated} appear more than once")
    retrieval = {t: w for _, weights, _, _ in parsed for t, w in weights.items()}
    rated = [t for _, _, rating, _ in parsed for t, on in rating.items() if on]
    evaluated = [t for _, _, _, evaluate in parsed for t, on in evaluate.items() if on]
    if not rated:
        raise _fail(where, "logs", "no log feeds the rating task (rating: true on a rated log)")
    split = _mapping(raw.get("split") or {}, where, "split", {"by", "eval_percent", "seed"})
    for key, value in split.items():
        _typed(value, str if key == "by" else int, where, f"split.{key}")
    if "by" in split:
        if split["by"] not in SPLIT_RULES:
            raise _fail(where, "split.by", f"expected one of {SPLIT_RULES}, got {split['by']!r}")
        split["split_by"] = split.pop("by")
    spans = raw.get("spans")
    if spans is not None:
        for key, value in _mapping(
            spans, where, "spans", {"window", "holdout", "drift_blocks"}
        ).items():
            _typed(value, bool if key == "drift_blocks" else int, where, f"spans.{key}")
        spans = _build(
            where,
            "spans",
            SpanConfig,
            **_mapping(spans, where, "spans", {"window", "holdout", "drift_blocks"}),
        )
    ingest = _build(
        where,
        "logs",
        IngestSpec,
        logs=tuple(log for log, *_ in parsed),
        catalog=_catalog(raw["catalog"], where),
        spans=spans,
        max_unknown_item_share=_typed(
            raw.get("max_unknown_item_share", 0.5), float, where, "max_unknown_item_share"
        ),
        **split,
    )
    events = _build(
        where,
        "logs",
        TaskEvents,
        retrieval=tuple(retrieval.items()),
        rating=tuple(dict.fromkeys(rated)),
        retrieval_eval=tuple(dict.fromkeys(t for t in evaluated if retrieval.get(t, 0) > 0)),
    )
    model = _mapping(
        raw.get("model") or {},
        where,
        "model",
        {f.name for f in dataclasses.fields(ModelConfig)} - {"events"},
    )
    gate = _mapping(
        raw.get("gate") or {}, where, "gate", {f.name for f in dataclasses.fields(GateConfig)}
    )
    features = _mapping(
        raw.get("features") or {},
        where,
        "features",
        {f.name for f in dataclasses.fields(FeatureConfig)},
    )
    for values, cls, key in ((model, ModelConfig, "model"), (gate, GateConfig, "gate"),
                             (features, FeatureConfig, "features")):  # fmt: skip
        logs_types.check(values, cls, key, lambda k, m: _fail(where, k, m))
    try:
        model_config = ModelConfig.from_json_dict(
            {**model, "events": jsonable.to_json_dict(events)}
        )
        gate_config = GateConfig.from_json_dict(gate)
        feature_config = FeatureConfig.from_json_dict(features)
    except ValueError as e:
        raise _fail(where, "model/gate/features", str(e)) from e
    schema = os.path.normpath(os.path.join(raw["_dir"], raw["schema"]))
    if require_schema and not os.path.isfile(schema):
        raise _fail(
            where,
            "schema",
            f"no schema file at {schema}: write one, or bootstrap it from the logs "
            "(make schema LOGS=... DATA=...)",
        )
    return {
        "pipeline_name": f"recommender-{str(raw['name']).replace('_', '-')}",
        "ingest": jsonable.to_json_dict(ingest),
        "schema_path": schema,
        "features": jsonable.to_json_dict(feature_config),
        "model": jsonable.to_json_dict(model_config),
        "gate": jsonable.to_json_dict(gate_config),
    }
