"""Synthetic RecBole atomic data with realistic structure, for scale work.

`synthesize` writes ``<name>.inter`` (user, item, rating, timestamp), ``<name>.item`` (item id, title,
categories, description) and ``<name>.synth.json`` (the config and the interest names) into a
directory. The structure gives every kind of model something to learn:

* item popularity follows a Zipf law (weight of the item of popularity rank ``r`` is
  ``(r + 1) ** -popularity_exponent``); per-user activity is log-normal (heavy-tailed);
* each item belongs to one latent interest; an interest's share of all events is proportional to
  its items' total popularity weight, so the item marginal stays Zipf;
* each user holds four interests: a start mixture over the first three moves towards an end mixture
  over the last three over the user's active time (``drift``), so one interest fades and a new one
  appears; events come in short sessions that stay in one interest (so the next item depends on the
  last ones and recency matters); a tenth of the sessions explore an interest drawn from the
  global prevalence;
* item text is built from the interest's vocabulary plus shared filler words, so items of the same
  interest share words; ``categories`` names the interest;
* timestamps increase within each user, over the user's active window inside the configured span;
* ratings 1-5 rise with the weight of the item's interest in the user's mixture at that time.

Without repeats an item has at most one event per user, which flattens the head of the popularity
law (the top items reach nearly every user of their interest); a repeat is redrawn (see `_dedupe`).

Generation is vectorised numpy over blocks of users holding about `BLOCK_EVENTS` events; each block
has its own random stream (derived from ``seed`` and the block number), so memory stays flat and
the same config always gives byte-identical files. Files are written with ``pyarrow.csv`` to a
temporary name and renamed at the end, so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm.auto import tqdm

logger = logging.getLogger("lmrec.data")

__all__ = ["SynthConfig", "SynthReport", "synthesize", "BLOCK_EVENTS", "FILLER_WORDS", "THEMES"]

BLOCK_EVENTS = 1 << 18  # events per generation block (part of the output's definition: do not change)
ITEM_BLOCK = 1 << 16  # items per text-generation block (likewise)
ACTIVITY_SIGMA = 1.2  # log-normal sigma of per-user activity
SLOTS = 4  # interests per user: the start mixture uses the first three, the end mixture the last three
DIRICHLET_ALPHA = 0.8  # concentration of a user's interest mixture
MEAN_SESSION = 4.0  # mean events per session (one interest per session)
SESSION_GAP = 30.0  # mean gap between sessions, in units of the mean gap inside one
EXPLORE = 0.1  # share of sessions in an interest drawn from the global prevalence
INTEREST_SHARE = 0.6  # share of description words from the item's interest (the rest are filler)
MIN_EVENTS_PER_USER = 5
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# One themed vocabulary per interest (real words, so a sentence encoder sees the signal too); interests
# beyond these get generated pseudo-words.
THEMES: dict[str, str] = {
    "kitchen": "skillet whisk ladle spatula colander saucepan kettle griddle teapot cleaver peeler grater "
    "apron trivet casserole wok blender toaster stockpot mortar pestle tongs strainer ramekin",
    "garden": "trowel hose shovel rake planter seedling compost mulch trellis sprinkler pruner hedge tulip "
    "fern orchid soil greenhouse wheelbarrow birdbath gnome lawn shears watering bulb",
    "music": "guitar piano violin drum ukulele cello banjo amplifier metronome tuner plectrum harmonica "
    "flute saxophone trumpet keyboard microphone speaker headphones vinyl chord melody tempo album",
    "sport": "basketball football soccer tennis racket dumbbell treadmill yoga jersey sneaker helmet goggles "
    "kettlebell barbell cleats whistle stopwatch skateboard baseball volleyball hockey puck glove workout",
    "travel": "suitcase luggage passport backpack duffel itinerary pillow adapter voyage tote carryon map "
    "journey airport cruise hostel souvenir ticket boarding visa wanderlust expedition roller jetlag",
    "office": "stapler binder folder notebook pencil marker eraser highlighter envelope clipboard calendar "
    "planner paperclip desk ledger printer toner cartridge label scissors tape ruler memo sticky",
    "books": "novel mystery thriller romance biography memoir poetry fantasy saga chapter author paperback "
    "hardcover anthology fiction detective epic dragon kingdom trilogy prequel narrator library bookmark",
    "toys": "puzzle lego doll plush teddy robot blocks kite yoyo marble crayon dinosaur rocket train puppet "
    "slime figurine playset rattle stacking squishy tricycle sandbox bubbles",
    "pets": "leash collar kibble aquarium litter catnip hamster parrot terrier kennel harness chew treats "
    "grooming scratcher birdcage bowl fetch puppy kitten tortoise goldfish ferret feeder",
    "beauty": "lipstick mascara serum moisturizer cleanser perfume blush eyeliner foundation concealer "
    "shampoo conditioner lotion balm exfoliant nailpolish bronzer primer palette fragrance cuticle "
    "retinol sunscreen makeup",
    "tools": "hammer wrench screwdriver drill pliers chisel sander clamp socket ratchet level toolbox saw "
    "crowbar mallet vise solder multimeter caulk anchor hinge bolt washer flashlight",
    "games": "console controller joystick arcade chess checkers dominoes dice poker boardgame cards quest "
    "dungeon pixel gamepad headset esports trivia roleplay strategy racing shooter mahjong backgammon",
    "camping": "tent sleepingbag campfire hatchet canteen hammock firestarter kayak paddle trail hiking boots "
    "tarp carabiner rope cooler thermos marshmallow stove headlamp poncho binoculars canoe cabin",
    "baby": "diaper stroller crib pacifier onesie bib bottle formula swaddle teether highchair carseat nursery "
    "lullaby babyfood wipes playmat bassinet booties mittens monitor sippy bouncer nightlight",
    "art": "canvas easel acrylic watercolor charcoal sketchbook paintbrush pastel gouache oilpaint sculpture "
    "clay kiln pottery mosaic calligraphy ink stencil linen frame gallery portrait mural etching",
    "auto": "tire wiper brake headlight bumper dashboard muffler spark radiator gasket piston axle battery "
    "jumper coolant wax polish motor oil filter mirror seatcover steering mudflap",
}
_FILLER_TEXT = (
    "quality durable premium classic modern compact lightweight portable set pack new best great easy "
    "perfect gift value deluxe original essential everyday professional heavy duty soft smooth sturdy "
    "stylish simple natural bright large small mini extra comfortable reliable handy versatile elegant "
    "vintage sleek eco friendly black white blue red green pro plus edition series collection design"
)
FILLER_WORDS = _FILLER_TEXT.split()
_VOCAB = 24  # words per interest
_CONSONANTS = list("bdfgklmnprstvz")
_VOWELS = list("aeiou")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Every field is validated on construction (a ``ValueError`` names it).

    Attributes:
        n_users: users; each has at least one event (up to `MIN_EVENTS_PER_USER` where events allow).
        n_items: items in the catalogue (every one is written to ``.item``; some may have no event).
        n_events: rows of ``.inter``.
        n_interests: latent interests (item clusters); the first 16 have real-word vocabularies.
        drift: 0 keeps each user's interest mixture fixed (the start mixture); 1 moves it all the
            way to the end mixture (one interest dropped, a new one added) over the user's active time.
        allow_repeats: whether a user may interact with the same item more than once.
        popularity_exponent: Zipf exponent of item popularity (0 = uniform).
        text_words: words in each item description.
        name: the atomic files' stem.
        seed: the random seed; the same config gives byte-identical files.
        start_time: Unix time (seconds) of the span's start.
        time_span_days: length of the span that timestamps fall in.
    """

    n_users: int = 10_000
    n_items: int = 10_000
    n_events: int = 1_000_000
    n_interests: int = 16
    drift: float = 0.5
    allow_repeats: bool = False
    popularity_exponent: float = 1.0
    text_words: int = 16
    name: str = "synth"
    seed: int = 0
    start_time: int = 1_600_000_000
    time_span_days: float = 730.0

    def __post_init__(self) -> None:
        def integer(name: str, low: int, high: int | None = None) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                raise ValueError(
                    f"{name} must be {'>=' if value < low else '<='} {low if value < low else high}, got {value}"
                )
            object.__setattr__(self, name, int(value))  # numpy scalars become plain ints (JSON-safe)
            return int(value)

        def number(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
            object.__setattr__(self, name, float(value))

        users, items, events = integer("n_users", 1), integer("n_items", 1), integer("n_events", 1)
        interests = integer("n_interests", 1)
        integer("text_words", 1, 1000)
        integer("seed", 0)
        integer("start_time", 0)
        number("drift", 0.0, 1.0)
        number("popularity_exponent", 0.0, 10.0)
        number("time_span_days", 1e-3, 1e5)
        if not isinstance(self.allow_repeats, bool):
            raise ValueError(f"allow_repeats must be a bool, got {self.allow_repeats!r}")
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"name must be letters, digits, '_', '.' or '-' (not starting with one of the "
                f"last three), got {self.name!r}"
            )
        if interests > items:
            raise ValueError(f"n_interests={interests} is more than n_items={items}; every interest needs an item")
        if events < users:
            raise ValueError(f"n_events={events} is less than n_users={users}; every user needs at least one event")
        if not self.allow_repeats and events > users * items:
            raise ValueError(
                f"n_events={events} is more than n_users * n_items = {users * items}, the most events possible "
                "without repeats; lower n_events or set allow_repeats=True"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SynthConfig:
        """A config from a mapping; an unknown key is a ``ValueError`` naming it and the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown SynthConfig key(s) {unknown}; valid: {valid}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SynthReport:
    """What `synthesize` wrote: the counts, the atomic files, every file written (``.inter``, ``.item``,
    ``.synth.json``), the wall-clock seconds of the whole run, ``n_events / seconds`` and the bytes."""

    n_users: int
    n_items: int
    n_events: int
    n_interests: int
    inter_path: Path
    item_path: Path
    files: tuple[Path, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    events_per_second: float = 0.0
    bytes_written: int = 0


# ---------------------------------------------------------------------------------------- setup
def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (ties broken by index)."""
    shares = weights / weights.sum() * total
    base = np.floor(shares).astype(np.int64)
    rest = int(total - base.sum())
    if rest > 0:
        base[np.argsort(base - shares, kind="stable")[:rest]] += 1
    return base


def _user_counts(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Events per user: a minimum each, the rest log-normal; capped at ``n_items`` without repeats."""
    n = config.n_users
    weights = rng.lognormal(0.0, ACTIVITY_SIGMA, n)
    floor = min(MIN_EVENTS_PER_USER, config.n_events // n)
    counts = floor + _largest_remainder(config.n_events - floor * n, weights)
    if not config.allow_repeats:
        cap = config.n_items
        while (over := counts > cap).any():  # hand the excess to users with room, until nobody is over
            excess = int((counts[over] - cap).sum())
            counts[over] = cap
            room = counts < cap
            counts[room] += _largest_remainder(excess, weights[room])
    return counts


def _pseudo_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    words: list[str] = []
    while len(words) < n:
        parts = rng.integers(0, [len(_CONSONANTS), len(_VOWELS)] * 3, size=(n, 6))
        for row in parts:
            word = "".join(_CONSONANTS[row[k]] if k % 2 == 0 else _VOWELS[row[k]] for k in range(6))
            if word not in taken:
                taken.add(word)
                words.append(word)
                if len(words) == n:
                    break
    return words


@dataclass(frozen=True)
class _World:
    """Everything shared by all blocks: item interests and popularity, interest words and names."""

    item_interest: np.ndarray  # (n_items,) int32
    item_order: np.ndarray  # (n_items,) items sorted by interest
    cdf: np.ndarray  # (n_items,) float64; interest k's items span (k, k + 1]
    prevalence_cdf: np.ndarray  # (n_interests,) cumulative share of events per interest
    names: list[str]
    vocab: np.ndarray  # (len(FILLER_WORDS) + n_interests * _VOCAB,) object: filler, then each interest's words


def _world(config: SynthConfig, rng: np.random.Generator) -> _World:
    k, n = config.n_interests, config.n_items
    sizes = rng.dirichlet(np.full(k, 3.0))
    interest = rng.choice(k, size=n, p=sizes).astype(np.int32)
    interest[rng.permutation(n)[:k]] = np.arange(k, dtype=np.int32)  # every interest has an item
    rank = rng.permutation(n)
    weight = (rank + 1.0) ** -config.popularity_exponent
    order = np.argsort(interest, kind="stable")
    totals = np.bincount(interest, weights=weight, minlength=k)
    sorted_interest = interest[order]
    within = np.cumsum(weight[order])
    starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    cdf = sorted_interest + (within - starts[sorted_interest]) / totals[sorted_interest]
    last = np.flatnonzero(np.r_[sorted_interest[1:] != sorted_interest[:-1], True])
    cdf[last] = sorted_interest[last] + 1.0  # exact segment ends, so a draw never leaks into the next interest
    prevalence = np.cumsum(totals / totals.sum())
    prevalence[-1] = 1.0
    themes = list(THEMES.items())
    names = [themes[j][0] if j < len(themes) else f"interest{j}" for j in range(k)]
    words: list[str] = list(FILLER_WORDS)
    taken = set(FILLER_WORDS) | {w for _, text in themes for w in text.split()}
    for j in range(k):
        words += themes[j][1].split()[:_VOCAB] if j < len(themes) else _pseudo_words(rng, _VOCAB, taken)
    return _World(interest, order, cdf, prevalence, names, np.array(words, dtype=object))


# ---------------------------------------------------------------------------------------- events
def _draw_items(world: _World, interest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item per entry, from the entry's interest, by popularity within the interest."""
    pos = np.searchsorted(world.cdf, interest + rng.random(len(interest)), side="right")
    return world.item_order[np.minimum(pos, len(world.cdf) - 1)]


def _dedupe(
    users: np.ndarray, items: np.ndarray, interest: np.ndarray, world: _World, n_items: int, rng: np.random.Generator
) -> None:
    """Redraw repeated (user, item) pairs in place.

    A repeat is redrawn from the same interest by popularity (4 rounds), then from any interest by
    popularity (4 rounds), then uniformly over all items (16 rounds: a user who has used up the popular
    items of a steep popularity law gets long-tail ones), and what is left gets the user's unseen
    items directly. Every round is vectorised over the remaining repeats.
    """
    width = np.int64(n_items)
    keys = users * width + items
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeat = np.r_[False, sorted_keys[1:] == sorted_keys[:-1]]
    pending = order[repeat]
    accepted = sorted_keys[~repeat]  # sorted keys of the pairs held so far
    for round_ in range(24):
        if pending.size == 0:
            return
        if round_ < 8:
            source = (
                interest[pending]
                if round_ < 4
                else np.searchsorted(world.prevalence_cdf, rng.random(pending.size), side="right")
            )
            new = _draw_items(world, source, rng)
        else:
            new = rng.integers(0, n_items, pending.size)
        new_keys = users[pending] * width + new
        at = np.minimum(np.searchsorted(accepted, new_keys), accepted.size - 1)
        _, first = np.unique(new_keys, return_index=True)
        fresh = np.zeros(pending.size, dtype=bool)
        fresh[first] = True
        ok = fresh & (accepted[at] != new_keys)
        items[pending[ok]] = new[ok]
        accepted = np.sort(np.concatenate([accepted, new_keys[ok]]), kind="stable")
        pending = pending[~ok]
    for user in np.unique(users[pending]):  # users holding nearly every item
        rows = pending[users[pending] == user]
        lo, hi = np.searchsorted(accepted, [user * width, (user + 1) * width])
        unseen = np.setdiff1d(np.arange(n_items), accepted[lo:hi] - user * width, assume_unique=True)
        items[rows] = rng.choice(unseen, size=rows.size, replace=False)


def _block(config: SynthConfig, world: _World, counts: np.ndarray, first_user: int, index: int) -> pa.Table:
    """The events of one block of users, in user then time order."""
    rng = np.random.default_rng([config.seed, 1, index])
    nb, n = len(counts), int(counts.sum())
    user = np.repeat(np.arange(nb, dtype=np.int64), counts)  # (n,) block-local user
    starts = np.cumsum(counts) - counts
    # sessions: the first event of each user opens one; later events open one with prob 1 / MEAN_SESSION
    opens = rng.random(n) < 1.0 / MEAN_SESSION
    opens[starts] = True
    session = np.cumsum(opens) - 1  # (n,)
    session_first = np.flatnonzero(opens)  # (n_sessions,)
    # time: exponential gaps, longer between sessions, scaled into the user's active window
    gaps = rng.exponential(1.0, n) * np.where(opens, SESSION_GAP, 1.0)
    gaps[starts] = 0.0
    total = np.cumsum(gaps)
    offset = np.repeat(total[starts], counts)
    span = np.repeat(total[starts + counts - 1] - total[starts], counts)
    frac = np.divide(total - offset, span, out=np.zeros(n), where=span > 0)  # (n,) in [0, 1]
    span_s = config.time_span_days * 86_400.0
    begin = rng.random(nb) * span_s
    length = (span_s - begin) * np.sqrt(rng.random(nb))
    timestamp = np.floor(config.start_time + np.repeat(begin, counts) + frac * np.repeat(length, counts))
    # interests: SLOTS per user, a start and an end mixture, blended by time
    slots = SLOTS
    slot_interest = np.searchsorted(world.prevalence_cdf, rng.random((nb, slots)), side="right")
    start_mix = rng.standard_gamma(DIRICHLET_ALPHA, (nb, slots)) + 1e-12
    end_mix = rng.standard_gamma(DIRICHLET_ALPHA, (nb, slots)) + 1e-12
    start_mix[:, -1] = 0.0  # the last interest appears over time, the first fades
    end_mix[:, 0] = 0.0
    start_mix /= start_mix.sum(1, keepdims=True)
    end_mix /= end_mix.sum(1, keepdims=True)
    s_user = user[session_first]
    shift = (config.drift * frac[session_first])[:, None]
    mix = (1.0 - shift) * start_mix[s_user] + shift * end_mix[s_user]  # (n_sessions, slots)
    pick = (rng.random(len(session_first))[:, None] > np.cumsum(mix, 1)).sum(1)
    s_interest = slot_interest[s_user, np.minimum(pick, slots - 1)]
    explore = rng.random(len(session_first)) < EXPLORE
    s_interest[explore] = np.searchsorted(world.prevalence_cdf, rng.random(int(explore.sum())), side="right")
    interest = s_interest[session]  # (n,)
    items = _draw_items(world, interest, rng)
    if not config.allow_repeats:
        _dedupe(user, items, interest, world, config.n_items, rng)
    # ratings: mean rises with the weight of the item's interest in the user's mixture at that time
    held = slot_interest[user] == world.item_interest[items][:, None]  # (n, slots)
    match = (mix[session] * held).sum(1)
    bias = rng.normal(0.0, 0.4, nb)[user]
    rating = np.clip(np.rint(1.8 + 3.4 * match + bias + rng.normal(0.0, 0.7, n)), 1, 5).astype(np.int8)
    return pa.table(
        {
            "user_id:token": pa.array(user + first_user),
            "item_id:token": pa.array(items.astype(np.int64)),
            "rating:float": pa.array(rating),
            "timestamp:float": pa.array(timestamp.astype(np.int64)),
        }
    )


def _item_block(world: _World, start: int, stop: int, text_words: int, rng: np.random.Generator) -> pa.Table:
    m, n_filler = stop - start, len(FILLER_WORDS)
    interest = world.item_interest[start:stop].astype(np.int64)
    zipf = np.cumsum(np.arange(1, _VOCAB + 1) ** -0.5)  # some words of an interest are commoner than others
    zipf /= zipf[-1]

    def interest_words(shape: tuple[int, ...]) -> np.ndarray:
        j = np.minimum(np.searchsorted(zipf, rng.random(shape), side="right"), _VOCAB - 1)
        return n_filler + interest.reshape((m,) + (1,) * (len(shape) - 1)) * _VOCAB + j

    own = rng.random((m, text_words)) < INTEREST_SHARE
    words = np.where(own, interest_words((m, text_words)), rng.integers(0, n_filler, (m, text_words)))
    head = np.column_stack([rng.integers(0, n_filler, m), interest_words((m, 2))])
    number = rng.integers(100, 1000, m)
    letters = rng.integers(0, 26, (m, 2))
    # joined by Arrow kernels: a Python loop over items would cost more than the events
    vocab = pa.array(world.vocab.tolist(), pa.string())
    capital = pc.utf8_capitalize(vocab)

    def joined(words: pa.Array, width: int) -> pa.Array:
        offsets = pa.array(np.arange(0, m * width + 1, width, dtype=np.int32))
        return pc.binary_join(pa.ListArray.from_arrays(offsets, words), " ")

    alphabet = pa.array([chr(c) for c in range(ord("A"), ord("Z") + 1)], pa.string())
    code = pc.binary_join_element_wise(
        pc.binary_join_element_wise(alphabet.take(letters[:, 0]), alphabet.take(letters[:, 1]), ""),
        pa.array(number).cast(pa.string()),
        "-",
    )
    titles = pc.binary_join_element_wise(joined(capital.take(head.ravel()), 3), code, " ")
    names = pa.array(world.names, pa.string()).take(interest)
    return pa.table(
        {
            "item_id:token": pa.array(np.arange(start, stop, dtype=np.int64)),
            "title:token_seq": titles,
            "categories:token_seq": names,
            "description:token_seq": joined(vocab.take(words.ravel()), text_words),
        }
    )


# ---------------------------------------------------------------------------------------- writing
_WRITE = pacsv.WriteOptions(include_header=True, delimiter="\t", quoting_style="none", quoting_header="none")


def _blocks(counts: np.ndarray) -> np.ndarray:
    """User indices where blocks start: a block ends at the first user boundary past BLOCK_EVENTS."""
    user_start = np.cumsum(counts) - counts
    edges = np.searchsorted(user_start, np.arange(0, int(counts.sum()), BLOCK_EVENTS), side="left")
    return np.unique(np.r_[edges, len(counts)])


def _write_atomic(path: Path, tables: Iterator[pa.Table], progress: Callable[[int], object] | None = None) -> None:
    """Write tables as one tab-separated file under a temporary name, renamed when complete."""
    tmp = path.with_name(path.name + ".tmp")
    writer: pacsv.CSVWriter | None = None
    try:
        for table in tables:
            if writer is None:
                writer = pacsv.CSVWriter(str(tmp), table.schema, write_options=_WRITE)
            writer.write_table(table)
            if progress is not None:
                progress(table.num_rows)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    assert writer is not None  # at least one user and one item, hence one table
    writer.close()
    os.replace(tmp, path)


def synthesize(config: SynthConfig, out_dir: str | Path, *, show_progress: bool = False) -> SynthReport:
    """Write a synthetic data set as RecBole atomic files (see the module docstring for its structure).

    Args:
        config: what to generate (validated on construction).
        out_dir: the directory to write into (created if missing; files of the same name are replaced).
        show_progress: show a tqdm bar over events.

    Returns:
        `SynthReport` with the counts, the files and the speed.
    """
    if not isinstance(config, SynthConfig):
        raise ValueError(f"config must be a SynthConfig, got {type(config).__name__}")
    began = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([config.seed, 0])
    counts = _user_counts(config, rng)
    world = _world(config, rng)
    inter_path, item_path = out / f"{config.name}.inter", out / f"{config.name}.item"
    meta_path = out / f"{config.name}.synth.json"
    with tqdm(
        total=config.n_events, unit="ev", unit_scale=True, disable=not show_progress, desc=f"synth {config.name}"
    ) as bar:
        edges = _blocks(counts)
        blocks = (
            _block(config, world, counts[lo:hi], int(lo), b) for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))
        )
        _write_atomic(inter_path, blocks, bar.update)
    text_rng = np.random.default_rng([config.seed, 2])
    _write_atomic(
        item_path,
        (
            _item_block(world, start, min(start + ITEM_BLOCK, config.n_items), config.text_words, text_rng)
            for start in range(0, config.n_items, ITEM_BLOCK)
        ),
    )
    meta = {"config": config.to_dict(), "interests": world.names, "files": [inter_path.name, item_path.name]}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - began
    files = (inter_path, item_path, meta_path)
    report = SynthReport(
        n_users=config.n_users,
        n_items=config.n_items,
        n_events=config.n_events,
        n_interests=config.n_interests,
        inter_path=inter_path,
        item_path=item_path,
        files=files,
        seconds=seconds,
        events_per_second=config.n_events / max(seconds, 1e-9),
        bytes_written=sum(p.stat().st_size for p in files),
    )
    logger.info(
        "synth %s: %d events, %d users, %d items in %.2f s (%.0f events/s) -> %s",
        config.name,
        config.n_events,
        config.n_users,
        config.n_items,
        seconds,
        report.events_per_second,
        out,
    )
    return report
