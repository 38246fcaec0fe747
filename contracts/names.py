"""Names that cross package boundaries: splits, signatures, tensors, config keys."""

from typing import Final

TRAIN: Final = "train"
EVAL: Final = "eval"
CATALOG: Final = "catalog"
EVENT_SPLITS: Final = (TRAIN, EVAL)
"""Splits of ExampleGen's Examples: events (train/eval) and one row per item (catalog)."""
EVENTS: Final = "events"
SPAN_SPLITS: Final = (EVENTS, CATALOG)
"""Splits of one span's Examples (time-partitioned logs): every event of the span, and
the catalogue as of the span. The temporal window assembles train/eval/catalog from them."""

TRAINER_EVAL_SPLITS: Final = (EVAL, CATALOG)
"""Splits the Trainer and Tuner receive as `eval_files`, in this order: validation
events, then the retrieval candidates. `models.entrypoints` unpacks them."""

TRAIN_SPANS_PROPERTY: Final = "train_spans"
EVAL_SPANS_PROPERTY: Final = "eval_spans"
"""Custom properties of the temporal window's Examples: its train and eval spans (JSON lists)."""

SERVING_DEFAULT: Final = "serving_default"
RETRIEVE: Final = "retrieve"
RETRIEVE_WITH_SEEN: Final = "retrieve_with_seen"
RATE: Final = "rate"
RECOMMEND: Final = "recommend"
EVALUATE: Final = "evaluate"
EVAL_FEATURES: Final = "eval_features"
SIGNATURES: Final = (
    SERVING_DEFAULT,
    RETRIEVE,
    RETRIEVE_WITH_SEEN,
    RATE,
    RECOMMEND,
    EVALUATE,
    EVAL_FEATURES,
)
"""Signatures of every exported model; `serving_default` is `retrieve`;
`retrieve_with_seen` does not exclude known items; `recommend` retrieves with
request-time history and exclusions and re-ranks by predicted rating; `evaluate`
(per-event predictions) and `eval_features` (slice features) are the Evaluator's."""

USER_ID_INPUT: Final = "user_id"
ITEM_ID_INPUT: Final = "item_id"
K_INPUT: Final = "k"
RECENT_ITEMS_INPUT: Final = "recent_item_ids"
EXCLUDE_ITEMS_INPUT: Final = "exclude_item_ids"
EXAMPLES_INPUT: Final = "examples"
ITEM_IDS_OUTPUT: Final = "item_ids"
TITLES_OUTPUT: Final = "titles"
SCORES_OUTPUT: Final = "scores"
RATING_OUTPUT: Final = "rating"
RETRIEVAL_SCORES_OUTPUT: Final = "retrieval_scores"
RANK_OUTPUT: Final = "rank"
RANK_WITH_SEEN_OUTPUT: Final = "rank_with_seen"
POPULAR_RANK_OUTPUT: Final = "popular_rank"
BIAS_RATING_OUTPUT: Final = "bias_rating"
RATING_LABEL_OUTPUT: Final = "rating_label"
RATING_WEIGHT_OUTPUT: Final = "rating_weight"
RETRIEVAL_WEIGHT_OUTPUT: Final = "retrieval_weight"
"""`evaluate` outputs: ranks of the event's item by the model (training items
excluded, and not) and by the most-popular-unseen baseline; the predicted rating
and the bias baseline's; the rating label; whether the event counts for the
rating (1/0) and the top-K (1/0) metrics."""

USER_ACTIVITY_SLICE: Final = "user_activity"
ITEM_POPULARITY_SLICE: Final = "item_popularity"
USER_KNOWN_SLICE: Final = "user_known"
ITEM_KNOWN_SLICE: Final = "item_known"
"""`eval_features` outputs: the slice features of the evaluation."""

MODEL_CONFIG_KEY: Final = "model"
TUNING_CONFIG_KEY: Final = "tuning"
"""`custom_config` keys of the Trainer and Tuner (the Trainer reads the model config only)."""
FEATURES_CONFIG_KEY: Final = "features"
CODE_VERSION_KEY: Final = "code_version"
"""custom_config key of the package code's fingerprint (`PipelineConfig.code_version`)."""
"""`custom_config` key of Transform: the data set's `FeatureConfig`."""

RETRIEVAL_K: Final = 100
"""The product's retrieval depth: top-K accuracy is gated, tuned and reported at this K."""


def top_k_metric(k: int, prefix: str = "") -> str:
    """Keras name of TFRS's FactorizedTopK accuracy at `k` (e.g. with prefix "val_")."""
    return f"{prefix}factorized_top_k/top_{k}_categorical_accuracy"
