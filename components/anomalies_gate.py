"""AnomaliesGate: fails the run, readably, when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the run go on; downstream
components depend on this gate so that bad data never reaches training.
Anomalies are of two kinds: a value the curated schema does not allow (always
fails), and drift of a span from the previous span (a drift comparator of the
schema; fails only when `SpanConfig.drift_blocks` is set, else is reported).
"""

import logging
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"
DRIFT_PREFIX = "COMPARATOR_"
"""TFDV's anomaly types of the drift comparators (L-infinity, Jensen-Shannon, counts)."""


def is_drift(info: anomalies_pb2.AnomalyInfo) -> bool:
    """Whether an anomaly only reports drift (every reason is a comparator's)."""
    reasons = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason]
    return bool(reasons) and all(r.startswith(DRIFT_PREFIX) for r in reasons)


def describe_anomalies(
    anomalies_by_split: dict[str, anomalies_pb2.Anomalies], drift: bool | None = None
) -> list[str]:
    """One human-readable line per anomaly: `split/feature: description`.

    Args:
        anomalies_by_split: Anomalies of each split.
        drift: True lists drift only, False everything else, None every anomaly.
    """
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append(("<dataset>", anomalies.dataset_anomaly_info))
        for feature, info in infos:
            if drift is None or is_drift(info) == drift:
                lines.append(f"{split}/{feature}: {info.short_description}: {info.description}")
    return lines


def load_anomalies(artifact: tfx.types.standard_artifacts.ExampleAnomalies):
    """Reads the per-split Anomalies protos of an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        result[split] = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
    return result


def check(
    anomalies: tfx.types.standard_artifacts.ExampleAnomalies, schema_path: str, drift_blocks: bool
) -> None:
    """Raises ValueError listing every blocking anomaly; logs drift that does not block.

    Raises:
        ValueError: naming the schema and every anomaly (`split/feature: ...`).
    """
    found = load_anomalies(anomalies)
    lines = describe_anomalies(found, drift=None if drift_blocks else False)
    if lines:
        raise ValueError(
            f"data does not match {schema_path}; fix the logs or, if the change is "
            "intended, the curated schema:\n  " + "\n  ".join(lines)
        )
    for line in describe_anomalies(found, drift=True):
        logging.warning("Drift from the previous span (not blocking): %s", line)


@tfx.dsl.components.component
def AnomaliesGate(  # noqa: N802
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    schema_path: tfx.dsl.components.Parameter[str],
    drift_blocks: tfx.dsl.components.Parameter[int] = 1,
) -> None:
    """Raises ValueError listing every anomaly; passes when there is none.

    Args:
        anomalies: ExampleValidator's output.
        schema_path: The curated schema the data was checked against (named in
            the message).
        drift_blocks: 0 reports drift (a drift comparator's anomaly) and
            passes; 1 fails on it too.
    """
    check(anomalies, schema_path, drift_blocks=bool(drift_blocks))


@tfx.dsl.components.component
def SpanGate(  # noqa: N802
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    accepted: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    schema_path: tfx.dsl.components.Parameter[str],
    drift_blocks: tfx.dsl.components.Parameter[int] = 0,
) -> None:
    """The gate of one span: fails on anomalies, else accepts the span for training.

    `accepted` is a copy of the span's Examples (same splits, span and
    version): the rolling window is resolved over accepted spans only, so a
    span that failed validation never trains or evaluates a later model.

    Args:
        examples: The span ExampleGen ingested.
        anomalies: Its validation (schema, and drift from the previous span).
        accepted: The span, once it passed.
        schema_path: The curated schema (named in the message).
        drift_blocks: 1 fails on drift too; 0 reports drift and accepts the span.
    """
    check(anomalies, schema_path, drift_blocks=bool(drift_blocks))
    io_utils.copy_dir(examples.uri, accepted.uri)
    accepted.split_names = examples.split_names
    accepted.span = examples.span
    accepted.version = examples.version
