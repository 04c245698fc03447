"""The ground-truth feature cache: hits and misses, no verifier work on a warm cache, the same numbers with
and without it, stale or corrupt entries rebuilt, keys that change with the verifier, concurrent writers."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import standin_config

from evalkit import config as cfg
from evalkit.data.ade20k import read_pairs
from evalkit.execution.cache import (
    CACHE_ENV,
    FeatureCache,
    VerifierIdentity,
    clear_cache,
    default_cache_dir,
)
from evalkit.execution.inprocess import Executor, InProcessExecutor, SequentialExecutor
from evalkit.execution.journal import PairRecord
from evalkit.execution.pipeline import run
from evalkit.runtime.core import compile_model, make_core
from evalkit.runtime.translator import read_translator_model
from evalkit.runtime.verifier import Verifier, VerifierOutput, load_verifier

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]
N_PAIRS = 8


@pytest.fixture(scope="module")
def config(standins, synthetic_data) -> cfg.Config:
    data = synthetic_data(N_PAIRS, SIZES)
    return standin_config(standins, data.root, data.pairs)


def records_of(executor: Executor, config: cfg.Config) -> list[PairRecord]:
    assert config.dataset.pairs is not None
    out: list[PairRecord] = []
    executor.evaluate(config, read_pairs(config.dataset.pairs), out.append, on_error="fail")
    return out


def same(a: list[PairRecord], b: list[PairRecord]) -> bool:
    def blob(r: PairRecord) -> bytes:
        parts = [r.gt_features.tobytes(), repr(r.index).encode()]
        for name, m in r.models.items():
            parts += [name.encode(), repr(m.scores).encode(), m.probabilities.tobytes(), m.features.tobytes()]
        return b"|".join(parts)

    return [blob(r) for r in a] == [blob(r) for r in b]


@pytest.fixture(scope="module")
def uncached(config: cfg.Config) -> list[PairRecord]:
    return records_of(InProcessExecutor(), config)


#: Images a run feeds the verifier besides the pairs: the probe of runtime.verifier.probe_verifier.
PROBES = 1


@pytest.fixture
def verifier_feeds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the images fed to the verifier (ground truths and generated images alike)."""
    calls: list[int] = []
    original = Verifier.feed

    def counting(self: Verifier, rgb: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(1)
        return original(self, rgb)

    monkeypatch.setattr(Verifier, "feed", counting)
    return calls


@pytest.mark.parametrize("make", [InProcessExecutor, SequentialExecutor], ids=["pipelined", "sequential"])
def test_cold_then_warm_counts_and_no_ground_truth_inference(
    make, config: cfg.Config, uncached, verifier_feeds: list[int], tmp_path: Path
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    cold = records_of(make(cache=cache), config)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (0, N_PAIRS, N_PAIRS)
    # two generated images and the ground truth per pair, and the grey probe image checked at load
    assert len(verifier_feeds) == 3 * N_PAIRS + PROBES
    verifier_feeds.clear()
    warm_cache = FeatureCache(tmp_path / "cache")  # a second run: a new process would see the same
    warm = records_of(make(cache=warm_cache), config)
    assert (warm_cache.stats.hits, warm_cache.stats.misses, warm_cache.stats.writes) == (N_PAIRS, 0, 0)
    assert len(verifier_feeds) == 2 * N_PAIRS + PROBES  # no ground truth went through the verifier
    assert same(cold, uncached) and same(warm, uncached)  # identical numbers with and without the cache


@pytest.mark.parametrize("make", [InProcessExecutor, SequentialExecutor], ids=["pipelined", "sequential"])
def test_the_log_line_counts_this_run(make, config: cfg.Config, tmp_path: Path) -> None:
    messages: list[str] = []
    cache = FeatureCache(tmp_path)
    records_of(make(cache=cache, log=messages.append), config)
    records_of(make(cache=cache, log=messages.append), config)
    assert messages == [
        f"feature cache {tmp_path}: 0 ground truths reused, {N_PAIRS} computed",
        f"feature cache {tmp_path}: {N_PAIRS} ground truths reused, 0 computed",
    ]


def test_another_model_reuses_the_ground_truths(config: cfg.Config, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    records_of(InProcessExecutor(cache=cache), replace(config, models=config.models[:1]))
    other = FeatureCache(tmp_path)
    records_of(InProcessExecutor(cache=other), replace(config, models=config.models[1:]))
    assert (other.stats.hits, other.stats.misses) == (N_PAIRS, 0)


def test_pipeline_metrics_are_identical_with_a_warm_cache(config: cfg.Config, tmp_path: Path) -> None:
    plain = run(config, executor=InProcessExecutor())
    run(config, executor=InProcessExecutor(cache=FeatureCache(tmp_path)))
    warm = FeatureCache(tmp_path)
    cached = run(config, executor=InProcessExecutor(cache=warm))
    assert warm.stats.hits == N_PAIRS
    for name, model in plain.models.items():
        assert cached.models[name].metrics.to_dict() == model.metrics.to_dict()
        assert cached.models[name].samples == model.samples


def test_corrupt_and_stale_entries_are_rebuilt_never_used(
    config: cfg.Config, uncached, tmp_path: Path
) -> None:
    cache = FeatureCache(tmp_path)
    records_of(InProcessExecutor(cache=cache), config)
    entries = sorted(tmp_path.glob("*/*.feat"))
    assert len(entries) == N_PAIRS
    flipped = bytearray(entries[0].read_bytes())
    flipped[-3] ^= 0x40  # one bit of one feature
    entries[0].write_bytes(bytes(flipped))
    entries[1].write_bytes(entries[1].read_bytes()[:-100])  # torn write
    entries[2].write_bytes(b"not an entry")
    entries[3].write_bytes(entries[4].read_bytes())  # a valid entry of another key: stale here
    again = FeatureCache(tmp_path)
    assert same(records_of(InProcessExecutor(cache=again), config), uncached)
    assert (again.stats.rebuilt, again.stats.hits, again.stats.writes) == (4, N_PAIRS - 4, 4)
    healed = FeatureCache(tmp_path)
    records_of(InProcessExecutor(cache=healed), config)
    assert (healed.stats.hits, healed.stats.rebuilt) == (N_PAIRS, 0)


def test_key_changes_with_verifier_convention_layout_size_and_image(standins, config: cfg.Config) -> None:
    verifier = load_verifier(make_core(), config.verifier, config.runtime)
    base = VerifierIdentity.of(verifier, config.runtime)
    assert base.model_sha256 == VerifierIdentity.of(verifier, config.runtime).model_sha256
    pre = base.preprocessing
    variants = [
        replace(base, model_sha256="0" * 64),
        replace(base, preprocessing=replace(pre, convention=replace(pre.convention, color_order="RGB"))),
        replace(base, preprocessing=replace(pre, convention=replace(pre.convention, mean=127.5))),
        replace(base, preprocessing=replace(pre, convention=replace(pre.convention, scale=127.5))),
        replace(base, preprocessing=replace(pre, layout="NHWC")),
        replace(base, preprocessing=replace(pre, size=(300, 300))),
        replace(base, features_output="other"),
        replace(base, inference_precision="bf16"),
        replace(base, libraries={**base.libraries, "pillow": "0.0"}),
    ]
    keys = {FeatureCache.key(v, "a" * 64) for v in [base, *variants]}
    assert len(keys) == len(variants) + 1
    assert FeatureCache.key(base, "a" * 64) != FeatureCache.key(base, "b" * 64)
    assert FeatureCache.key(base, "a" * 64) == FeatureCache.key(base.digest(), "a" * 64)
    # a verifier loaded with another convention in the config: another key
    other = replace(config.verifier, input=replace(config.verifier.input, mean=1.0))
    reloaded = load_verifier(make_core(), other, config.runtime)
    assert VerifierIdentity.of(reloaded, config.runtime, base.model_sha256).digest() != base.digest()


def _changed(value: object) -> object:
    # another value of the same kind, for any preprocessing parameter
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):  # the other colour order or layout, else any other text
        return {"BGR": "RGB", "RGB": "BGR", "NCHW": "NHWC", "NHWC": "NCHW"}.get(value, value + "x")
    if isinstance(value, tuple):
        return tuple(v + 1 for v in value)
    raise AssertionError(f"no variant for {value!r}: teach _changed the new parameter's type")


def _parameter_variants(obj: object) -> list[tuple[str, object]]:
    """(name, obj with that one parameter changed) for every leaf value of a nested frozen dataclass."""
    out: list[tuple[str, object]] = []
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if is_dataclass(value):
            inner = _parameter_variants(value)
            out += [(f"{f.name}.{name}", replace(obj, **{f.name: v})) for name, v in inner]  # type: ignore[type-var]
        else:
            out.append((f.name, replace(obj, **{f.name: _changed(value)})))  # type: ignore[type-var]
    return out


def test_every_preprocessing_parameter_is_in_the_key(config: cfg.Config) -> None:
    # The key is built from the very object that prepares the verifier's input: each of its values, also
    # one added later, changes the key (no hand-written description to keep in step with the code).
    verifier = load_verifier(make_core(), config.verifier, config.runtime)
    base = VerifierIdentity.of(verifier, config.runtime)
    variants = _parameter_variants(base.preprocessing)
    names = [name for name, _ in variants]
    expected = {"size", "layout", "convention.color_order", "convention.mean", "convention.scale"}
    assert expected | {"interpolation"} <= set(names)
    key = FeatureCache.key(base, "a" * 64)
    for name, pre in variants:
        assert FeatureCache.key(replace(base, preprocessing=pre), "a" * 64) != key, name
    # ... and they are what Verifier.feed applies: a changed value changes the verifier's input
    rgb = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    fed = verifier.feed(rgb)
    for name, pre in variants:
        assert not np.array_equal(
            next(iter(replace(verifier, preprocessing=pre).feed(rgb).values())), next(iter(fed.values()))
        ), name


def test_a_cached_compile_gives_the_same_bits_and_is_reused(config: cfg.Config, tmp_path: Path) -> None:
    # OpenVINO's compiled-model cache: the first compile writes a blob, the second imports it; the outputs
    # of fresh, cold-cache and warm-cache compilations are identical, in both compile modes.
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)
    fresh = records_of(SequentialExecutor(), config)
    blobs = tmp_path / "ov-compiled"
    cold = records_of(SequentialExecutor(compiled_cache=blobs), config)
    written = sorted(blobs.glob("*.blob"))
    assert len(written) == len(config.models) + 1  # each translation model and the verifier
    mtimes = [b.stat().st_mtime_ns for b in written]
    warm = records_of(SequentialExecutor(compiled_cache=blobs), config)
    assert sorted(blobs.glob("*.blob")) == written and [b.stat().st_mtime_ns for b in written] == mtimes
    # OpenVINO keys a blob on the properties that change the compiled graph, not on streams or threads: the
    # pipelined executor imports the same blobs and sets its own streams
    pipelined = records_of(InProcessExecutor(compiled_cache=blobs), config)
    assert same(cold, fresh) and same(warm, fresh) and same(pipelined, fresh)
    assert len(fresh) == len(pairs)
    core = make_core()
    model, _ = read_translator_model(core, config.models[0])
    runtime = replace(config.runtime, streams=2)
    plain = compile_model(core, model, runtime, blobs, mode="throughput")
    compile_model(core, model, runtime, blobs, mode="latency", cache_dir=blobs)  # writes the blob
    imported = compile_model(core, model, runtime, blobs, mode="throughput", cache_dir=blobs)
    for name in ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT"):
        assert imported.get_property(name) == plain.get_property(name), name
    assert imported.get_property("LOADED_FROM_CACHE") and not plain.get_property("LOADED_FROM_CACHE")


def test_a_compiled_cache_that_cannot_be_used_is_skipped(config: cfg.Config, tmp_path: Path) -> None:
    blocker = tmp_path / "ov-compiled"
    blocker.write_text("a file where the folder should be")
    got = records_of(SequentialExecutor(compiled_cache=blocker), config)
    assert same(got, records_of(SequentialExecutor(), config))


def test_a_changed_verifier_convention_misses(config: cfg.Config, tmp_path: Path) -> None:
    records_of(InProcessExecutor(cache=FeatureCache(tmp_path)), config)
    changed = replace(
        config, verifier=replace(config.verifier, input=replace(config.verifier.input, mean=0.5))
    )
    cache = FeatureCache(tmp_path)
    records_of(InProcessExecutor(cache=cache), changed)
    assert (cache.stats.hits, cache.stats.misses) == (0, N_PAIRS)


def output(seed: int) -> VerifierOutput:
    rng = np.random.default_rng(seed)
    return VerifierOutput(
        probabilities=rng.random(1001, dtype=np.float32), features=rng.random(2048, dtype=np.float32)
    )


def write_many(directory: str, seed: int, rounds: int) -> None:
    cache = FeatureCache(directory)
    for i in range(rounds):
        cache.put(f"{i % 3:064x}", output(seed * 1000 + i))


def test_concurrent_writers_threads_and_processes_never_corrupt(tmp_path: Path) -> None:
    valid = {f"{k:064x}": set() for k in range(3)}
    for seed in range(4):
        for i in range(30):
            valid[f"{i % 3:064x}"].add(output(seed * 1000 + i).features.tobytes())
    reader = FeatureCache(tmp_path)
    seen: list[bytes | None] = []
    stop = threading.Event()

    def read_all() -> None:
        while not stop.is_set():
            for key in valid:
                got = reader.get(key)
                seen.append(None if got is None else got.features.tobytes())

    watcher = threading.Thread(target=read_all)
    watcher.start()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write_many, args=(str(tmp_path), seed, 30)) for seed in (0, 1)]
    threads = [threading.Thread(target=write_many, args=(str(tmp_path), seed, 30)) for seed in (2, 3)]
    for worker in [*procs, *threads]:
        worker.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    stop.set()
    watcher.join()
    assert reader.stats.rebuilt == 0  # a reader never saw a torn file
    assert all(s is None or any(s in v for v in valid.values()) for s in seen)
    final = FeatureCache(tmp_path)
    for key, allowed in valid.items():
        got = final.get(key)
        assert got is not None and got.features.tobytes() in allowed
    assert not list(tmp_path.glob("*/.*"))  # no temporary (hidden) file left behind


def test_clear_removes_only_cache_entries(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    for k in range(5):
        cache.put(f"{k:064x}", output(k))
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert clear_cache(tmp_path) == 5
    assert keep.read_text() == "mine" and not list(tmp_path.glob("*/*.feat"))
    assert cache.get(f"{0:064x}") is None
    assert FeatureCache(tmp_path / "missing").clear() == 0


def test_default_directory_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "features"
    assert FeatureCache().directory == tmp_path / "root" / "features"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == Path.home() / ".cache" / "evalkit" / "features"


def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    cache = FeatureCache(blocker)
    assert cache.put("ab" + "0" * 62, output(0)) is False
    assert cache.stats.write_errors == 1 and cache.get("ab" + "0" * 62) is None
