"""AnomaliesGate: fails the run, readably, when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the run go on; downstream
components depend on this gate so that bad data never reaches training.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"


def describe_anomalies(anomalies_by_split: dict[str, anomalies_pb2.Anomalies]) -> list[str]:
    """Returns one human-readable line per anomaly: `split/feature: description`."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"{split}/{feature}: {info.short_description}: {info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"{split}/<dataset>: {info.short_description}: {info.description}")
    return lines


def load_anomalies(artifact: tfx.types.standard_artifacts.ExampleAnomalies):
    """Reads the per-split Anomalies protos of an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        result[split] = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
    return result


@tfx.dsl.components.component
def AnomaliesGate(  # noqa: N802
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    schema_path: tfx.dsl.components.Parameter[str],
) -> None:
    """Raises ValueError listing every anomaly; passes when there is none.

    Args:
        anomalies: ExampleValidator's output.
        schema_path: The curated schema the data was checked against (named in
            the message).
    """
    lines = describe_anomalies(load_anomalies(anomalies))
    if lines:
        raise ValueError(
            f"data does not match {schema_path}; fix the logs or, if the change is "
            "intended, the curated schema:\n  " + "\n  ".join(lines)
        )
