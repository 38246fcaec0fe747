"""MultiLogExampleGen: several CSV feedback logs plus a catalogue in, three splits out."""

from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2, range_config_pb2

from components.multilog_example_gen import executor
from components.multilog_example_gen.spec import IngestSpec
from contracts.names import CODE_VERSION_KEY


class MultiLogExampleGen(FileBasedExampleGen):
    """ExampleGen over named feedback logs and an item catalogue.

    Outputs `Examples` with splits `train` and `eval` (events, split by a seeded
    hash of the (user, item) pair) and `catalog` (one example per item). The
    file-based driver fingerprints every file under `input_base` (the event
    splits' pattern is `*`), so a changed log or catalogue invalidates the cache;
    the split patterns are otherwise unused: the executor reads the files the
    ingest spec names.

    With time-partitioned logs (`IngestSpec.spans`), the driver resolves the
    newest span every log holds (TFX's `{SPAN}` / `{YYYY}{MM}{DD}` placeholders),
    or the span `range_config` pins, and the output is that span's `events` and
    `catalog`, with the standard `span` and `version` properties. An unchanged
    span is cached; a new one is ingested alone.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_base: str,
        ingest: IngestSpec,
        range_config: range_config_pb2.RangeConfig | data_types.RuntimeParameter | None = None,
        read_window: bool = False,
        code_version: str = "",
    ):
        """Builds the component.

        Args:
            input_base: Directory holding the log and catalogue files.
            ingest: Which files are logs, which is the catalogue, and how to split.
            range_config: With spans, a static range pinning the span to ingest
                (a backfill); None ingests the newest.
            read_window: With spans, read the whole rolling window ending at
                that span from the logs and split it train (earlier spans) / eval
                (the newest), for orchestrators that cannot resolve span ranges.
            code_version: Fingerprint of the executor's code, part of the cache key.
        """
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=executor.input_splits(ingest)),
            custom_config={
                executor.INGEST_SPEC_KEY: ingest.to_json_dict(),
                executor.READ_WINDOW_KEY: read_window,
                CODE_VERSION_KEY: code_version,
            },
            range_config=range_config,
        )
