"""MultiLogExampleGen: several CSV feedback logs plus a catalogue in, three splits out."""

from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.multilog_example_gen import executor
from components.multilog_example_gen.spec import IngestSpec
from contracts.names import CATALOG, EVAL, TRAIN


class MultiLogExampleGen(FileBasedExampleGen):
    """ExampleGen over named feedback logs and an item catalogue.

    Outputs `Examples` with splits `train` and `eval` (events, split by a seeded
    hash of the (user, item) pair) and `catalog` (one example per item). The
    file-based driver fingerprints every file under `input_base` (the event
    splits' pattern is `*`), so a changed log or catalogue invalidates the cache;
    the split patterns are otherwise unused: the executor reads the files the
    ingest spec names.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, ingest: IngestSpec):
        """Builds the component.

        Args:
            input_base: Directory holding the log and catalogue files.
            ingest: Which files are logs, which is the catalogue, and how to split.
        """
        input_config = example_gen_pb2.Input(
            splits=[
                example_gen_pb2.Input.Split(name=TRAIN, pattern="*"),
                example_gen_pb2.Input.Split(name=EVAL, pattern="*"),
                example_gen_pb2.Input.Split(name=CATALOG, pattern=ingest.catalog.file),
            ]
        )
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            custom_config={executor.INGEST_SPEC_KEY: ingest.to_json_dict()},
        )
