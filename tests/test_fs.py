"""The read-only fsspec view (`artifacts.fs`): fsspec's own abstract Get suite, plus our own checks.

fsspec's suite builds its source trees by writing to the filesystem under test (``fs.touch``,
``fs.pipe``, ``fs.makedirs``). Ours is read-only, so the scenario fixtures run fsspec's own scenario
builders against a recorder, then log what was recorded as one artifact version through the store's
write API; the fixture paths live under that version (``tree:v0/source/...``).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import fsspec
import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.get import AbstractGetTests

import artifacts
from artifacts.fs import ArtifactsFileSystem

TREE = "tree"


class _Recorder:
    """Stands in for a filesystem while fsspec's scenario builders run: remembers files and dirs."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()

    def _rel(self, path: str) -> str:
        assert path.startswith(self.top + "/"), path
        return path[len(self.top) + 1 :].strip("/")

    def touch(self, path: str, **kwargs: Any) -> None:
        self.files[self._rel(path)] = b""

    def pipe(self, path: str, value: bytes, **kwargs: Any) -> None:
        self.files[self._rel(path)] = value

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.dirs.add(self._rel(path))

    mkdir = makedirs


def _log_tree(
    store: artifacts.Store, name: str, files: dict[str, bytes]
) -> artifacts.ArtifactVersion:
    art = artifacts.Artifact(name, type="fixture")
    for path, data in files.items():
        art.add_bytes(path, data)
    return store.log_artifact(art)


def _build(store: artifacts.Store, fs_path: str, builder: Any) -> str:
    """Run one of fsspec's scenario builders against a recorder and log the result as a version."""
    rec = _Recorder(fs_path)
    source = builder(rec, posixpath.join, fs_path)
    # the store has no empty directories: every directory a scenario makes must end up holding a file
    assert all(any(f.startswith(d + "/") for f in rec.files) for d in rec.dirs)
    v = _log_tree(store, TREE, rec.files)
    assert fs_path.startswith(f"{TREE}:") and v.ref == f"{TREE}:v0"
    return source


class _PrebuiltFs:
    """The filesystem under test, for a test body that creates its own tree with mkdir/touch.

    The tree was logged through the store beforehand; here those calls only check that it is there.
    """

    def __init__(self, fs: ArtifactsFileSystem) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def mkdir(self, path: str, **kwargs: Any) -> None:
        assert self._fs.isdir(path), path

    def touch(self, path: str, **kwargs: Any) -> None:
        assert self._fs.isfile(path), path


class ArtifactsFixtures(AbstractFixtures):
    @pytest.fixture
    def store(self, local_backend: Any) -> Any:
        with artifacts.open_store(local_backend.url) as s:
            yield s

    @pytest.fixture
    def fs(self, store: artifacts.Store) -> ArtifactsFileSystem:
        return ArtifactsFileSystem(store=store)

    @pytest.fixture
    def fs_join(self) -> Any:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return f"{TREE}:v0"

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, store: Any, fs_path: str) -> str:
        return _build(store, fs_path, self._bulk_operations_scenario_0)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, store: Any, fs_path: str) -> str:
        return _build(store, fs_path, self._glob_edge_cases_files)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, store: Any, fs_path: str) -> str:
        return _build(store, fs_path, self._dir_and_file_with_same_name_prefix)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, store: Any, fs_path: str) -> str:
        return _build(store, fs_path, self._10_files_with_hashed_names)

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class TestArtifactsGet(AbstractGetTests, ArtifactsFixtures):
    def test_get_directory_recursive(
        self, fs, fs_join, fs_path, local_fs, local_join, local_target, store
    ):
        # upstream makes its tree with fs.mkdir/fs.touch; log the same tree, then run its body as is
        _log_tree(store, TREE, {"src/file": b""})
        super().test_get_directory_recursive(
            _PrebuiltFs(fs), fs_join, fs_path, local_fs, local_join, local_target
        )


class TestArtifactsGetThroughAlias(TestArtifactsGet):
    """The same suite with every path under an alias instead of a version number."""

    @pytest.fixture
    def fs_path(self) -> str:
        return f"{TREE}:latest"


# -- our own checks ---------------------------------------------------------------------------------
@pytest.fixture
def store(backend: Any) -> Any:
    with artifacts.open_store(backend.url, storage_options=backend.storage_options) as s:
        yield s


@pytest.fixture
def fs(store: artifacts.Store) -> ArtifactsFileSystem:
    data = artifacts.Artifact("dataset", type="dataset", metadata={"rows": 2})
    data.add_bytes("train.csv", b"a,b\n1,2\n3,4\n")
    data.add_bytes("parts/p0/x.bin", bytes(range(256)))
    data.add_bytes("parts/p1.bin", b"")
    store.log_artifact(data, aliases=["best"])
    data2 = artifacts.Artifact("dataset", type="dataset")
    data2.add_bytes("train.csv", b"a,b\n5,6\n")
    store.log_artifact(data2)
    model = artifacts.Artifact("model", type="model")
    model.add_json("weights.json", {"w": [1, 2, 3]})
    store.log_artifact(model, aliases=["prod"])
    return ArtifactsFileSystem(store=store, ref_ttl=0)


def test_root_lists_every_live_version(fs: ArtifactsFileSystem) -> None:
    assert fs.ls("", detail=False) == ["dataset:v0", "dataset:v1", "model:v0"]
    top = fs.info("")
    assert top["type"] == "directory" and top["name"] == ""
    assert all(e["type"] == "directory" for e in fs.ls(""))


def test_ls_version_and_nested_directories(fs: ArtifactsFileSystem) -> None:
    assert fs.ls("dataset:v0/", detail=False) == ["dataset:v0/parts", "dataset:v0/train.csv"]
    assert fs.ls("dataset:best/parts", detail=False) == [
        "dataset:best/parts/p0",
        "dataset:best/parts/p1.bin",
    ]
    assert fs.ls("artifacts://dataset:v0/parts/p0/", detail=False) == ["dataset:v0/parts/p0/x.bin"]
    # a bare name and name:latest are the newest version
    assert fs.ls("dataset", detail=False) == ["dataset/train.csv"]
    assert fs.ls("dataset:latest", detail=False) == ["dataset:latest/train.csv"]
    # ls of a file is that file, as in every fsspec filesystem
    (entry,) = fs.ls("model:prod/weights.json")
    assert entry["type"] == "file" and entry["name"] == "model:prod/weights.json"
    assert fs.find("dataset:v0") == [
        "dataset:v0/parts/p0/x.bin",
        "dataset:v0/parts/p1.bin",
        "dataset:v0/train.csv",
    ]
    assert fs.glob("dataset:v0/**/*.bin") == [
        "dataset:v0/parts/p0/x.bin",
        "dataset:v0/parts/p1.bin",
    ]


def test_info(fs: ArtifactsFileSystem, store: artifacts.Store) -> None:
    v = store.artifact("dataset:v0")
    f = fs.info("dataset:best/parts/p0/x.bin")
    assert f["type"] == "file" and f["size"] == 256 and f["ref"] == "dataset:v0"
    assert f["digest"] == v.file("parts/p0/x.bin").digest
    assert fs.ukey("dataset:best/parts/p0/x.bin") == f["digest"]
    d = fs.info("dataset:v0/parts")
    assert d == {"name": "dataset:v0/parts", "size": 0, "type": "directory", "ref": "dataset:v0"}
    top = fs.info("dataset:best")
    assert top["type"] == "directory" and top["digest"] == v.digest and top["ref"] == "dataset:v0"
    assert fs.info("dataset:v0/parts/p1.bin")["size"] == 0
    assert fs.isdir("dataset:v0/parts/p0") and fs.isfile("dataset:v0/train.csv")
    assert fs.created("dataset:v0").year >= 2024
    for missing in [
        "dataset:v9",
        "nope:v0",
        "dataset:v0/nope",
        "dataset:nosuchalias/train.csv",
        "bad name",
    ]:
        assert not fs.exists(missing)
        with pytest.raises(FileNotFoundError):
            fs.info(missing)
    with pytest.raises(FileNotFoundError):
        fs.ls("dataset:v0/train")  # a prefix of a name is not a directory


def test_cat_file_ranges(fs: ArtifactsFileSystem) -> None:
    data = bytes(range(256))
    p = "dataset:v0/parts/p0/x.bin"
    assert fs.cat_file(p) == data
    for start, end in [
        (0, 10),
        (10, 20),
        (250, None),
        (250, 1000),
        (-6, None),
        (-6, -2),
        (None, 5),
        (300, 400),
        (20, 10),
        (0, 0),
    ]:
        assert fs.cat_file(p, start, end) == data[start:end], (start, end)
    assert fs.cat_file("dataset:v0/parts/p1.bin") == b""
    assert fs.cat_ranges([p, p], [0, 100], [2, 102]) == [data[0:2], data[100:102]]
    assert fs.cat(fs.find("dataset:v0/parts")) == {
        "dataset:v0/parts/p0/x.bin": data,
        "dataset:v0/parts/p1.bin": b"",
    }
    with pytest.raises(IsADirectoryError):
        fs.cat_file("dataset:v0/parts")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("dataset:v0/nope")


def test_open_reads_seeks_and_text(fs: ArtifactsFileSystem) -> None:
    data = bytes(range(256))
    with fs.open("dataset:v0/parts/p0/x.bin", block_size=16) as f:
        assert f.size == 256
        assert f.read(5) == data[:5]
        f.seek(200)
        assert f.read() == data[200:]
        f.seek(-10, 2)
        assert f.read(3) == data[246:249]
    with fs.open("dataset:latest/train.csv", "r") as f:
        assert f.read() == "a,b\n5,6\n"


def test_writes_are_refused(fs: ArtifactsFileSystem, tmp_path: Any) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"x")
    attempts = [
        lambda: fs.open("dataset:v0/new.csv", "wb"),
        lambda: fs.open("dataset:v0/train.csv", "w"),
        lambda: fs.open("dataset:v0/train.csv", "ab"),
        lambda: fs.pipe("dataset:v0/new", b"x"),
        lambda: fs.pipe_file("dataset:v0/new", b"x"),
        lambda: fs.touch("dataset:v0/new"),
        lambda: fs.mkdir("dataset:v0/newdir"),
        lambda: fs.makedirs("dataset:v0/a/b", exist_ok=True),
        lambda: fs.rm("dataset:v0/train.csv"),
        lambda: fs.rm("dataset:v0", recursive=True),
        lambda: fs.rm_file("dataset:v0/train.csv"),
        lambda: fs.rmdir("dataset:v0/parts"),
        lambda: fs.put(str(src), "dataset:v0/x"),
        lambda: fs.put_file(str(src), "dataset:v0/x"),
        lambda: fs.copy("dataset:v0/train.csv", "dataset:v0/copy.csv"),
        lambda: fs.mv("dataset:v0/train.csv", "dataset:v0/moved.csv"),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionError, match="read-only"):
            attempt()
    assert fs.ls("dataset:v0", detail=False) == ["dataset:v0/parts", "dataset:v0/train.csv"]


def test_alias_moves_are_followed(fs: ArtifactsFileSystem, store: artifacts.Store) -> None:
    assert fs.cat_file("dataset:best/train.csv") == b"a,b\n1,2\n3,4\n"
    store.set_alias("dataset:v1", "best")
    assert fs.cat_file("dataset:best/train.csv") == b"a,b\n5,6\n"  # ref_ttl=0: resolved every call
    cached = ArtifactsFileSystem(store=store, ref_ttl=3600)
    assert cached.info("dataset:best")["ref"] == "dataset:v1"
    store.set_alias("dataset:v0", "best")
    assert cached.info("dataset:best")["ref"] == "dataset:v1"  # within its ttl
    cached.invalidate_cache()
    assert cached.info("dataset:best")["ref"] == "dataset:v0"
    store.delete_version("dataset:v0")
    fs.invalidate_cache()
    assert fs.ls("", detail=False) == ["dataset:v1", "model:v0"]
    assert not fs.exists("dataset:best/train.csv")


def test_corrupt_blob_is_detected_on_whole_reads(local_backend: Any) -> None:
    with artifacts.open_store(local_backend.url) as store:
        art = artifacts.Artifact("d", type="dataset")
        art.add_bytes("x.bin", b"0123456789" * 100)
        v = store.log_artifact(art)
        blob = store.blobs.local_path(v.file("x.bin").digest)
        os.chmod(blob, 0o644)
        blob.write_bytes(b"X" + blob.read_bytes()[1:])
        fs = ArtifactsFileSystem(store=store)
        with pytest.raises(artifacts.IntegrityError):
            fs.cat_file("d:v0/x.bin")
        with pytest.raises(artifacts.IntegrityError), fs.open("d:v0/x.bin", block_size=64) as f:
            while f.read(100):
                pass
        assert fs.cat_file("d:v0/x.bin", 10, 20) == b"0123456789"  # a range cannot be checked


def test_fsspec_open_url_and_instance_cache(local_backend: Any) -> None:
    with artifacts.open_store(local_backend.url) as store:
        art = artifacts.Artifact("model", type="model")
        art.add_json("weights.json", {"w": 1})
        store.log_artifact(art, aliases=["best"])
        with fsspec.open("artifacts://model:best/weights.json", "rt", store=store) as f:
            assert f.read() == '{"w":1}'
        assert fsspec.filesystem("artifacts", store=store).store is store
        assert fsspec.filesystem("artifacts", store=store) is not fsspec.filesystem(
            "artifacts", store=store
        )
    with fsspec.open("artifacts://model:best/weights.json", store=local_backend.url) as f:
        assert f.read() == b'{"w":1}'
    fs1 = fsspec.filesystem("artifacts", store=local_backend.url)
    assert fsspec.filesystem("artifacts", store=local_backend.url) is fs1
    fs2, path = fsspec.url_to_fs("artifacts://model:v0/weights.json", store=local_backend.url)
    assert fs2 is fs1 and path == "model:v0/weights.json"
    assert fs1.unstrip_protocol(path) == "artifacts://model:v0/weights.json"


def test_pickles_by_url(local_backend: Any) -> None:
    """Dask and friends ship a filesystem to workers by pickling its constructor arguments."""
    import pickle

    with artifacts.open_store(local_backend.url) as store:
        art = artifacts.Artifact("m", type="model")
        art.add_bytes("w", b"weights")
        store.log_artifact(art)
    fs = ArtifactsFileSystem(store=local_backend.url, skip_instance_cache=True)
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file("m:v0/w") == b"weights"


def test_default_store_from_environment(
    local_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with artifacts.open_store(local_backend.url) as store:
        art = artifacts.Artifact("m", type="model")
        art.add_bytes("w", b"w")
        store.log_artifact(art)
    monkeypatch.setenv("ARTIFACTS_STORE", local_backend.url)
    with fsspec.open("artifacts://m/w") as f:
        assert f.read() == b"w"


def test_pandas_read_csv(backend: Any) -> None:
    import pandas as pd  # in the dev extra

    with artifacts.open_store(backend.url, storage_options=backend.storage_options) as store:
        art = artifacts.Artifact("dataset", type="dataset")
        art.add_bytes("train.csv", b"text,label\ngood,1\nbad,0\n")
        store.log_artifact(art)
        df = pd.read_csv(
            "artifacts://dataset:latest/train.csv",
            storage_options={"store": store}
            if backend.kind == "memory"
            else {
                "store": backend.url,
                "storage_options": backend.storage_options,
            },
        )
    assert list(df["text"]) == ["good", "bad"] and list(df["label"]) == [1, 0]


def test_get_downloads_verified(fs: ArtifactsFileSystem, tmp_path: Any) -> None:
    fs.get("dataset:v0", str(tmp_path / "out"), recursive=True)
    assert (tmp_path / "out" / "parts" / "p0" / "x.bin").read_bytes() == bytes(range(256))
    assert (tmp_path / "out" / "train.csv").read_bytes() == b"a,b\n1,2\n3,4\n"
    assert (tmp_path / "out" / "parts" / "p1.bin").read_bytes() == b""
    assert not [p for p in (tmp_path / "out").rglob("*tmp*")]
