"""The one feature registry: names of raw and transformed features.

Raw features are what ExampleGen writes and the curated schema describes;
transformed features are what `preprocessing_fn` emits and the model reads.
Vocabularies and their sizes are never written here: they come from Transform.
"""

from typing import Final

# Raw features (ExampleGen output, schema/schema.pbtxt).
USER_ID: Final = "user_id"
ITEM_ID: Final = "item_id"
EVENT_TYPE: Final = "event_type"
RATING: Final = "rating"
TIMESTAMP: Final = "timestamp"
TITLE: Final = "title"
GENRES: Final = "genres"
"""The item's category tokens: every categorical attribute of the catalogue."""
TEXT: Final = "text"
"""More item text (the catalogue's `text_columns`), tokenised with the title; only
written, and only in the schema, when a catalogue declares text columns."""

# Transformed features (Transform output, model input).
USER_IDX: Final = "user_idx"
ITEM_IDX: Final = "item_idx"
GENRE_IDS: Final = "genre_ids"
TITLE_TOKENS: Final = "title_tokens"
YEAR_BUCKET: Final = "year_bucket"
RATING_MASK: Final = "rating_mask"

# Added by the training input pipeline and by the served model (not by Transform):
# the user's recent items before the event, item index + 1, 0 pads (`models.history`).
HISTORY: Final = "history"

# Added by the training input pipeline (not by Transform): the share of
# training events on the item, for the in-batch softmax's logQ correction.
ITEM_PROB: Final = "item_sampling_probability"
# Added by the training input pipeline from `ModelConfig.retrieval_events`: how
# much each event counts in the retrieval loss.
RETRIEVAL_WEIGHT: Final = "retrieval_weight"

# Vocabulary names in the transform graph.
USER_VOCAB: Final = "user_id_vocab"
ITEM_VOCAB: Final = "item_id_vocab"
GENRE_VOCAB: Final = "genre_vocab"
TITLE_VOCAB: Final = "title_token_vocab"

OOV_BUCKETS: Final = 1
"""Each id vocabulary maps unknown values to one extra bucket at index `size`."""

MAX_GENRES: Final = 10
"""Genre slots per item; genre ids are shifted by one so that 0 is padding."""

MAX_TITLE_TOKENS: Final = 8
"""Title token slots per item (lower-cased words without the year); 0 pads."""

TITLE_MIN_COUNT: Final = 2
"""Title tokens seen fewer times (in train + catalogue rows) share the OOV id."""

YEAR_BUCKETS: Final = 20
"""Release-year quantile buckets (boundaries computed by Transform); 0 = no year."""

ITEM_TOKEN_VOCABULARIES: Final = {GENRE_IDS: GENRE_VOCAB, TITLE_TOKENS: TITLE_VOCAB}
"""Item id-list features whose ids index a Transform vocabulary (feature -> vocabulary
name). With YEAR_BUCKET they are the padded id lists the item tower mean-pools."""

PASSTHROUGH: Final = (USER_ID, ITEM_ID, TITLE, EVENT_TYPE)
"""Raw string features copied to the transformed examples (user ids, so that a
user outside the vocabulary keeps their known items; candidate ids, titles, and
the event type each task selects its events by); TIMESTAMP (an int, which orders
each user's history) is copied too."""
