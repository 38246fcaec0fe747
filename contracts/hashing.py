"""The one pair hash: which (user, item) pairs are held out, in ExampleGen and the Tuner."""

import hashlib

import numpy as np

BUCKETS = 100


def pair_bucket(user: str | bytes, item: str | bytes, seed: int) -> int:
    """Returns a bucket in [0, 100) for a (user, item) pair, stable across runs and machines.

    Every event of a pair gets the same bucket, so holding out buckets below a
    percentage holds out whole pairs: an interaction is never both trained on
    and evaluated.
    """
    user = user.decode() if isinstance(user, bytes) else user
    item = item.decode() if isinstance(item, bytes) else item
    digest = hashlib.blake2b(f"{seed}|{user}|{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def pair_buckets(users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """`pair_bucket` of aligned [n] arrays of ids (strings, bytes or integers); int64 [n]."""
    return np.array(
        [
            pair_bucket(_text(u), _text(i), seed)
            for u, i in zip(users.tolist(), items.tolist(), strict=True)
        ],
        dtype=np.int64,
    )


def _text(value) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else str(value)
