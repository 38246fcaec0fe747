"""Schema bootstrap: infer a schema from a team's logs, for them to review and curate.

Runs ExampleGen, StatisticsGen and SchemaGen (TFDV's inference) on the logs a
logs file describes, and writes the inferred schema next to the curated one the
file names (`<schema>.inferred.pbtxt`) with a short report of what was inferred
and what to review (`<schema>.inferred.md`). The curated schema, not the
inferred one, is what runs validate against: copy, review and rename.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.orchestration import metadata
from tfx.types import artifact_utils

from components.multilog_example_gen.component import MultiLogExampleGen
from components.multilog_example_gen.spec import IngestSpec
from models import features as F
from pipeline import logs_check, logs_file

INFERRED_SUFFIX = ".inferred"
SHOWN_VALUES = 12


@dataclasses.dataclass(frozen=True)
class BootstrapReport:
    """Where the bootstrap wrote the inferred schema and its report."""

    schema: str
    report: str


def inferred_paths(curated: str) -> tuple[str, str]:
    """(schema, report) paths next to a curated schema path."""
    stem = os.path.splitext(curated)[0]
    return stem + INFERRED_SUFFIX + ".pbtxt", stem + INFERRED_SUFFIX + ".md"


def _newest(connection, type_name: str, node: str):
    with metadata.Metadata(connection) as m:
        context = m.store.get_context_by_type_and_name("node", node)
        kind = m.store.get_artifact_type(type_name)
        found = [a for a in m.store.get_artifacts_by_context(context.id) if a.type_id == kind.id]
    return artifact_utils.deserialize_artifact(kind, max(found, key=lambda a: a.id))


GROWING = (F.USER_ID, F.ITEM_ID, F.TITLE, F.TEXT)
"""Features whose values grow with the data: an inferred domain would reject new ids."""


def adjust(
    schema: schema_pb2.Schema, seen_in: dict[str, list[str]], splits: list[str], ranges: dict
) -> dict[str, list[str]]:
    """Makes SchemaGen's inference fit the pipeline's splits; returns what changed, by feature.

    A feature absent from a split (events have no user in the catalogue split)
    loses its `presence` and SchemaGen's DEPRECATED mark; category
    tokens may be none; an id or title loses its domain (they grow);
    the rating's range becomes the range seen (review: the scale); the timestamp
    is `int_domain { min: 0 }`.
    """
    changes: dict[str, list[str]] = {}
    for feature in schema.feature:
        notes = changes.setdefault(feature.name, [])
        missing = [s for s in splits if s not in seen_in.get(feature.name, [])]
        if missing and feature.HasField("presence"):
            feature.ClearField("presence")
            notes.append(f"absent from {missing}: presence dropped")
        if feature.lifecycle_stage == schema_pb2.LifecycleStage.DEPRECATED:
            feature.ClearField("lifecycle_stage")  # SchemaGen's mark for "not in every split"
            notes.append("SchemaGen's DEPRECATED mark removed (the feature is used)")
        if feature.name == F.GENRES and feature.value_count.min > 0:
            feature.value_count.min = 0
            notes.append("an item may have no category: value_count.min 0")
        if feature.name in GROWING and feature.HasField("domain"):
            feature.ClearField("domain")
            notes.append("ids and titles grow: domain dropped")
        if feature.name == F.RATING and F.RATING in ranges:
            low, high = ranges[F.RATING]
            feature.float_domain.min, feature.float_domain.max = low, high
            notes.append(f"float_domain set to the ratings seen, {low:g}..{high:g}: the scale?")
        if feature.name == F.TIMESTAMP:
            feature.int_domain.min = 0
    used = {f.domain for f in schema.feature if f.HasField("domain")}
    kept = [d for d in schema.string_domain if d.name in used]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    return changes


def _review(name: str, has_domain: bool, changes: list[str]) -> str:
    notes = list(changes)
    if has_domain:
        notes.append("a closed set? keep it (a new value fails the run); else remove the domain")
    return "; ".join(notes)


def describe(schema: schema_pb2.Schema, stats: statistics_pb2.DatasetFeatureStatisticsList) -> str:
    """Adjusts the inferred schema (`adjust`); returns a markdown report of it to review."""
    ranges, seen_in = {}, {}
    for split in stats.datasets:
        for feature in split.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            common = (
                feature.num_stats.common_stats
                if feature.HasField("num_stats")
                else (feature.string_stats.common_stats)
            )
            if common.num_non_missing:
                seen_in.setdefault(name, []).append(split.name)
            if feature.HasField("num_stats"):
                low, high = ranges.get(name, (float("inf"), float("-inf")))
                ranges[name] = (min(low, feature.num_stats.min), max(high, feature.num_stats.max))
    splits = [d.name for d in stats.datasets]
    changes = adjust(schema, seen_in, splits, ranges)
    domains = {d.name: list(d.value) for d in schema.string_domain}
    lines = [
        "| feature | type | in splits | presence | values per example | inferred domain or range "
        "| review |",
        "|---|---|---|---|---|---|---|",
    ]
    for feature in schema.feature:
        kind = schema_pb2.FeatureType.Name(feature.type)
        presence = f"{feature.presence.min_fraction:.2f}" if feature.HasField("presence") else "-"
        counts = feature.value_count
        count = "-"
        if feature.HasField("value_count"):
            count = f"{counts.min}..{counts.max}" if counts.max else f"{counts.min}+"
        domain = "-"
        values = domains.get(feature.domain) if feature.HasField("domain") else None
        if values is not None:
            more = " ..." if len(values) > SHOWN_VALUES else ""
            domain = f"{len(values)} values: {', '.join(values[:SHOWN_VALUES])}{more}"
        elif feature.name in ranges:
            low, high = ranges[feature.name]
            domain = f"seen {low:g}..{high:g}"
        found = seen_in.get(feature.name, [])
        review = _review(feature.name, values is not None, changes.get(feature.name, []))
        lines.append(
            f"| {feature.name} | {kind} | {', '.join(found)} | {presence} | {count} | {domain} "
            f"| {review} |"
        )
    return "\n".join(lines)


def bootstrap_schema(logs_path: str, data_root: str, output_dir: str) -> BootstrapReport:
    """Infers a schema from the logs a logs file describes; writes it and a report.

    Args:
        logs_path: The logs file.
        data_root: Where the logs are.
        output_dir: Working directory of the bootstrap pipeline (its artifacts and
            ML Metadata go to `<output_dir>/schema_bootstrap/`).

    Returns:
        Where the inferred schema and the report were written.

    Raises:
        ValueError: naming the logs file and key, or the data file, of a mistake.
    """
    logs_check.check_data(logs_path, data_root, require_schema=False)
    fields = logs_file.load(logs_path, require_schema=False)
    work = os.path.join(output_dir, "schema_bootstrap")
    connection = metadata.sqlite_metadata_connection_config(os.path.join(work, "metadata.sqlite"))
    example_gen = MultiLogExampleGen(
        input_base=data_root, ingest=IngestSpec.from_json_dict(fields["ingest"])
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    name = fields["pipeline_name"] + "-schema"
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name=name,
            pipeline_root=os.path.join(work, "root"),
            components=[example_gen, statistics_gen, schema_gen],
            metadata_connection_config=connection,
        )
    )
    schema_artifact = _newest(connection, "Schema", f"{name}.SchemaGen")
    stats_artifact = _newest(connection, "ExampleStatistics", f"{name}.StatisticsGen")
    schema_path, report_path = inferred_paths(fields["schema_path"])
    os.makedirs(os.path.dirname(schema_path), exist_ok=True)
    schema = tfdv.load_schema_text(os.path.join(schema_artifact.uri, "schema.pbtxt"))
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    for split in artifact_utils.decode_split_names(stats_artifact.split_names):
        loaded = stats_artifact_utils.load_statistics(stats_artifact, split).proto()
        for dataset in loaded.datasets:
            dataset.name = split
        stats.datasets.extend(loaded.datasets)
    table = describe(schema, stats)
    tfdv.write_schema_text(schema, schema_path)
    with open(report_path, "w") as f:
        f.write(
            f"# Inferred schema of {logs_path}\n\nSchemaGen's inference on {data_root} "
            f"({', '.join(d.name or 'split' for d in stats.datasets)}). Review each row, edit "
            f"`{os.path.basename(schema_path)}` and save it as "
            f"`{os.path.basename(fields['schema_path'])}`: the curated schema is the one runs "
            "validate against.\n\n" + table + "\n"
        )
    return BootstrapReport(schema_path, report_path)
