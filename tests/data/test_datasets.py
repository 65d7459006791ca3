from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest

from lmrec.config import ConfigError, DataConfig, load_config
from lmrec.data.loaders import available, default_cache_dir, download, load, remote, sources
from lmrec.data.loaders.bundled import bundled_files


def test_ml100k_bundled(ml100k):
    assert (len(ml100k.interactions), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1_682)
    assert ml100k.name == "ml-100k" and ml100k.summary()["rejected_rows"] == 0
    inter = ml100k.interactions
    assert inter.ratings is not None and set(np.unique(inter.ratings)) == {1, 2, 3, 4, 5}
    assert inter.timestamps.min() == 874724710 and inter.timestamps.max() == 893286638
    cat = ml100k.items
    assert (cat.text_fields, cat.categorical, cat.numeric) == (["title", "genres"], ["genres"], ["year"])
    assert cat.frame.loc["1", "title"] == "Toy Story (1995)"
    assert cat.frame.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert cat.frame.loc["1", "year"] == 1995 and cat.frame["year"].isna().sum() == 1  # one movie has no date
    toy = cat.texts(inter.item_map)[inter.item_map.index("1")]
    assert toy == "Toy Story (1995). Animation, Children's, Comedy"
    assert ml100k.users.for_user("1", kinds=("profile",)) == ["age: 24. gender: M. occupation: technician"]
    assert ml100k.users.attributes.columns.tolist() == ["age", "gender", "occupation", "zip_code"]


def test_clothing_reviews():
    if bundled_files("clothing-reviews") is None:
        pytest.skip("bundled clothing reviews not installed")
    ds = load("clothing-reviews")
    inter = ds.interactions
    assert len(inter) == 23_486 and ds.n_users == 23_486 and ds.n_items == 1_206
    assert inter.user_map.ids[:2] == ["review-1", "review-2"]  # one pseudo-user per review row
    assert set(np.unique(inter.ratings)) == {1, 2, 3, 4, 5}
    assert (inter.scenarios == "").sum() == 14 and "Dresses" in set(inter.scenarios)  # 14 rows lack a department
    texts = ds.users.texts
    # 845 rows have no review text; rows with neither title nor text carry no text
    assert len(texts) == ds.summary()["users_with_text"] < 23_486
    first = ds.users.for_user("review-1")[0]
    assert first.startswith("Absolutely wonderful - silky and sexy")  # row 1 has no title
    third = ds.users.for_user("review-3")[0]
    assert third.startswith("Some major design flaws. I had such high hopes")
    attrs = ds.users.attributes
    assert attrs.loc["review-3", "recommended"] == 0 and attrs.loc["review-1", "age"] == 33
    assert ds.items.frame.loc["767", "class_name"] == "Intimates"


def _tiny_ml100k_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t874965758\n2\t1\t3\t876893171\n")
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)|01-Jan-1995||x|" + "|".join(["0"] * 19) + "\n")
        zf.writestr("ml-100k/u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return buf.getvalue()


class _Response(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture()
def offline_ml100k(monkeypatch):
    data = _tiny_ml100k_zip()
    calls: list[str] = []

    def fake_urlopen(url, timeout=60.0):
        calls.append(url)
        return _Response(data)

    monkeypatch.setattr(sources, "bundled_files", lambda name: None)
    monkeypatch.setattr(remote, "_urlopen", fake_urlopen)
    source = remote.REMOTE["ml-100k"]
    monkeypatch.setitem(
        remote.REMOTE, "ml-100k", remote.RemoteSource(source.url, hashlib.md5(data).hexdigest(), source.directory)
    )
    return calls


def test_download_when_no_local_copy(offline_ml100k, tmp_path):
    ds = load("ml-100k", cache_dir=tmp_path, show_progress=False)
    assert ds.name == "ml-100k" and len(ds.interactions) == 2 and ds.n_users == 2
    assert offline_ml100k == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert (tmp_path / "ml-100k" / "u.data").exists()
    load("ml-100k", cache_dir=tmp_path, show_progress=False)
    assert len(offline_ml100k) == 1  # cached: no second download


def test_download_checksum_mismatch(offline_ml100k, tmp_path, monkeypatch):
    monkeypatch.setitem(
        remote.REMOTE, "ml-100k", remote.RemoteSource("https://example.invalid/ml-100k.zip", "0" * 32, "ml-100k")
    )
    with pytest.raises(ValueError, match=r"checksum mismatch for https://example.invalid/ml-100k.zip: expected MD5 0+"):
        download("ml-100k", cache_dir=tmp_path, show_progress=False)
    assert not (tmp_path / "ml-100k.zip").exists() and not (tmp_path / "ml-100k").exists()


def test_download_failure_is_explained(offline_ml100k, tmp_path, monkeypatch):
    def no_network(url, timeout=60.0):
        raise OSError("network unreachable")

    monkeypatch.setattr(remote, "_urlopen", no_network)
    with pytest.raises(OSError, match=r"could not download https://files.grouplens.org/.*network unreachable"):
        download("ml-1m", cache_dir=tmp_path, show_progress=False)
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_no_download_allowed(offline_ml100k, tmp_path, monkeypatch):
    monkeypatch.setenv("LMREC_DATA", str(tmp_path))
    assert default_cache_dir() == tmp_path
    with pytest.raises(ValueError, match="'ml-100k' is not in .* and allow_download=False"):
        load("ml-100k", allow_download=False)
    assert offline_ml100k == []


def test_available_and_unknown_names():
    names = available()
    assert {"ml-100k", "ml-1m"} <= set(names) and names == sorted(names)
    with pytest.raises(ValueError, match=r"'ml-7k' is neither a known data set \(\[.*'ml-1m'.*\]\) nor an existing"):
        load("ml-7k")
    with pytest.raises(ValueError, match="no download known for 'clothing-reviews'"):
        download("clothing-reviews")


def test_paths_directories_and_files(tmp_path):
    (tmp_path / "shop.inter").write_text("user_id:token\titem_id:token\nu\ti\n")
    assert load(tmp_path).name == "shop"
    assert load(tmp_path / "shop.inter").name == "shop"
    (tmp_path / "t.csv").write_text("user_id,item_id\na,b\n")
    assert load(tmp_path / "t.csv").interactions.item_map.ids == ["b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds neither RecBole atomic files"):
        load(empty)


def test_yaml_config(tmp_path):
    (tmp_path / "clicks.tsv").write_text("uid\tpid\twhen\n1\tp1\t2020-01-01\n2\tp2\t2020-01-02\n")
    (tmp_path / "items.csv").write_text("pid,name,brand\np1,Blue pen with grip,Bic\np2,Red pen with cap,Bic\n")
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        "data:\n"
        "  format: tsv\n"
        "  path: clicks.tsv\n"
        "  name: clicks\n"
        "  columns: {user: uid, item: pid, timestamp: when}\n"
        "  items_path: items.csv\n"
        "  item_columns: {id: pid}\n"
        "  text_fields: [brand, name]\n"
    )
    ds = load(cfg)
    assert ds.name == "clicks" and ds.interactions.user_map.ids == ["1", "2"]
    np.testing.assert_array_equal(ds.interactions.timestamps, [1577836800, 1577923200])  # 2020-01-01/02 UTC
    assert ds.items.texts(ds.interactions.item_map) == ["Bic. Blue pen with grip", "Bic. Red pen with cap"]
    cfg.write_text("path: clicks.tsv\nformt: tsv\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'data.formt'; valid keys under data: \['columns', 'encoding'"
    ):
        load(cfg)
    with pytest.raises(ConfigError, match=r"data.format: 'xls' is not one of \['auto', 'csv'"):
        DataConfig(source="x", format="xls")  # type: ignore[arg-type]
    cfg.write_text("path: clicks.tsv\ncolumns: {user: uid, item: pid}\ntext_fields: [nope]\n")
    with pytest.raises(ValueError, match=r"text_fields \['nope'\] given but data set 'clicks' has no item catalogue"):
        load(cfg)
    # 'path' is the old name of 'source'; both at once is an error
    assert load_config(cfg, cls=DataConfig).columns == {"user": "uid", "item": "pid"}
    assert load_config(cfg, cls=DataConfig).source == "clicks.tsv"
    cfg.write_text("source: clicks.tsv\npath: clicks.tsv\n")
    with pytest.raises(ConfigError, match="give 'source' or its old name 'path', not both"):
        load(cfg)
    cfg.write_text("format: tsv\n")
    with pytest.raises(ConfigError, match=r"a data config needs 'source'; valid keys: \['columns'"):
        load(cfg)


def test_loaded_dataset_save_load_round_trip(ml100k, tmp_path):
    from lmrec.data import Dataset

    ml100k.save(tmp_path)
    back = Dataset.load(tmp_path)
    assert back.summary() == ml100k.summary()
    order = ml100k.interactions.item_map
    assert back.items.texts(order) == ml100k.items.texts(order)  # list-valued genres survive parquet
    assert back.users.joined(ml100k.interactions.user_map) == ml100k.users.joined(ml100k.interactions.user_map)
