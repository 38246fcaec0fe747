"""The synthetic funnel generator, and the pipeline recovering its planted structure."""

import glob
import os

import pytest
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.recommender_evaluator.spec import GateConfig
from datagen.synthetic import FUNNEL, SyntheticConfig, generate, write
from models.config import ModelConfig, TaskEvents
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.presets import SYNTHETIC_INGEST

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, os.pardir, "schema", "synthetic.pbtxt")
SMALL = SyntheticConfig(users=600, items=1000, views=30_000, seed=7)
K = 20


def test_generator_is_deterministic_by_seed():
    config = SyntheticConfig(users=50, items=40, views=800)
    first, catalog, _ = generate(config)
    again, catalog_again, _ = generate(config)
    assert first == again and catalog == catalog_again
    other, _, _ = generate(SyntheticConfig(users=50, items=40, views=800, seed=1))
    assert other != first


def test_funnel_shrinks_about_100_20_5_1():
    logs, _, _ = generate(SyntheticConfig(users=400, items=300, views=40_000))
    n = {event: len(logs[event]) for event in FUNNEL}
    assert 0.15 < n["click"] / n["view"] < 0.25
    assert 0.03 < n["cart"] / n["view"] < 0.08
    assert 0.005 < n["purchase"] / n["view"] < 0.02
    rated = [r for r in logs["purchase"] if r[3] != ""]
    assert 0.2 < len(rated) / n["purchase"] < 0.4
    assert {r[3] for r in rated} <= {1, 2, 3, 4, 5}


def test_config_is_validated():
    with pytest.raises(ValueError, match="users must be positive"):
        SyntheticConfig(users=0)
    with pytest.raises(ValueError, match="rated_share"):
        SyntheticConfig(rated_share=1.5)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("synthetic"))
    data = os.path.join(tmp, "data")
    write(SMALL, data)
    config = PipelineConfig(
        pipeline_name="recommender-synthetic",
        pipeline_root=os.path.join(tmp, "root"),
        data_root=data,
        schema_path=SCHEMA,
        serving_root=os.path.join(tmp, "serving"),
        ingest=SYNTHETIC_INGEST,
        model=ModelConfig(
            epochs=5,
            batch_size=256,
            embedding_dim=16,
            top_k=K,
            events=TaskEvents(
                retrieval=(("view", 1.0), ("click", 1.0), ("cart", 1.0), ("purchase", 1.0)),
                rating=("purchase",),
                retrieval_eval=("view",),
            ),
        ),
        gate=GateConfig(rmse_margin=-1.0, top_k_margin=-1.0),
    )
    connection = metadata.sqlite_metadata_connection_config(os.path.join(tmp, "mlmd.sqlite"))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
    return config, data


def test_model_recovers_planted_structure_better_than_popularity(synthetic_run):
    """Measure: top-20 hit rate on eval view events, seen items excluded for both, against
    the most-popular-unseen list the Evaluator scores on the same events."""
    config, _ = synthetic_run
    [evaluation] = glob.glob(
        os.path.join(config.pipeline_root, "RecommenderEvaluator", "evaluation", "*")
    )
    result = tfma.load_eval_result(evaluation)  # one model on a first run
    [overall] = [m for key, m in result.slicing_metrics if key == ()]
    model = overall[""][""][f"top_{K}_hit_rate"]["doubleValue"]
    popular = overall[""][""][f"popular_top_{K}_hit_rate"]["doubleValue"]
    print(f"synthetic top-{K}: model {model:.4f}, popularity {popular:.4f}")
    assert model > 1.5 * popular, (model, popular)
