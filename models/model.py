"""The multi-task TFRS model: shared towers, retrieval and rating tasks, weighted loss.

The model's code has no tensor-dependent Python control flow, so its graphs are
traced without AutoGraph: `train_step`, `test_step`, the candidate map and the
serving functions (`models.serving_module`) opt out. AutoGraph (TF 2.16) leaves
the `keras` package alone but not `tf_keras`, the Keras 2 that TFRS needs, so
every trace reaching a layer from converted code rewrote tf-keras's own layer
code. Measured on a 77K-event MovieLens window: building the model 6.2 s -> 0.2 s, the
first training step 12.8 s -> 4.8 s, bit-identical metrics.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models import features as F
from models.baselines import BiasModel
from models.config import ModelConfig
from models.layers import DCNRatingTower, ItemTower, RatingPrior, UserTower, rate
from models.tasks import CatalogueRetrievalTask, RatingTask


class Catalogue:
    """The item tower's features of every item index, for the catalogue softmax.

    A plain holder, so that Keras neither tracks nor saves the tensors.

    Args:
        features: Transformed item features, each [num_items + OOV, ...], row
            r describing item index r (`models.data.item_index_features`).
    """

    def __init__(self, features: dict[str, tf.Tensor]):
        self.features = {name: tf.constant(value) for name, value in features.items()}


class MultiTaskRecommender(tfrs.Model):
    """One model, two tasks sharing the user and item representations.

    Retrieval (a softmax over the item tower: the whole catalogue, or the
    batch's items with the logQ correction) learns from every event;
    rating regression (DCN tower over the same representations) learns only from
    events that carry a rating. Gradients of the rating task therefore flow into
    the towers the abundant retrieval task shapes, which is how the sparse task
    profits from the abundant one.

    Args:
        user_tower: Maps features to [batch, d] user representations.
        item_tower: Maps features to [batch, d] item representations.
        rating_tower: Maps (user, item) representations to [batch, 1] ratings.
        retrieval_task: A `tfrs.tasks.Retrieval`.
        rating_task: A `RatingTask`.
        retrieval_weight: Weight of the retrieval loss (>= 0).
        rating_weight: Weight of the rating loss (>= 0).
        rating_prior: Optional `RatingPrior` the rating tower's output is added to.
        rate_from_history: The rating tower reads the query (user id and history);
            False: the user id embedding alone (`UserTower.identity`).
        catalogue: Every item's features; given, retrieval trains on the
            catalogue softmax (`CatalogueRetrievalTask`) and `retrieval_task`
            only reports its metrics and the in-batch loss is not used.

    Raises:
        ValueError: if a weight is negative.
    """

    def __init__(
        self,
        user_tower: tf.keras.layers.Layer,
        item_tower: tf.keras.layers.Layer,
        rating_tower: tf.keras.layers.Layer,
        retrieval_task: tfrs.tasks.Retrieval,
        rating_task: RatingTask,
        retrieval_weight: float = 1.0,
        rating_weight: float = 1.0,
        rating_prior: RatingPrior | None = None,
        rate_from_history: bool = True,
        catalogue: Catalogue | None = None,
    ):
        super().__init__()
        if retrieval_weight < 0 or rating_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {retrieval_weight}, {rating_weight}")
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.rating_tower = rating_tower
        self.retrieval_task = retrieval_task
        self.rating_task = rating_task
        self.retrieval_weight = float(retrieval_weight)
        self.rating_weight = float(rating_weight)
        self.rating_prior = rating_prior
        self.rate_from_history = bool(rate_from_history)
        self.catalogue = catalogue
        self.catalogue_task = CatalogueRetrievalTask() if catalogue is not None else None

    def rate(self, queries: tf.Tensor, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """The rating tower's output [batch, 1] for queries, user indices and items [batch, d].

        The tower reads the queries, or the id embeddings with the queries for
        its dot product term (`rate_from_history`).
        """
        return rate(
            self.user_tower, self.rating_tower, queries, users, items, self.rate_from_history
        )

    @tf.autograph.experimental.do_not_convert
    def train_step(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """TFRS's training step, traced without AutoGraph (see the module doc)."""
        return super().train_step(inputs)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """TFRS's evaluation step, traced without AutoGraph (see the module doc)."""
        return super().test_step(inputs)

    def call(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Returns user [batch, d], item [batch, d] and rating [batch, 1] outputs."""
        user = self.user_tower(features)
        item = self.item_tower(features)
        rating = self.rate(user, features[F.USER_IDX], item)
        if self.rating_prior is not None:
            rating += self.rating_prior(features[F.USER_IDX], features[F.ITEM_IDX])
        return {"user": user, "item": item, "rating": rating}

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Returns `retrieval_weight * retrieval_loss + rating_weight * rating_loss`.

        Each event counts in the retrieval loss by `features[RETRIEVAL_WEIGHT]`
        (1 if absent) and in the rating loss by `features[RATING_MASK]`. With a
        catalogue the retrieval loss is the catalogue softmax; the in-batch task
        then runs outside training only, for its top-K metrics.

        Top-K metrics are only computed outside training: FactorizedTopK scores
        the whole catalogue and would dominate a training step. RMSE is cheap and
        always computed.
        """
        outputs = self(features)
        weights = features.get(F.RETRIEVAL_WEIGHT)
        retrieval_loss = None
        if self.catalogue is not None:
            retrieval_loss = self.catalogue_task(
                outputs["user"],
                self.item_tower(self.catalogue.features),
                features[F.ITEM_IDX],
                sample_weight=weights,
            )
        if retrieval_loss is None or not training:
            in_batch = self.retrieval_task(
                outputs["user"],
                outputs["item"],
                candidate_sampling_probability=features.get(F.ITEM_PROB),
                candidate_ids=features[F.ITEM_IDX],
                sample_weight=weights,
                compute_metrics=not training,
            )
            retrieval_loss = in_batch if retrieval_loss is None else retrieval_loss
        rating_loss = self.rating_task(
            labels=features[F.RATING],
            predictions=outputs["rating"],
            sample_weight=features[F.RATING_MASK],
        )
        return self.retrieval_weight * retrieval_loss + self.rating_weight * rating_loss


def mean_softmax_loss() -> tf.keras.losses.Loss:
    """In-batch softmax cross-entropy averaged over the batch.

    TFRS defaults to a batch sum, whose scale grows with the batch size and would
    swamp the (mean) rating loss; a mean keeps the loss weights interpretable.
    """
    return tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE
    )


def build_model(
    config: ModelConfig,
    num_users: int,
    num_items: int,
    token_vocab_sizes: dict[str, int],
    candidates: tf.data.Dataset | None = None,
    rating_prior: float | BiasModel = 0.0,
    catalogue: dict[str, np.ndarray] | None = None,
) -> MultiTaskRecommender:
    """Builds the model from a config and the Transform vocabulary sizes.

    Args:
        config: Hyperparameters.
        num_users: User vocabulary size.
        num_items: Item vocabulary size.
        token_vocab_sizes: Vocabulary sizes of the item's id-list features
            (see `ItemTower`).
        candidates: Batched transformed catalogue features; when given, the
            retrieval task reports FactorizedTopK metrics (top-10/100) over them.
        rating_prior: The mean training rating (the rating head's initial bias),
            or the damped bias model of the training ratings, which the rating
            tower then adds to (`RatingPrior`).
        catalogue: Every item index's features (`models.data.item_index_features`);
            given, retrieval trains on the catalogue softmax.
    """
    tf.keras.utils.set_random_seed(config.seed)
    item_tower = ItemTower(num_items, token_vocab_sizes, config.embedding_dim, name="item_tower")
    metrics = None
    if candidates is not None:
        metrics = tfrs.metrics.FactorizedTopK(
            candidates=candidates.map(
                tf.autograph.experimental.do_not_convert(lambda f: (f[F.ITEM_IDX], item_tower(f)))
            ),
            ks=config.metric_ks,
        )
    residual = isinstance(rating_prior, BiasModel)
    return MultiTaskRecommender(
        user_tower=UserTower(
            num_users,
            config.embedding_dim,
            num_items=num_items if config.history_length else None,
            history_decay=config.history_decay,
            name="user_tower",
        ),
        item_tower=item_tower,
        rating_tower=DCNRatingTower(
            config.dcn,
            seed=config.seed,
            rating_prior=0.0 if residual else float(rating_prior),
            residual=residual,
            name="rating_tower",
        ),
        retrieval_task=tfrs.tasks.Retrieval(
            loss=mean_softmax_loss(), metrics=metrics, remove_accidental_hits=True
        ),
        rating_task=RatingTask(),
        retrieval_weight=config.retrieval_weight,
        rating_weight=config.rating_weight,
        rating_prior=RatingPrior(
            rating_prior.mean, rating_prior.user_bias, rating_prior.item_bias, name="rating_prior"
        )
        if residual
        else None,
        rate_from_history=config.rate_from_history,
        catalogue=Catalogue(catalogue) if catalogue is not None else None,
    )
