"""Hyperparameters of the multi-task recommender, as one frozen, JSON-able config."""

from __future__ import annotations

import dataclasses
import math

from contracts import jsonable
from contracts.names import RETRIEVAL_K

DCN_STRUCTURES = ("stacked", "parallel")
RETRIEVAL_NEGATIVES = ("in_batch", "catalogue")
SCANN_SEARCHED_PER_RESULT = 20
"""Default ScaNN searches enough leaves to score this many candidates per result."""
SCANN_SEARCH_SHARE_SCALE = 2.0
"""Default ScaNN searches 2 / N**0.2 of its leaves (32% at 10K, 20% at 100K, 13% at 1M);
benchmarks/results/scann.md holds the sweep that chose it."""


@dataclasses.dataclass(frozen=True)
class DCNConfig:
    """Shape of the Deep & Cross Network rating tower.

    Attributes:
        structure: "stacked" (cross layers feed the deep layers) or "parallel"
            (cross and deep layers both read the input; outputs concatenated).
        num_cross_layers: Number of `tfrs.layers.dcn.Cross` layers (>= 0).
        projection_dim: None for full-rank cross layers, else the low-rank size.
        deep_layers: Widths of the ReLU layers of the deep part.
        dot_product: Add a learned multiple of the user-item dot product (the
            retrieval score) to the tower's output. Off by default; the synthetic
            presets, whose ratings are planted on that dot product, switch it on.
    """

    structure: str = "stacked"
    num_cross_layers: int = 2
    projection_dim: int | None = None
    deep_layers: tuple[int, ...] = (64, 32)
    dot_product: bool = False

    def __post_init__(self) -> None:
        if self.structure not in DCN_STRUCTURES:
            raise ValueError(
                f"DCN structure must be one of {DCN_STRUCTURES}, got {self.structure!r}"
            )
        if self.num_cross_layers < 0:
            raise ValueError(f"num_cross_layers must be >= 0, got {self.num_cross_layers}")
        if self.projection_dim is not None and self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be positive or None, got {self.projection_dim}")
        if any(w <= 0 for w in self.deep_layers):
            raise ValueError(f"deep_layers widths must be positive, got {self.deep_layers}")


@dataclasses.dataclass(frozen=True)
class ScannConfig(jsonable.JsonDataclass):
    """ScaNN index parameters; None picks a default scaled by the catalogue size.

    Defaults for N candidates and k results: `num_leaves` ~ sqrt(N) (at most
    N / 50, so a leaf holds 50+ items); `num_leaves_to_search` is 2 / N**0.2 of
    the leaves and covers at least 20 * k candidates; `num_reordering_candidates` =
    max(1000, 10 * k), rescored exactly. On the benchmark's catalogues this keeps
    recall@100 against brute force >= 0.95 (benchmarks/results/scann.md).

    Attributes:
        num_leaves: Partitions of the tree (k-means clusters).
        num_leaves_to_search: Partitions each query scores.
        num_reordering_candidates: Approximate neighbours rescored exactly.
        dimensions_per_block: Asymmetric-hashing block size (quantization).
        training_iterations: k-means iterations of the partitioning.
        training_threads: Threads that train the index (0 = all cores).
        min_recall: Floor on ScaNN's recall@K against the exact search. At export
            the search is widened (more leaves) until half of the evaluation
            users reach it; the other half then gates the twin: below the
            floor the ScaNN twin is not pushed (the brute-force model is).
    """

    num_leaves: int | None = None
    num_leaves_to_search: int | None = None
    num_reordering_candidates: int | None = None
    dimensions_per_block: int = 2
    training_iterations: int = 12
    training_threads: int = 1
    min_recall: float = 0.95

    def __post_init__(self) -> None:
        if not 0 <= self.min_recall <= 1:
            raise ValueError(f"ScannConfig.min_recall must be in [0, 1], got {self.min_recall}")
        for name in ("num_leaves", "num_leaves_to_search", "num_reordering_candidates"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"ScannConfig.{name} must be positive or None, got {value}")
        for name in ("dimensions_per_block", "training_iterations", "training_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ScannConfig.{name} must be positive, got {getattr(self, name)}")

    def resolved(self, num_candidates: int, k: int) -> dict[str, int]:
        """Returns leaves, leaves to search and reordering candidates for N candidates.

        Raises:
            ValueError: if the catalogue is empty or an explicit value is inconsistent.
        """
        if num_candidates <= 0:
            raise ValueError(f"a ScaNN index needs candidates, got {num_candidates}")
        leaves = self.num_leaves or max(
            1, min(round(math.sqrt(num_candidates)), num_candidates // 50)
        )
        per_leaf = num_candidates / leaves
        share = SCANN_SEARCH_SHARE_SCALE / num_candidates**0.2
        wanted = max(math.ceil(share * leaves), math.ceil(SCANN_SEARCHED_PER_RESULT * k / per_leaf))
        to_search = self.num_leaves_to_search or min(leaves, wanted)
        if to_search > leaves:
            raise ValueError(f"num_leaves_to_search {to_search} exceeds num_leaves {leaves}")
        reorder = self.num_reordering_candidates or max(1000, 10 * k)
        return {
            "num_leaves": leaves,
            "num_leaves_to_search": to_search,
            "num_reordering_candidates": min(reorder, num_candidates),
        }


@dataclasses.dataclass(frozen=True)
class RecommendConfig(jsonable.JsonDataclass):
    """The served `recommend` signature: retrieve candidates, re-rank them, keep the top k.

    Attributes:
        candidates: Items retrieved (ScaNN or exact) and re-ranked per request;
            at least k.
        retrieval_weight: The re-ranking score is `predicted rating +
            retrieval_weight * retrieval score`; 0 orders by predicted rating.
            None: the Trainer chooses it among `blend_weights` by the top-10 hit
            rate of `recommend`'s lists on the early-stopping holdout, scored
            as served (`models.blend`); without a holdout, the largest.
        blend_weights: The weights that choice is made among; the largest
            should order by retrieval in effect, so that `recommend` is never
            chosen worse than retrieval order.
    """

    candidates: int = 200
    retrieval_weight: float | None = None
    blend_weights: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 1000.0)

    def __post_init__(self) -> None:
        weights = (
            *self.blend_weights,
            0.0 if self.retrieval_weight is None else self.retrieval_weight,
        )
        if self.candidates <= 0 or min(weights) < 0 or not self.blend_weights:
            raise ValueError(
                "RecommendConfig.candidates must be positive, retrieval_weight and "
                "blend_weights >= 0 (and some blend weight given), got "
                f"{self.candidates}, {self.retrieval_weight}, {self.blend_weights}"
            )

    def chosen(self, weight: float | None) -> RecommendConfig:
        """This config with `retrieval_weight` set: its own, else `weight`, else the largest."""
        if self.retrieval_weight is not None:
            return self
        fallback = max(self.blend_weights) if weight is None else float(weight)
        return dataclasses.replace(self, retrieval_weight=fallback)


@dataclasses.dataclass(frozen=True)
class FeatureConfig(jsonable.JsonDataclass):
    """Which data-set specific features Transform derives (the rest come from the schema).

    Attributes:
        title_year: Titles end in a release year, "Heat (1995)": the year becomes
            quantile buckets of the item tower and is left out of the title words
            (MovieLens' convention; off for other catalogues).
    """

    title_year: bool = False


@dataclasses.dataclass(frozen=True)
class TaskEvents(jsonable.JsonDataclass):
    """Which events train and evaluate each task: one source for Trainer and Evaluator.

    Attributes:
        retrieval: (event type, weight) pairs: the events that train retrieval
            and how much each counts; empty = every event, weight 1.
        rating: Event types whose ratings train and evaluate the rating task;
            empty = every event that carries a rating.
        retrieval_eval: Event types whose top-K accuracy the Evaluator measures
            and gates; empty = every event type `retrieval` trains on (every
            event when `retrieval` is empty).

    Raises:
        ValueError: on an unnamed event, a negative weight, no positive weight,
            or an evaluated event type that retrieval does not train on.
    """

    retrieval: tuple[tuple[str, float], ...] = ()
    rating: tuple[str, ...] = ()
    retrieval_eval: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [(e, w) for e, w in self.retrieval if not e or w < 0]
        if bad:
            raise ValueError(f"retrieval events need named events and weights >= 0, got {bad}")
        if self.retrieval and not any(w > 0 for _, w in self.retrieval):
            raise ValueError(
                f"retrieval events must give some event a weight > 0, got {self.retrieval}"
            )
        if not all(self.rating) or not all(self.retrieval_eval):
            raise ValueError(
                f"event types must be non-empty, got {self.rating} and {self.retrieval_eval}"
            )
        trained = {e for e, w in self.retrieval if w > 0}
        untrained = sorted(set(self.retrieval_eval) - trained) if self.retrieval else []
        if untrained:
            raise ValueError(
                f"retrieval_eval event type(s) {untrained} do not train retrieval "
                f"(retrieval trains on {sorted(trained)})"
            )

    def evaluated_retrieval_events(self) -> tuple[str, ...]:
        """Event types the top-K gate scores; empty = every event."""
        return self.retrieval_eval or tuple(e for e, w in self.retrieval if w > 0)


@dataclasses.dataclass(frozen=True)
class ModelConfig(jsonable.JsonDataclass):
    """Everything `run_fn` needs to build, train and export the model.

    Attributes:
        embedding_dim: Size of the shared user and item representations.
        history_length: Recent items the query tower reads (each event's history
            is built from the events strictly before it; a request may bring its
            own); 0 makes the query the user id alone.
        history_decay: Pooling weight of each history item relative to the next
            one (newest last): 1 is a plain mean, below 1 favours recent items.
        rate_from_history: The rating tower reads the history-aware query; False:
            the user id embedding alone (the retrieval query still reads the
            history).
        user_dropout: Share of training events whose user id is hidden (the OOV
            id), so the model learns to answer a new user from their history.
        retrieval_weight: Weight of the retrieval loss (0 disables the task's gradient).
        retrieval_negatives: What each training event's item competes with:
            "in_batch" the batch's other items (sampled by popularity, hence
            the logQ correction; scales to any catalogue), or "catalogue" every
            item (a softmax over the whole catalogue at every step, for
            catalogues small enough to score per step; it did not serve better
            lists here, benchmarks/results/served_negatives.md).
        sampling_correction: Exponent of the item sampling probability in the
            in-batch softmax's logQ correction: 1 corrects fully for popular items
            being frequent negatives, 0 not at all (popular items then score
            higher, as they are consumed more often).
        rating_weight: Weight of the rating loss (0 disables the task's gradient).
        dcn: Shape of the rating tower.
        epochs: Most passes over the training events (early stopping may stop sooner).
        batch_size: Events per step; also the in-batch negatives of retrieval.
        learning_rate: Adam's initial learning rate; it decays along a cosine to
            `final_learning_share` of it over `epochs`.
        final_learning_share: The learning rate at the last epoch, as a share of the first.
        early_stopping: Stop when the loss on `holdout_percent`% of the training
            events (held out by pair hash; never the evaluation split) stops
            improving for `patience` epochs, keeping the best epoch's weights.
        holdout_percent: Training events held out for early stopping.
        patience: Epochs without improvement before stopping.
        shuffle_buffer: Events held by the shuffle buffer.
        seed: Seed of initialisation and shuffling.
        top_k: The retrieval depth K: the FactorizedTopK metric reports top-10 and
            top-K, the Tuner's objective and the Evaluator's gate use top-K, and
            the index and ScaNN's defaults are sized for K results.
        exclude_seen: Exported models never recommend an item the user already
            interacted with in the training events.
        events: Which events train and evaluate each task.
        scann: Parameters of the ScaNN index of the ScaNN export.
        recommend: The served `recommend` signature's re-ranking.
        warm_start: Initialise from the last blessed model when the Trainer is
            given one (time-partitioned logs): ids both vocabularies share keep
            their rows, other weights of unchanged shape are carried over.
        warm_start_epochs: Most epochs of a warm-started training (instead of `epochs`).
        warm_start_new_events: A warm-started training fits only the training
            events later than its base model's latest one (what the base model
            never saw); every event still builds histories and the holdout.
            False fits the whole window again. Without event times, or with
            less than a batch of new events, the whole window is fitted.
        warm_start_learning_share: A warm-started training's first learning
            rate as a share of `learning_rate` (it decays the same way): the base
            model's weights need adjusting, not learning again.
        warm_start_rehearsal: With `warm_start_new_events`, also fit this many
            older window events per new one, drawn at random (seeded) from what
            the base model saw, so the update does not forget it; 0 fits the new
            events alone.
        rating_baseline: The rating tower adds to the damped bias model of the
            training ratings (`models.layers.RatingPrior`, fixed), so the model
            starts at the baseline the gate compares it with; False starts the
            tower at the mean rating and lets it learn the biases itself.
    """

    embedding_dim: int = 64
    history_length: int = 50
    history_decay: float = 0.9
    rate_from_history: bool = False
    user_dropout: float = 0.1
    retrieval_weight: float = 1.0
    retrieval_negatives: str = "in_batch"
    sampling_correction: float = 1.0
    rating_weight: float = 1.0
    dcn: DCNConfig = DCNConfig()
    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 0.01
    final_learning_share: float = 0.1
    early_stopping: bool = True
    holdout_percent: int = 5
    patience: int = 1
    shuffle_buffer: int = 100_000
    seed: int = 42
    top_k: int = RETRIEVAL_K
    exclude_seen: bool = True
    events: TaskEvents = TaskEvents()
    scann: ScannConfig = ScannConfig()
    recommend: RecommendConfig = RecommendConfig()
    warm_start: bool = True
    warm_start_epochs: int = 3
    warm_start_new_events: bool = True
    warm_start_learning_share: float = 0.3
    warm_start_rehearsal: float = 0.0
    rating_baseline: bool = True

    def __post_init__(self) -> None:
        for name in (
            "embedding_dim",
            "epochs",
            "batch_size",
            "shuffle_buffer",
            "top_k",
            "warm_start_epochs",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("retrieval_weight", "rating_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.retrieval_weight == 0 and self.rating_weight == 0:
            raise ValueError("at least one of retrieval_weight and rating_weight must be > 0")
        if self.retrieval_negatives not in RETRIEVAL_NEGATIVES:
            raise ValueError(
                f"retrieval_negatives must be one of {RETRIEVAL_NEGATIVES}, "
                f"got {self.retrieval_negatives!r}"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.history_length < 0 or self.patience < 0:
            raise ValueError(
                f"history_length and patience must be >= 0, got {self.history_length}, "
                f"{self.patience}"
            )
        for name in ("user_dropout", "final_learning_share", "sampling_correction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.history_decay <= 1:
            raise ValueError(f"history_decay must be in (0, 1], got {self.history_decay}")
        if not 0 < self.warm_start_learning_share <= 1:
            raise ValueError(
                f"warm_start_learning_share must be in (0, 1], got {self.warm_start_learning_share}"
            )
        if self.warm_start_rehearsal < 0:
            raise ValueError(f"warm_start_rehearsal must be >= 0, got {self.warm_start_rehearsal}")
        if not 0 < self.holdout_percent < 100:
            raise ValueError(f"holdout_percent must be in (0, 100), got {self.holdout_percent}")

    @property
    def metric_ks(self) -> tuple[int, ...]:
        """Depths of the FactorizedTopK metric: 10 and `top_k`."""
        return tuple(sorted({10, self.top_k}))


@dataclasses.dataclass(frozen=True)
class TuningConfig(jsonable.JsonDataclass):
    """Search budget and space.

    Attributes:
        max_trials: Configurations tried (random search).
        epochs: Training epochs per trial.
        validation_percent: Share of training events held out to score trials.
        retrieval_weights: Candidate retrieval loss weights.
        rating_weights: Candidate rating loss weights.
        dcn_structures: Candidate DCN structures.
        dcn_cross_layers: Candidate numbers of cross layers.
        dcn_projection_dims: Candidate low-rank sizes; 0 means full rank.
        embedding_dims: Candidate sizes of the user and item representations.
        learning_rates: Candidate initial learning rates.
        history_lengths: Candidate history lengths (0: the user id alone).
        history_decays: Candidate recency weights of the history pooling.
        rate_from_history: Whether the rating tower reads the query (True) or
            the user id (False); candidates.
        seed: Seed of the search.
    """

    max_trials: int = 8
    epochs: int = 2
    validation_percent: int = 10
    retrieval_weights: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    rating_weights: tuple[float, ...] = (0.5, 1.0, 2.0)
    dcn_structures: tuple[str, ...] = ("stacked", "parallel")
    dcn_cross_layers: tuple[int, ...] = (1, 2, 3)
    dcn_projection_dims: tuple[int, ...] = (0, 16)
    embedding_dims: tuple[int, ...] = (32, 64)
    learning_rates: tuple[float, ...] = (0.003, 0.01)
    history_lengths: tuple[int, ...] = (20, 50)
    history_decays: tuple[float, ...] = (0.9, 1.0)
    rate_from_history: tuple[bool, ...] = (False, True)
    seed: int = 42

    def __post_init__(self) -> None:
        if self.max_trials <= 0 or self.epochs <= 0:
            raise ValueError(
                f"max_trials and epochs must be positive, got {self.max_trials}, {self.epochs}"
            )
        if not 0 < self.validation_percent < 100:
            raise ValueError(
                f"validation_percent must be in (0, 100), got {self.validation_percent}"
            )
        for name in (
            "retrieval_weights",
            "rating_weights",
            "dcn_structures",
            "dcn_cross_layers",
            "embedding_dims",
            "learning_rates",
            "history_lengths",
            "history_decays",
            "rate_from_history",
        ):
            if not getattr(self, name):
                raise ValueError(f"TuningConfig.{name} must not be empty")
