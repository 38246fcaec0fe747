"""Named data sets the runners can point the same pipeline at.

A preset is what differs between data sets: how the logs are ingested, the
curated schema, which events train which task, and the gate. Everything else
(components, wiring, code) is shared.
"""

from __future__ import annotations

import dataclasses

from components.multilog_example_gen.spec import MOVIELENS, IngestSpec
from components.recommender_evaluator.spec import GateConfig
from datagen.synthetic import SYNTHETIC_INGEST
from models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Preset:
    """One data set's ingest spec, schema file (under schema/), model and gate."""

    ingest: IngestSpec
    schema_file: str
    model: ModelConfig
    gate: GateConfig


PRESETS = {
    "movielens": Preset(MOVIELENS, "schema.pbtxt", ModelConfig(), GateConfig()),
    # Synthetic funnel: every behaviour trains retrieval (purchases count most),
    # ratings on purchases train the rating task; the gate is a sanity gate on
    # purchases (the sparse target) since quality depends on the generator's knobs.
    "synthetic": Preset(
        SYNTHETIC_INGEST,
        "synthetic.pbtxt",
        ModelConfig(
            retrieval_events=(("view", 1.0), ("click", 2.0), ("cart", 3.0), ("purchase", 4.0)),
            rating_events=("purchase",),
        ),
        GateConfig(max_rmse=1.5, min_top_k_accuracy=0.05, retrieval_event_types=("purchase",)),
    ),
}
