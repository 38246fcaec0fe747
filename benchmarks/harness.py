"""Shared harness of the model benchmarks: train a config on a pipeline run's data and
score it exactly as the Evaluator does (exported model, raw eval split, top-100
over the full catalogue with seen items excluded).

The data is the latest ExampleGen and Transform output under a pipeline root
(`make run` writes output/pipeline_root), so benchmarks see the pipeline's split.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scann  # noqa: E402, F401
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from models import features as F  # noqa: E402
from models import training  # noqa: E402
from models.baselines import fit_bias_model  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.data import read_transformed  # noqa: E402
from models.evaluation import evaluate_saved_model  # noqa: E402
from models.export import export_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DEFAULT_PIPELINE_ROOT = os.path.join(ROOT, "output", "pipeline_root")


SPANS_PRESETS = {"synthetic": "synthetic_spans", "movielens": "movielens_spans"}
"""The time-partitioned preset of each data set the replay stages."""


def run_spec(spec: str) -> tuple[str, str, str]:
    """Parses a `--run name=output_dir[,preset]` flag into (name, output_dir, preset or "")."""
    name, _, rest = spec.partition("=")
    out_dir, _, preset = rest.partition(",")
    return name, out_dir, preset


def write_results(name: str, data, table: str) -> None:
    """Writes `results/<name>.json` and `results/<name>.md`, and prints the table."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=2)
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(table)
    print(table)


def measure_subprocess(cmd: list[str], env: dict | None = None) -> dict:
    """Runs `cmd`; returns its wall time and the peak resident memory of it and its children.

    Raises:
        RuntimeError: with the end of stderr if the command fails.
    """
    import subprocess

    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr.read()[-3000:]}")
    return {"wall_s": wall, "peak_rss_gib": peak / 2**30}


def artifacts(pattern: str) -> list[str]:
    """The artifact directories matching `pattern`, oldest first (by their numeric id)."""
    return sorted(glob.glob(pattern), key=lambda p: int(os.path.basename(p)))


def latest(pattern: str, marker: str | None = None) -> str:
    """The newest artifact directory matching `pattern` (holding `marker`: a finished one).

    Raises:
        ValueError: if none matches.
    """
    paths = [p for p in artifacts(pattern) if marker is None or glob.glob(os.path.join(p, marker))]
    if not paths:
        held = f" holding {marker!r}" if marker else ""
        raise ValueError(f"nothing matches {pattern!r}{held}: run the pipeline first")
    return paths[-1]


@dataclasses.dataclass(frozen=True)
class RunData:
    """File patterns of one pipeline run's splits."""

    tf_transform_output: tft.TFTransformOutput
    train: str
    eval: str
    catalog: str
    raw_eval: str

    @classmethod
    def latest(cls, pipeline_root: str = DEFAULT_PIPELINE_ROOT) -> RunData:
        """The newest Transform and ExampleGen outputs under `pipeline_root`."""
        graph = latest(os.path.join(pipeline_root, "Transform", "transform_graph", "*"))
        examples = latest(os.path.join(pipeline_root, "Transform", "transformed_examples", "*"))
        raw = latest(os.path.join(pipeline_root, "MultiLogExampleGen", "examples", "*"))
        return cls(
            tft.TFTransformOutput(graph),
            os.path.join(examples, "Split-train", "*"),
            os.path.join(examples, "Split-eval", "*"),
            os.path.join(examples, "Split-catalog", "*"),
            os.path.join(raw, "Split-eval", "*"),
        )


def served_outputs(model_dir: str, raw_pattern: str) -> dict[str, np.ndarray]:
    """The `evaluate` signature's outputs for every raw event under `raw_pattern`, in file order.

    `evaluate` gives each event exactly the inputs `retrieve` and `rate` get for
    its user, so these are the served figures.
    """
    from contracts import names

    evaluate = tf.saved_model.load(model_dir).signatures[names.EVALUATE]
    parts: dict[str, list] = {}
    files = sorted(tf.io.gfile.glob(raw_pattern))
    for records in tf.data.TFRecordDataset(files, "GZIP").batch(1024):
        for key, value in evaluate(**{names.EXAMPLES_INPUT: records}).items():
            parts.setdefault(key, []).append(value.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def served_figures(outputs: dict[str, np.ndarray], ks=(10, 100)) -> dict[str, float]:
    """Hit rates at each K, RMSE, and the trivial baselines' of `served_outputs`."""
    from contracts import names

    counted = outputs[names.RETRIEVAL_WEIGHT_OUTPUT] > 0
    rated = outputs[names.RATING_WEIGHT_OUTPUT] > 0
    label = outputs[names.RATING_LABEL_OUTPUT][rated].astype(np.float64)
    out = {}
    for k in ks:
        out[f"top_{k}"] = float(np.mean(outputs[names.RANK_OUTPUT][counted] <= k))
        out[f"popular_top_{k}"] = float(np.mean(outputs[names.POPULAR_RANK_OUTPUT][counted] <= k))
    for key, output in (("rmse", names.RATING_OUTPUT), ("bias_rmse", names.BIAS_RATING_OUTPUT)):
        out[key] = float(np.sqrt(np.mean((outputs[output][rated] - label) ** 2)))
    return out


def keep_ratings(percent: int, seed: int = 42) -> training.EventMap:
    """Hides the ratings of all but `percent`% of rated events (a seeded pair hash).

    Events stay (they still train retrieval); only their rating mask drops, so
    smaller shares are subsets of larger ones.
    """

    def apply(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        key = (
            tf.strings.as_string(seed)
            + "|"
            + tf.strings.as_string(features[F.USER_IDX])
            + "|"
            + tf.strings.as_string(features[F.ITEM_IDX])
        )
        kept = tf.cast(tf.strings.to_hash_bucket_fast(key, 100) < percent, tf.float32)
        return {**features, F.RATING_MASK: features[F.RATING_MASK] * kept}

    return apply


def train_and_score(
    config: ModelConfig,
    data: RunData,
    rating_percent: int = 100,
) -> dict[str, float]:
    """Trains `config`, exports it and evaluates it like the pipeline's Evaluator.

    Returns:
        rmse, top_100 (seen items excluded), train_examples_per_second,
        rating_tower_params.
    """
    start = time.perf_counter()
    model, final = training.train(
        config,
        data.tf_transform_output,
        data.train,
        data.eval,
        data.catalog,
        map_events=keep_ratings(rating_percent) if rating_percent < 100 else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        dirs = export_models(
            model,
            config,
            data.tf_transform_output,
            data.train,
            data.eval,
            data.catalog,
            tmp + "/m/x",
        )
        metrics = evaluate_saved_model(dirs["brute_force"], data.raw_eval, config.top_k)
    return {
        "rmse": metrics.rmse,
        "top_100": metrics.top_k_accuracy,
        "train_examples_per_second": final["train_examples_per_second"],
        "rating_tower_params": int(model.rating_tower.count_params()),
        "seconds": time.perf_counter() - start,
    }


def baselines(data: RunData, rating_percent: int = 100, reg: float = 10.0) -> dict[str, float]:
    """Mean + regularised user/item biases RMSE and most-rated top-100, same split.

    Biases are fitted by alternating regularised means (5 sweeps) on the kept
    training ratings. Popularity ranks items by their kept training ratings and
    is scored with and without excluding each user's training items.
    """
    train = _arrays(
        data.train, data, keep_ratings(rating_percent) if rating_percent < 100 else None
    )
    evaluation = _arrays(data.eval, data, None)
    rated = train["mask"] > 0
    u, i, r = train["user"][rated], train["item"][rated], train["rating"][rated]
    n_users, n_items = (
        int(train["user"].max() + 2),
        int(max(train["item"].max(), evaluation["item"].max()) + 2),
    )
    bias = fit_bias_model(u, i, r, n_users, n_items, damping=reg)
    e_rated = evaluation["mask"] > 0
    eu, ei, er = (
        evaluation["user"][e_rated],
        evaluation["item"][e_rated],
        evaluation["rating"][e_rated],
    )
    rmse = float(np.sqrt(np.mean((np.clip(bias.predict(eu, ei), 0.5, 5.0) - er) ** 2)))
    order = np.argsort(-np.bincount(i, None, n_items), kind="stable")
    top = set(order[:100].tolist())
    plain = float(np.mean([x in top for x in ei]))
    seen: dict[int, set[int]] = {}
    for uu, ii in zip(train["user"], train["item"], strict=True):
        seen.setdefault(int(uu), set()).add(int(ii))
    hits = 0
    for uu, ii in zip(eu, ei, strict=True):
        s = seen.get(int(uu), set())
        recs = [x for x in order[: 100 + len(s)].tolist() if x not in s][:100]
        hits += int(ii) in recs
    return {"bias_rmse": rmse, "popular_top_100": plain, "popular_unseen_top_100": hits / len(eu)}


def _arrays(pattern: str, data: RunData, map_events) -> dict[str, np.ndarray]:
    dataset = read_transformed(pattern, data.tf_transform_output, 8192)
    if map_events:
        dataset = dataset.map(map_events)
    out: dict[str, list] = {"user": [], "item": [], "rating": [], "mask": []}
    for b in dataset:
        out["user"].append(b[F.USER_IDX].numpy())
        out["item"].append(b[F.ITEM_IDX].numpy())
        out["rating"].append(b[F.RATING].numpy())
        out["mask"].append(b[F.RATING_MASK].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}
