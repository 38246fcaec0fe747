"""History at request time, two-stage `recommend`, and early stopping, on a temporal split.

Reads finished time-partitioned pipeline runs (e.g. the last run of
`benchmarks/replay.py`: trained on the earlier spans of the window, evaluated on
the newest span) and measures, through the reloaded SavedModels' signatures:

- users absent from training, given their first m events of the evaluation span
  as `recent_item_ids`: top-100 hit rate on their later events, against the
  OOV answer (no history) and the most popular items they have not consumed;
- known users, the same fresh history against their id (and training history) only;
- `recommend` (candidates re-ranked by the rating tower) against `retrieve`:
  top-10 hit rate on the evaluation events and RMSE of the predicted ratings
  of the rated events each returned;
- latency of both at batch 1 and 64, brute force and ScaNN.

    .venv/bin/python benchmarks/history.py --run synthetic=/tmp/replay/synthetic/out \
        --run movielens=/tmp/replay/movielens/out

Writes benchmarks/results/history.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scann  # noqa: E402, F401
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from benchmarks.harness import SPANS_PRESETS, latest, run_spec, write_results  # noqa: E402
from benchmarks.raw_events import Events, by_user, read_events  # noqa: E402
from contracts import layout, names  # noqa: E402
from models import export, training, warmstart  # noqa: E402
from models import features as F  # noqa: E402
from models.inputs import training_inputs  # noqa: E402
from pipeline.presets import PRESETS  # noqa: E402

HISTORY_EVENTS = (1, 5)


def padded(rows: list[list[bytes]]) -> tf.Tensor:
    width = max(1, *(len(r) for r in rows))
    return tf.constant([[*r, *([b""] * (width - len(r)))] for r in rows], tf.string)


def recommend(model, users, recent, exclude, k: int) -> dict[str, np.ndarray]:
    out = model.signatures[names.RECOMMEND](
        user_id=tf.constant(users),
        recent_item_ids=padded(recent),
        exclude_item_ids=padded(exclude),
        k=tf.constant(k, tf.int32),
    )
    return {key: value.numpy() for key, value in out.items()}


def in_batches(n: int, size: int = 256):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def history_hits(model, events: Events, groups, users, m: int, evaluated) -> dict:
    """Top-100 hit rates of later events given each user's first m as history.

    Against the same request without history, once with the history's items
    excluded (`unseen`: a new user's most popular unseen items, a known user's
    id-only answer) and once without (`plain`: a new user's OOV answer).
    """
    cases = []
    for user in users:
        rows = groups[user]
        history = list(dict.fromkeys(events.items[rows[:m]].tolist()))
        later = [
            i
            for i, t in zip(events.items[rows[m:]], events.types[rows[m:]], strict=True)
            if t in evaluated and i not in history
        ]
        if len(rows) > m and later:
            cases.append((user, history, later))
    totals = dict.fromkeys(("with_history", "with_history_retrieval_order", "plain", "unseen"), 0)
    targets = 0
    for part in in_batches(len(cases)):
        chunk = cases[part]
        ids = [c[0] for c in chunk]
        hist = [c[1] for c in chunk]
        none = [[] for _ in chunk]
        answers = {
            "with_history": recommend(model, ids, hist, none, 100)[names.ITEM_IDS_OUTPUT],
            "plain": recommend(model, ids, none, none, 100)[names.ITEM_IDS_OUTPUT],
            "unseen": recommend(model, ids, none, hist, 100)[names.ITEM_IDS_OUTPUT],
        }
        wide = recommend(model, ids, hist, none, 200)
        by_retrieval = np.argsort(-wide[names.RETRIEVAL_SCORES_OUTPUT], axis=1, kind="stable")
        answers["with_history_retrieval_order"] = np.take_along_axis(
            wide[names.ITEM_IDS_OUTPUT], by_retrieval, 1
        )[:, :100]
        for key, lists in answers.items():
            for (_, _, later), got in zip(chunk, lists, strict=True):
                totals[key] += len(set(later) & set(got.tolist()))
        targets += sum(len(c[2]) for c in chunk)
    out = {k: v / targets if targets else float("nan") for k, v in totals.items()}
    return {**out, "users": len(cases), "events": targets}


def recommend_vs_retrieve(model, events: Events, groups, known, evaluated) -> dict:
    """Top-10 hit rate and the RMSE of the ratings of rated events hit, per signature."""
    users = [u for u in known if any(t in evaluated for t in events.types[groups[u]])]
    result = {}
    for name in ("retrieve", "recommend"):
        hits = events_scored = 0
        errors = []
        for part in in_batches(len(users)):
            ids = users[part]
            if name == "retrieve":
                out = model.signatures[names.RETRIEVE](
                    user_id=tf.constant(ids), k=tf.constant(10, tf.int32)
                )
                lists = out[names.ITEM_IDS_OUTPUT].numpy()
            else:
                lists = recommend(model, ids, [[] for _ in ids], [[] for _ in ids], 10)[
                    names.ITEM_IDS_OUTPUT
                ]
            for user, got in zip(ids, lists, strict=True):
                rows = groups[user]
                got = set(got.tolist())
                for r in rows:
                    if events.types[r] in evaluated:
                        events_scored += 1
                        hits += events.items[r] in got
                rated = [r for r in rows if events.rated[r] and events.items[r] in got]
                if rated:
                    pred = model.signatures[names.RATE](
                        user_id=tf.constant([user] * len(rated)),
                        item_id=tf.constant(events.items[rated]),
                    )[names.RATING_OUTPUT].numpy()
                    errors.extend(pred - events.ratings[rated])
        result[name] = {
            "top_10": hits / events_scored,
            "rated_hits": len(errors),
            "rmse_of_hits": float(np.sqrt(np.mean(np.square(errors)))) if errors else None,
        }
    return result


def latency(model, users: list[bytes], batch: int, calls: int = 30) -> dict[str, float]:
    ids = (users * (batch // max(1, len(users)) + 1))[:batch]
    none = [[] for _ in ids]
    runs = {
        "retrieve": lambda: model.signatures[names.RETRIEVE](
            user_id=tf.constant(ids), k=tf.constant(10, tf.int32)
        ),
        "recommend": lambda: recommend(model, ids, none, none, 10),
    }
    out = {}
    for name, call in runs.items():
        for _ in range(3):
            call()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times) * 1e3)
    return out


def without_eval_span(root: str, transform, preset: str, export_dir: str) -> str:
    """Re-exports the run's trained model as if the evaluation span had not happened.

    The pushed model knows the evaluation span's events (it excludes them and
    keeps them in the users' served histories), so known users' later events
    could never be hit. This restores the Trainer's weights
    (`Format-Warmstart`) into a model built on the same Transform output and
    exports it from the training events only: the state a model is in when the
    evaluation span's events arrive.

    Returns:
        The brute-force model's directory.

    Raises:
        ValueError: if a weight could not be restored unchanged.
    """
    config = PRESETS[preset].model
    trained = latest(os.path.join(root, "Trainer", "model", "*"), "Format-Warmstart")
    examples = latest(os.path.join(root, "Transform", "transformed_examples", "*"), "Split-catalog")
    train, evaluation, catalog = (
        [os.path.join(examples, f"Split-{s}", "*")] for s in ("train", "eval", "catalog")
    )
    setup = training.prepare(transform, train, catalog, events=config.events)
    model = training.new_model(config, setup)
    inputs = training_inputs(config, transform, train, evaluation, setup.stats.item_probabilities)
    model(next(iter(inputs.fit)))
    restored = warmstart.warm_start(
        model, warmstart.vocabularies(transform), os.path.join(trained, "Format-Warmstart")
    )
    changed = {
        k: v
        for k, v in restored.items()
        if v != "carried" and not (v.startswith("remapped") and v.split()[1] == v.split()[3])
    }
    if changed:
        raise ValueError(f"weights not restored from {trained}: {changed}")
    return export.export_models(model, config, transform, train, [], catalog, export_dir)[
        "brute_force"
    ]


def measure(name: str, out_dir: str, preset: str) -> dict:
    root = os.path.join(out_dir, "pipeline_root")
    model_dir = latest(
        os.path.join(root, "Trainer", "model", "*"), "Format-Serving-ScaNN/saved_model.pb"
    )
    window = latest(os.path.join(root, "TemporalWindow", "examples", "*"), "Split-eval")
    transform = tft.TFTransformOutput(
        latest(os.path.join(root, "Transform", "transform_graph", "*"), "transform_fn")
    )
    events = read_events(os.path.join(window, f"Split-{names.EVAL}", "*"))
    known_ids = set(transform.vocabulary_by_name(F.USER_VOCAB))
    groups = by_user(events)
    evaluated = {t.encode() for t in PRESETS[preset].model.events.evaluated_retrieval_events()}
    known = [u for u in groups if u in known_ids]
    new = [u for u in groups if u not in known_ids]
    result = {"eval_events": len(events.users), "known_users": len(known), "new_users": len(new)}
    models = {
        "brute_force": tf.saved_model.load(os.path.join(model_dir, "Format-Serving")),
        "scann": tf.saved_model.load(os.path.join(model_dir, layout.SCANN_DIR_NAME)),
    }
    bf = models["brute_force"]
    result["new_users_history"] = {
        m: history_hits(bf, events, groups, new, m, evaluated) for m in HISTORY_EVENTS
    }
    every_type = set(np.unique(events.types).tolist())
    if every_type != evaluated:
        result["new_users_history_any_event"] = {
            m: history_hits(bf, events, groups, new, m, every_type) for m in HISTORY_EVENTS
        }
    unaware = tf.saved_model.load(
        without_eval_span(root, transform, preset, os.path.join(out_dir, "without_eval_span"))
    )
    result["known_users_history"] = {
        m: history_hits(unaware, events, groups, known, m, evaluated) for m in HISTORY_EVENTS
    }
    result["recommend_vs_retrieve"] = recommend_vs_retrieve(
        unaware, events, groups, known, evaluated
    )
    result["latency_ms"] = {
        kind: {b: latency(model, known, b) for b in (1, 64)} for kind, model in models.items()
    }
    print(name, result, flush=True)
    return result


def _pct(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def table(results: dict[str, dict]) -> str:
    lines = [
        "# Request-time history and two-stage recommend (temporal split)",
        "",
        "Measured by `benchmarks/history.py` in one run on this machine (2 cores, CPU), "
        "on a time-partitioned run per data set (all spans of `benchmarks/replay.py`'s "
        "staging delivered at once): trained on the earlier spans of the window, "
        "evaluated on the newest span; every figure goes through the "
        "reloaded SavedModel's signatures (brute force unless noted). Hit rates count the "
        "later events of the evaluated types whose item is in the list.",
    ]
    for name, r in results.items():
        lines += [
            "",
            f"## {name}",
            "",
            f"Evaluation span: {r['eval_events']:,} events, {r['known_users']:,} known users, "
            f"{r['new_users']:,} users absent from training.",
            "",
            "| users | history given | users (events) | top-100: with history (recommend) "
            "| with history (retrieval order) | no history (new: OOV answer) "
            "| no history, history excluded (new: most popular unseen; known: id only) "
            "| with history / no history excluded |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = (
            ("new", "new_users_history"),
            ("new, later events of any type", "new_users_history_any_event"),
            ("known", "known_users_history"),
        )
        for label, key in rows:
            for m, h in r.get(key, {}).items():
                ratio = h["with_history"] / h["unseen"] if h["unseen"] else None
                lines.append(
                    f"| {label} | first {m} | {h['users']:,} ({h['events']:,}) "
                    f"| {_pct(h['with_history'])} | {_pct(h['with_history_retrieval_order'])} "
                    f"| {_pct(h['plain'])} | {_pct(h['unseen'])} "
                    f"| {'-' if ratio is None else f'{ratio:.2f}x'} |"
                )
        lines += [
            "",
            "Known users are measured on the same trained weights exported from the "
            "training events only (`without_eval_span`): the pushed model already knows "
            "the evaluation span's events and excludes them, so its hit rates on them "
            'are 0 by construction. Their "no history" answer is the id with the '
            "training history the model holds.",
            "",
            "| known users, no request history | top-10 hit rate | rated events hit "
            "| RMSE of their predicted ratings |",
            "|---|---|---|---|",
        ]
        for signature, x in r["recommend_vs_retrieve"].items():
            lines.append(
                f"| `{signature}` | {_pct(x['top_10'])} | {x['rated_hits']:,} "
                f"| {_pct(x['rmse_of_hits'])} |"
            )
        lat = r["latency_ms"]
        lines += [
            "",
            "| latency, median ms (k = 10) | retrieve | recommend | recommend / retrieve |",
            "|---|---|---|---|",
        ]
        for kind, by_batch in lat.items():
            for batch, t in by_batch.items():
                lines.append(
                    f"| {kind}, batch {batch} | {t['retrieve']:.1f} | {t['recommend']:.1f} "
                    f"| {t['recommend'] / t['retrieve']:.2f}x |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measures each run given and writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="name=output_dir[,preset] of a finished time-partitioned run",
    )
    parser.add_argument("--name", default="history", help="results file name")
    args = parser.parse_args()

    results = {}
    for name, out_dir, preset in map(run_spec, args.run):
        results[name] = measure(name, out_dir, preset or SPANS_PRESETS.get(name, ""))
    write_results(args.name, results, table(results))


if __name__ == "__main__":
    main()
