"""A small genre data set with a known right answer for the language-model interest model.

Four genres of six items each, plus one cold item per genre that nobody interacted with. Each
user watches items of one genre only, in a fixed cyclic order, and has a profile text naming the
genre. Item text names the genre and nothing else, so text alone separates genres (and only IDs separate
items within a genre).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog, UserTexts

GENRES = ["action", "comedy", "drama", "horror"]
PER_GENRE = 6
N_USERS = 32
N_WARM = len(GENRES) * PER_GENRE  # items 0..23
COLD = np.arange(N_WARM, N_WARM + len(GENRES))  # items 24..27, cold item of genre g is 24 + g
N_ITEMS = N_WARM + len(GENRES)


def genre_of_item(i: int) -> int:
    return i // PER_GENRE if i < N_WARM else i - N_WARM


def genre_of_user(u: int) -> int:
    return u % len(GENRES)


def genre_dataset(n_events: int = PER_GENRE) -> Dataset:
    rows = []
    for u in range(N_USERS):
        g = genre_of_user(u)
        for t in range(n_events):
            rows.append((f"u{u}", f"i{g * PER_GENRE + (t + u) % PER_GENRE}", float(1000 * t), float(1 + (t + u) % 5)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    inter = Interactions.from_frame(
        frame,
        rating_col="rating",
        user_map=IdMap(f"u{u}" for u in range(N_USERS)),
        item_map=IdMap(f"i{i}" for i in range(N_ITEMS)),
    )
    titles = [f"{GENRES[genre_of_item(i)]} film" for i in range(N_ITEMS)]  # text names the genre only
    catalog = ItemCatalog(
        pd.DataFrame(
            {"title": titles, "genre": [GENRES[genre_of_item(i)] for i in range(N_ITEMS)]},
            index=[f"i{i}" for i in range(N_ITEMS)],
        ),
        text_fields=["title"],
        categorical=["genre"],
    )
    users = UserTexts(
        pd.DataFrame(
            {
                "user_id": [f"u{u}" for u in range(N_USERS)],
                "kind": "profile",
                "text": [f"likes {GENRES[genre_of_user(u)]}" for u in range(N_USERS)],
            }
        )
    )
    return Dataset(inter, catalog, users, name="genres")
