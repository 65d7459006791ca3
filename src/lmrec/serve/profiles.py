"""Online-profile math: pure functions over vectors, no I/O.

An event ``e`` of user ``u`` on item ``i`` moves the user's online profile towards the item's unit
vector ``H = v_i / |v_i|``::

    a   = min(1, alpha * w(e))                         w: the event type's weight (ratings scaled by value)
    P_u <- a * H + (1 - a) * d * P_u                   d = 1, or 2 ** (-dt / half_life) with time decay

so older events fade geometrically in the number of later events (and optionally in time). ``P_u``
starts at zero; only its direction matters downstream (`unit`), so the first event sets it to ``H``.

An event of negative weight (dislike, dismiss, skip) moves the profile away from the item, keeping
its length: ``a = min(1, alpha * |w|)``, ``P_u <- d * P_u - a * |d * P_u| * H``. Its cosine to ``H``
drops (unless the profile is ``H`` itself), and a profile that is still zero stays zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lmrec.serve.stores.base import Profile, StoredEvent

__all__ = ["absorb", "blend", "event_weight", "unit"]


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector / |vector|`` as float32; the zero vector stays zero."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def event_weight(
    event_type: str, value: float | None, weights: Mapping[str, float], *, rating_scale: float = 5.0
) -> float:
    """Weight of one event: the type's weight; a rating's is also scaled by ``clip(value / rating_scale, 0, 1)``.

    Raises:
        KeyError: the type is not in ``weights``.
    """
    w = float(weights[event_type])
    if event_type == "rating":
        w *= float(np.clip((value or 0.0) / rating_scale, 0.0, 1.0))
    return w


def absorb(
    profile: Profile | None,
    events: Sequence[StoredEvent],
    item_vectors: Sequence[np.ndarray | None],
    *,
    alpha: float,
    weights: Mapping[str, float],
    space: str,
    rating_scale: float = 5.0,
    half_life_s: float | None = None,
) -> Profile:
    """Apply events, oldest first, to a profile.

    Args:
        profile: the current profile; None (or one from another vector space) starts from zero.
        events: the events after the profile's watermark, in ``seq`` order.
        item_vectors: per event, its item's (d,) vector; None skips the event's vector (the item is
            gone) while still counting it and moving the watermark.
        alpha: step for an event of weight 1, in (0, 1].
        weights: event type -> weight.
        space: name of the current vector space, stored with the profile.
        rating_scale: see `event_weight`.
        half_life_s: optional time decay between events, in seconds.

    Returns:
        A new profile; the input is not modified.
    """
    if len(events) != len(item_vectors):
        raise ValueError(f"absorb: {len(events)} events but {len(item_vectors)} item vectors")
    dim = next((len(v) for v in item_vectors if v is not None), None)
    if profile is None or profile.space != space:
        vector = np.zeros(dim or 0, dtype=np.float32)
        n, last_seq, last_ts = 0, 0, 0.0
    else:
        vector = profile.vector.astype(np.float32).copy()
        n, last_seq, last_ts = profile.n_events, profile.last_seq, profile.last_ts
    for event, item in zip(events, item_vectors):
        n += 1
        last_seq = max(last_seq, event.seq)
        if item is not None:
            if vector.size == 0:
                vector = np.zeros(len(item), dtype=np.float32)
            w = event_weight(event.type, event.value, weights, rating_scale=rating_scale)
            a = min(1.0, alpha * abs(w))
            decay = 1.0
            if half_life_s is not None and n > 1:
                decay = 0.5 ** (max(0.0, event.ts - last_ts) / half_life_s)
            if w < 0:
                kept = decay * vector
                vector = (kept - a * float(np.linalg.norm(kept)) * unit(item)).astype(np.float32)
            else:
                vector = a * unit(item) + (1.0 - a) * decay * vector
        last_ts = max(last_ts, event.ts)
    return Profile(vector.astype(np.float32), n_events=n, last_seq=last_seq, last_ts=last_ts, space=space)


def blend(parts: Sequence[tuple[np.ndarray | None, float]]) -> np.ndarray | None:
    """``unit(sum_j w_j * unit(x_j))`` over the parts that exist (weights renormalised over them).

    Args:
        parts: ``(vector or None, weight)`` pairs.

    Returns:
        A (d,) unit float32 vector, or None when no part has a non-zero vector.
    """
    present = [(unit(v), w) for v, w in parts if v is not None and np.any(v)]
    if not present:
        return None
    total = sum(w for _, w in present)
    if total <= 0:
        # every weight is zero: the parts count equally rather than vanish
        present = [(v, 1.0) for v, _ in present]
    out = sum((w * v for v, w in present), np.zeros_like(present[0][0]))
    return unit(out)
