"""Start-up: load the model directory, open the stores, build (or reload) the index, repair profiles.

Stored records that are not valid (an event row of the wrong types, an item row whose attributes do
not fit the catalogue) are set aside, logged and counted (``/health``), never a failed start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lmrec.models  # noqa: F401  (registers the built-in models)
from lmrec.models.base import MODEL_REGISTRY
from lmrec.models.bundle import ModelBundle
from lmrec.serve.attributes import AttributeTable
from lmrec.serve.follower import StreamFollower, open_replicated
from lmrec.serve.index import VectorIndex, resolve_kind
from lmrec.serve.items import ServedItems
from lmrec.serve.ranking import BusinessRule, load_rules
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings
from lmrec.serve.space import TextSpace, VectorSpace, bundle_text_settings, item_texts_for, make_space, served_item_ids
from lmrec.serve.stores.base import ProfileStore
from lmrec.serve.stores.redis import RedisProfileStore
from lmrec.serve.stores.sqlite import SQLiteProfileStore, SQLiteStore
from lmrec.serve.versions import newest_version

__all__ = ["build_index", "check_model_dir", "model_version", "open_service", "open_successor"]

log = logging.getLogger(__name__)

DB_NAME = "lmrec.sqlite3"


def model_version(model_dir: str | Path, model_name: str) -> str:
    """``<model name>-<12 hex>``: a hash of ``config.json`` and the size and mtime of each file of the
    model directory, so retraining into the same directory changes it."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    if config.exists():
        digest.update(config.read_bytes())
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{model_name}-{digest.hexdigest()[:12]}"


def _ensure_registered(model_dir: Path) -> None:
    """Import the module of a model that ``import lmrec.models`` does not register (``lm`` lives in
    ``lmrec.models.lm``), so ``ModelBundle.load`` can find its class."""
    config = model_dir / "config.json"
    if not config.exists():
        return  # ModelBundle.load says what is wrong
    name = json.loads(config.read_text()).get("model")
    if isinstance(name, str) and name.isidentifier() and name not in MODEL_REGISTRY:
        with contextlib.suppress(ImportError):  # ModelBundle.load names the unknown model and the known ones
            importlib.import_module(f"lmrec.models.{name}")


def _index_params(settings: ServeSettings, n: int, dim: int) -> dict[str, Any]:
    kind = resolve_kind(settings.index, n, settings.exact_max_items, dim=dim, max_index_mb=settings.index_max_mb)
    return {
        "kind": kind,
        "auto_upgrade_at": settings.exact_max_items if settings.index == "auto" and kind == "flat" else None,
        "hnsw_m": settings.hnsw_m,
        "ef_construction": settings.hnsw_ef_construction,
        "ef_search": settings.hnsw_ef_search,
        "target_recall": settings.index_target_recall,
        "nlist": settings.ivf_nlist,
        "nprobe": settings.ivf_nprobe,
    }


def build_index(
    space: VectorSpace, ids: Sequence[str], texts: Sequence[str], n_model: int, settings: ServeSettings, cache_dir: Path
) -> VectorIndex:
    """The index over the base rows, reloaded from ``cache_dir`` when the same space, items, texts and
    index settings built it before (no re-encoding, no HNSW rebuild)."""
    params = _index_params(settings, len(ids), space.dim)
    hashed = {k: v for k, v in params.items() if k not in ("ef_search", "nprobe", "auto_upgrade_at", "target_recall")}
    key_src = json.dumps([space.name, hashed, list(ids), list(texts)])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    path = cache_dir / f"index-{params['kind']}-{key}.faiss"
    kwargs = {k: v for k, v in params.items() if k != "kind"}
    if path.with_suffix(".npy").exists():
        try:
            index = VectorIndex.load(path, params["kind"], **kwargs)
            log.info("loaded %s index of %d items from %s", params["kind"], len(index), path)
            return index
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("cannot reuse %s (%s); rebuilding", path, exc)
    start = time.perf_counter()
    vectors = space.base_vectors(ids, texts, n_model)
    index = VectorIndex(space.dim, params["kind"], **kwargs)
    index.add(vectors)
    log.info("built %s index of %d items in %.1fs", params["kind"], len(index), time.perf_counter() - start)
    for stale in cache_dir.glob(f"index-{params['kind']}-*"):  # one cached index per kind
        stale.unlink(missing_ok=True)
    index.save(path)
    return index


def _attributes(bundle: ModelBundle, ids: Sequence[str]) -> AttributeTable:
    if bundle.catalog is None:
        table = AttributeTable()
        table.add_rows(len(ids))
        return table
    frame = bundle.catalog.frame.reindex(list(ids))
    return AttributeTable.from_frame(frame, bundle.catalog.categorical, bundle.catalog.numeric)


def _profile_store(settings: ServeSettings, store: SQLiteStore) -> ProfileStore:
    if settings.profile_store == "redis":
        return RedisProfileStore(settings.redis_url or "redis://127.0.0.1:6379/0", prefix=settings.redis_prefix)
    return SQLiteProfileStore(store)


def check_model_dir(path: str | Path) -> Path:
    """``path`` as an absolute directory that holds a model, or a `ValueError` naming what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a model directory (no config.json); create one with `lmrec train`")
    return path.resolve()


def _load_bundle(model_dir: Path) -> tuple[ModelBundle, str]:
    _ensure_registered(model_dir)
    bundle = ModelBundle.load(model_dir)
    return bundle, model_version(model_dir, bundle.model.model_name)


def _build_items(
    settings: ServeSettings, bundle: ModelBundle, version: str, encoder: Any, state: Path
) -> tuple[VectorSpace, ServedItems]:
    """The vector space, the index and the served items of a loaded bundle (the slow part: encoding)."""
    space = make_space(
        bundle,
        version,
        encoder=encoder,
        encoder_model=settings.encoder,
        encoder_backend=settings.encoder_backend,
        cache_dir=state / "embeddings",
        show_progress=settings.show_progress,
    )
    ids, n_model = served_item_ids(bundle)
    texts = item_texts_for(bundle, ids)
    index = build_index(space, ids, texts, n_model, settings, state / "index")
    return space, ServedItems(ids, texts, index, _attributes(bundle, ids), n_model)


def open_service(settings: ServeSettings, *, encoder: Any = None, rules: Sequence[BusinessRule] = ()) -> RecService:
    """Load the model, the stores and the index, and open a `RecService` over them.

    Args:
        settings: service settings.
        encoder: a `TextEncoder` for non-vector models (tests inject one); None builds it from settings.
        rules: business rules, run before those named in ``settings.rules``.
    """
    start = time.perf_counter()
    if settings.model_dir is None:
        assert settings.model_dir_watch is not None  # ServeSettings requires one of the two
        model_dir = newest_version(settings.model_dir_watch)
        if model_dir is None:
            raise FileNotFoundError(
                f"model_dir_watch: no complete model version in {settings.model_dir_watch} "
                "(a subdirectory holding a READY file); give model_dir or publish a version"
            )
        settings = settings.model_copy(update={"model_dir": model_dir, "state_dir": settings.resolved_state_dir})
    model_dir = Path(settings.model_dir)  # type: ignore[arg-type]
    bundle, version = _load_bundle(model_dir)
    state = settings.resolved_state_dir
    state.mkdir(parents=True, exist_ok=True)
    follower: StreamFollower | None = None
    store: SQLiteStore
    if settings.profile_store == "redis":  # the replica's copy of the shared stream, caught up
        store, follower = open_replicated(settings, state / DB_NAME)
    else:
        store = SQLiteStore(state / DB_NAME, synchronous=settings.sqlite_synchronous)
    set_aside = store.quarantine_bad_events()  # before anything reads the log
    if set_aside:
        log.warning("set aside %d stored event rows that are not valid events (table 'quarantine')", set_aside)
    profiles = _profile_store(settings, store)
    space, items = _build_items(settings, bundle, version, encoder, state)
    service = RecService(
        settings, bundle, version, space, items, store, profiles, rules=[*rules, *load_rules(settings.rules)]
    )
    if follower is not None:
        follower.attach(service)
    service.recover_profiles()
    log.info(
        "serving %s (%s) with %d items (%s index, %s space) in %.1fs",
        settings.model_dir,
        version,
        len(items),
        items.index.kind,
        space.name,
        time.perf_counter() - start,
    )
    return service


def open_successor(old: RecService, model_dir: str | Path, *, encoder: Any = None) -> RecService:
    """A service for another model directory that shares ``old``'s stores, rules, metrics and erasures.

    Nothing ``old`` serves is touched: the new model, its space, its index and its catalogue are
    built to the side (the caller swaps the reference). A text-space model reuses ``old``'s encoder
    when the same encoder settings apply, so its space (and the stored profiles) stay valid.

    Raises:
        ValueError: ``model_dir`` is not a loadable model directory (the message says why).
    """
    start = time.perf_counter()
    path = check_model_dir(model_dir)
    try:
        bundle, version = _load_bundle(path)
    except Exception as exc:  # noqa: BLE001 - any failure to load must leave the old model serving
        raise ValueError(f"cannot load the model in {path}: {type(exc).__name__}: {exc}") from exc
    settings = old.settings.model_copy(update={"model_dir": path, "state_dir": old.settings.resolved_state_dir})
    if encoder is None and isinstance(old.space, TextSpace):
        same = (
            settings.encoder is not None
            or bundle_text_settings(bundle.info)[1:] == bundle_text_settings(old.bundle.info)[1:]
        )
        encoder = old.space.encoder if same else None
    try:
        space, items = _build_items(settings, bundle, version, encoder, settings.resolved_state_dir)
        service = type(old)(
            settings,
            bundle,
            version,
            space,
            items,
            old.store,
            old.profiles,
            rules=old.rules,
            metrics=old.metrics,
            forgotten=old.forgotten,
            feedback=old.feedback,
        )
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot serve the model in {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(old.profile_sync.stream, StreamFollower):
        old.profile_sync.stream.attach(service)
    log.info(
        "loaded %s (%s) with %d items (%s space) to the side in %.1fs",
        path,
        version,
        len(items),
        space.name,
        time.perf_counter() - start,
    )
    return service
