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
import shutil

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.orchestration import metadata
from tfx.types import artifact_utils

from components.multilog_example_gen.component import MultiLogExampleGen
from components.multilog_example_gen.spec import IngestSpec
from pipeline import logs_file

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


def describe(schema: schema_pb2.Schema, stats: statistics_pb2.DatasetFeatureStatisticsList) -> str:
    """A markdown report: per feature, what SchemaGen inferred and what to review."""
    ranges = {}
    for split in stats.datasets:
        for feature in split.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            if feature.HasField("num_stats"):
                low, high = ranges.get(name, (float("inf"), float("-inf")))
                ranges[name] = (min(low, feature.num_stats.min), max(high, feature.num_stats.max))
    domains = {d.name: list(d.value) for d in schema.string_domain}
    lines = [
        "| feature | type | presence | values per example | inferred domain or range | review |",
        "|---|---|---|---|---|---|",
    ]
    for feature in schema.feature:
        kind = schema_pb2.FeatureType.Name(feature.type)
        presence = f"{feature.presence.min_fraction:.2f}" if feature.HasField("presence") else "-"
        count = (
            f"{feature.value_count.min}..{feature.value_count.max}"
            if feature.HasField("value_count")
            else "-"
        )
        domain, review = "-", ""
        values = domains.get(feature.domain) if feature.HasField("domain") else None
        if values is not None:
            shown = ", ".join(values[:SHOWN_VALUES]) + (
                " ..." if len(values) > SHOWN_VALUES else ""
            )
            domain = f"{len(values)} values: {shown}"
            review = "a closed set? keep it (new values become anomalies); else drop the domain"
        elif feature.name in ranges:
            low, high = ranges[feature.name]
            domain = f"seen {low:g}..{high:g}"
            review = "set the valid range (float_domain / int_domain), e.g. the rating scale"
        lines.append(f"| {feature.name} | {kind} | {presence} | {count} | {domain} | {review} |")
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
    logs_file.check_data(logs_path, data_root, require_schema=False)
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
    shutil.copyfile(os.path.join(schema_artifact.uri, "schema.pbtxt"), schema_path)
    schema = tfdv.load_schema_text(schema_path)
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    for split in artifact_utils.decode_split_names(stats_artifact.split_names):
        loaded = stats_artifact_utils.load_statistics(stats_artifact, split).proto()
        for dataset in loaded.datasets:
            dataset.name = split
        stats.datasets.extend(loaded.datasets)
    with open(report_path, "w") as f:
        f.write(
            f"# Inferred schema of {logs_path}\n\nSchemaGen's inference on {data_root} "
            f"({', '.join(d.name or 'split' for d in stats.datasets)}). Review each row, edit "
            f"`{os.path.basename(schema_path)}` and save it as "
            f"`{os.path.basename(fields['schema_path'])}`: the curated schema is the one runs "
            "validate against.\n\n" + describe(schema, stats) + "\n"
        )
    return BootstrapReport(schema_path, report_path)
