"""The Dask executor: same records, journal and metrics as in-process; skip and fail modes; models compiled
once per worker; resume through the journal; a lost worker's shard redone; paths missing on a worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from conftest import standin_config
from distributed import LocalCluster

from evalkit import config as cfg
from evalkit.data.ade20k import read_pairs
from evalkit.errors import InputError
from evalkit.execution.cache import FeatureCache
from evalkit.execution.distributed import DaskExecutor, evaluate_shard, shards_of
from evalkit.execution.executors import make_executor
from evalkit.execution.inprocess import InProcessExecutor
from evalkit.execution.journal import JOURNAL_DIR, PairRecord
from evalkit.execution.pipeline import run
from evalkit.results import RunResult

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]
N_PAIRS = 12
SHARD = 2  # 6 shards over 2 workers: shards finish out of order, the reorder buffer has work to do
BAD = 5  # a bad pair second in its shard (pairs 4, 5): the shard returns a prefix, not nothing


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    environ = os.environ.copy()  # the nanny writes its workers' variables (OMP_NUM_THREADS...) into ours
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
            yield local
    finally:
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def executor(cluster: LocalCluster) -> Iterator[DaskExecutor]:
    with DaskExecutor(scheduler=cluster.scheduler_address, shard_size=SHARD) as ex:
        yield ex


@pytest.fixture(scope="module")
def config(standins, synthetic_data) -> cfg.Config:
    data = synthetic_data(N_PAIRS, SIZES)
    return standin_config(standins, data.root, data.pairs)


@pytest.fixture(scope="module")
def baseline(config: cfg.Config, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """The in-process run, with its journal kept (``run`` leaves it; the CLI removes it)."""
    output = tmp_path_factory.mktemp("inprocess")
    return run(replace(config, output=output)), output


def same_results(a: RunResult, b: RunResult) -> None:
    # results.json's sections as text: metrics, per-sample values and the paired comparison bit-identical
    da, db = a.to_dict(), b.to_dict()
    for key in ("models", "skipped", "comparison"):
        assert json.dumps(da.get(key), sort_keys=True) == json.dumps(db.get(key), sort_keys=True), key
    assert da["dataset"] == db["dataset"]


def same_journal(a: Path, b: Path) -> None:
    # every record, feature and probability vector of every pair, byte for byte
    for name in ("records.jsonl", "arrays.bin"):
        assert (a / JOURNAL_DIR / name).read_bytes() == (b / JOURNAL_DIR / name).read_bytes(), name


def label_map(config: cfg.Config, index: int) -> Path:
    assert config.dataset.root is not None
    return config.dataset.root / "annotations" / "validation" / f"ADE_val_{index + 1:08d}.png"


# ------------------------------------------------------------------------------------- no cluster needed


def test_executor_needs_one_of_scheduler_or_workers() -> None:
    with pytest.raises(InputError, match="either a scheduler address or a number of workers"):
        DaskExecutor()
    with pytest.raises(InputError, match="either a scheduler address or a number of workers"):
        DaskExecutor(scheduler="tcp://127.0.0.1:1", workers=2)
    with pytest.raises(InputError, match="shard_size must be an integer >= 1, got 0"):
        DaskExecutor(workers=1, shard_size=0)


def test_a_bad_or_unreachable_scheduler_is_an_input_error() -> None:
    with pytest.raises(
        InputError, match=r"nonsense: not a Dask scheduler address .*expected tcp://HOST:PORT"
    ):
        DaskExecutor(scheduler="nonsense")
    with pytest.raises(InputError, match=r"tcp://127\.0\.0\.1:1: cannot connect to the Dask scheduler"):
        DaskExecutor(scheduler="tcp://127.0.0.1:1", connect_timeout=0.5)


def test_without_dask_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(InputError, match=r"pip install 'evalkit\[distributed\]'"):
        DaskExecutor(workers=1)


def test_shards_are_consecutive_and_cover_every_pair(config: cfg.Config) -> None:
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)
    shards = shards_of(pairs, 5)
    assert [len(s) for s in shards] == [5, 5, 2]
    assert [p.index for s in shards for p in s] == list(range(N_PAIRS))


def test_a_shard_returns_the_records_before_a_bad_pair_and_its_message(
    config: cfg.Config, tmp_path: Path
) -> None:
    # The task function itself, in this process: no raise, the prefix and the in-process message.
    assert config.dataset.pairs is not None
    shard = read_pairs(config.dataset.pairs)[BAD - 1 : BAD + 2]
    hidden = tmp_path / "hidden.png"
    shutil.move(label_map(config, BAD), hidden)
    try:
        delivered: list[PairRecord] = []
        with pytest.raises(InputError) as in_process:
            InProcessExecutor().evaluate(config, shard, delivered.append, on_error="fail")
        result = evaluate_shard(config, shard, "fail")
        skipped = evaluate_shard(config, shard, "skip")
    finally:
        shutil.move(hidden, label_map(config, BAD))
    assert [r.index for r in result.records] == [r.index for r in delivered] == [BAD - 1]
    assert result.error == str(in_process.value)
    assert f"pairs line {BAD + 1}" in result.error
    assert skipped.error is None and [r.skipped is not None for r in skipped.records] == [False, True, False]
    assert skipped.records[1].skipped == result.error


# ------------------------------------------------------------------------------------------ on a cluster


@pytest.mark.parametrize("variant", ["shards of 2", "uneven shards, one at a time"])
def test_same_journal_and_metrics_as_in_process(
    variant: str, cluster: LocalCluster, executor: DaskExecutor, config: cfg.Config, baseline, tmp_path: Path
) -> None:
    expected, expected_output = baseline
    if variant == "shards of 2":
        result = run(replace(config, output=tmp_path), executor=executor)
    else:
        with DaskExecutor(
            scheduler=cluster.scheduler_address, shard_size=5, max_pending_shards=1
        ) as one_at_a_time:
            result = run(replace(config, output=tmp_path), executor=one_at_a_time)
    same_results(result, expected)
    same_journal(tmp_path, expected_output)


def test_skip_mode_gives_the_in_process_result(
    executor: DaskExecutor, config: cfg.Config, tmp_path: Path
) -> None:
    hidden = tmp_path / "hidden.png"
    shutil.move(label_map(config, BAD), hidden)
    try:
        expected = run(config, on_error="skip")
        result = run(config, on_error="skip", executor=executor)
    finally:
        shutil.move(hidden, label_map(config, BAD))
    assert [s.pair_id for s in result.skipped] == [f"ADE_val_{BAD + 1:08d}"]
    assert result.dataset.n_pairs == N_PAIRS - 1
    same_results(result, expected)


def test_fail_mode_delivers_the_prefix_then_resume_matches_in_process(
    executor: DaskExecutor, config: cfg.Config, baseline, tmp_path: Path
) -> None:
    expected, expected_output = baseline
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)
    hidden = tmp_path / "hidden.png"
    shutil.move(label_map(config, BAD), hidden)
    try:
        delivered: list[int] = []
        with pytest.raises(InputError) as raised:
            executor.evaluate(config, pairs, lambda r: delivered.append(r.index), on_error="fail")
        assert delivered == list(range(BAD))  # every pair before the bad one, in order, and no other
        assert str(raised.value) == f"{label_map(config, BAD)}: label map not found (pairs line {BAD + 1})"

        # through the pipeline: the journal keeps the prefix, as in-process
        output = tmp_path / "out"
        with pytest.raises(InputError, match=rf"label map not found \(pairs line {BAD + 1}\)"):
            run(replace(config, output=output), executor=executor)
        assert len((output / JOURNAL_DIR / "records.jsonl").read_text().splitlines()) == BAD
    finally:
        shutil.move(hidden, label_map(config, BAD))
    messages: list[str] = []
    resumed = run(replace(config, output=output), resume=True, log=messages.append, executor=executor)
    assert messages[0].startswith(f"resuming: {BAD} of {N_PAIRS} pairs already done")
    same_results(resumed, expected)
    same_journal(output, expected_output)


def test_each_worker_compiles_the_models_once(executor: DaskExecutor, config: cfg.Config) -> None:
    before = executor.worker_stats()
    for _ in range(2):
        run(config, executor=executor)
    after = executor.worker_stats()
    shards = sum(s["shards"] for s in after.values()) - sum(s["shards"] for s in before.values())
    assert shards == 2 * N_PAIRS // SHARD
    for address, stats in after.items():
        if stats["shards"]:  # every test of this module uses the same models: one compilation per worker
            assert stats["compilations"] == 1, (address, stats)


def test_a_model_missing_on_a_worker_names_the_worker_and_path(
    executor: DaskExecutor, config: cfg.Config, tmp_path: Path
) -> None:
    # run() checks the models on the client first; a worker on another machine may still lack them
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)[:4]
    missing = replace(config, verifier=replace(config.verifier, path=tmp_path / "nowhere" / "verifier.xml"))
    where = r"nowhere/verifier\.xml: verifier model not found on Dask worker tcp://"
    for on_error in ("fail", "skip"):  # a missing model is not a bad pair: skip mode ends too
        with pytest.raises(InputError, match=where):
            executor.evaluate(missing, pairs, lambda r: None, on_error=on_error)
    no_data = replace(config, dataset=replace(config.dataset, root=tmp_path / "no-data"))
    with pytest.raises(InputError, match=r"no-data: data root not found on Dask worker tcp://"):
        executor.evaluate(no_data, pairs, lambda r: None, on_error="skip")


def test_relative_paths_are_sent_as_absolute_ones(
    executor: DaskExecutor, config: cfg.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers started in another directory: a path relative to the client's would not be found there.
    assert config.dataset.root is not None and config.verifier.path is not None
    here = Path(os.path.commonpath([config.dataset.root, config.verifier.path]))
    monkeypatch.chdir(here)

    def relative(path: Path | None) -> Path:
        assert path is not None
        return Path(os.path.relpath(path, here))

    relative_config = replace(
        config,
        models=tuple(replace(m, path=relative(m.path)) for m in config.models),
        verifier=replace(config.verifier, path=relative(config.verifier.path)),
        dataset=replace(config.dataset, root=relative(config.dataset.root)),
    )
    assert not relative_config.verifier.path.is_absolute()  # type: ignore[union-attr]
    assert config.dataset.pairs is not None
    delivered: list[PairRecord] = []
    executor.evaluate(
        relative_config, read_pairs(config.dataset.pairs)[:2], delivered.append, on_error="fail"
    )
    assert [r.index for r in delivered] == [0, 1] and all(r.skipped is None for r in delivered)


def test_models_that_do_not_compile_on_a_worker_name_it(executor: DaskExecutor, config: cfg.Config) -> None:
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)[:2]
    elsewhere = replace(config, runtime=replace(config.runtime, device="NO_SUCH_DEVICE"))
    with pytest.raises(
        InputError, match=r"cannot compile for device NO_SUCH_DEVICE.*\[on Dask worker tcp://"
    ):
        executor.evaluate(elsewhere, pairs, lambda r: None, on_error="skip")


def test_a_lost_worker_is_replaced_and_its_shard_redone(
    cluster: LocalCluster, config: cfg.Config, baseline, tmp_path: Path
) -> None:
    expected, expected_output = baseline
    with DaskExecutor(scheduler=cluster.scheduler_address, shard_size=SHARD) as ex:
        victim = sorted(ex.client.nthreads())[0]
        pid = ex.client.run(os.getpid, workers=[victim])[victim]

        class KillOnFirstRecord:
            """Progress events come with each delivered record: the first one kills a worker mid-run."""

            killed = False

            def start(self, model_names: Sequence[str], total: int) -> None:
                pass

            def advance(self, model_name: str) -> None:
                if not self.killed:
                    self.killed = True  # kill -9: the nanny starts a new worker, its shards are rescheduled
                    os.kill(pid, signal.SIGKILL)

            def close(self) -> None:
                pass

        progress = KillOnFirstRecord()
        result = run(replace(config, output=tmp_path), progress, executor=ex)
        assert progress.killed
        # leave the module's cluster whole for the other tests: the victim gone, its replacement registered
        deadline = time.monotonic() + 60
        while victim in ex.client.nthreads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert victim not in ex.client.nthreads()
        ex.client.wait_for_workers(2, timeout=60)
    same_results(result, expected)
    same_journal(tmp_path, expected_output)


def test_workers_n_starts_and_closes_a_local_cluster(config: cfg.Config, baseline) -> None:
    expected, _ = baseline
    head = replace(config, dataset=replace(config.dataset, limit=4))
    with DaskExecutor(workers=1, shard_size=3) as ex:
        assert list(ex.client.nthreads().values()) == [1]  # one single-threaded worker process
        result = run(head, executor=ex)
        client = ex.client
    assert client.status == "closed"
    with pytest.raises(RuntimeError, match="closed"):
        _ = ex.client
    for name, model in result.models.items():
        assert model.samples == expected.models[name].samples[:4]


# ------------------------------------------------------------------- caches and saved images on a cluster
# (after the tests above: the last one here makes the workers compile a second config)


def test_the_feature_cache_is_used_by_the_workers_and_logged_as_in_process(
    cluster: LocalCluster, config: cfg.Config, baseline, tmp_path: Path
) -> None:
    expected, _ = baseline
    directory = tmp_path / "features"
    messages: list[str] = []
    cache = FeatureCache(directory)
    with DaskExecutor(
        scheduler=cluster.scheduler_address, shard_size=SHARD, cache=cache, log=messages.append
    ) as ex:
        cold = run(replace(config, output=tmp_path / "cold"), executor=ex)
        warm = run(replace(config, output=tmp_path / "warm"), executor=ex)
        assert ex.cache is not None and (ex.cache.stats.hits, ex.cache.stats.writes) == (N_PAIRS, N_PAIRS)
    assert len(list(directory.glob("*/*.feat"))) == N_PAIRS
    # the workers' keys are the in-process run's: a shared folder serves both
    in_process = FeatureCache(directory)
    local = InProcessExecutor(cache=in_process, log=messages.append)
    run(replace(config, output=tmp_path / "local"), executor=local)
    assert messages == [
        f"feature cache {directory}: 0 ground truths reused, {N_PAIRS} computed",
        f"feature cache {directory}: {N_PAIRS} ground truths reused, 0 computed",
        f"feature cache {directory}: {N_PAIRS} ground truths reused, 0 computed",
    ]
    same_results(cold, expected)
    same_results(warm, expected)


def test_save_images_on_workers_writes_the_in_process_images(
    cluster: LocalCluster, config: cfg.Config, tmp_path: Path
) -> None:
    assert config.dataset.pairs is not None
    pairs = read_pairs(config.dataset.pairs)[:5]
    local, remote = tmp_path / "local", tmp_path / "remote"
    InProcessExecutor(save_images=local).evaluate(config, pairs, lambda r: None, on_error="fail")
    with DaskExecutor(scheduler=cluster.scheduler_address, shard_size=SHARD, save_images=remote) as ex:
        ex.evaluate(config, pairs, lambda r: None, on_error="fail")
    files = sorted(p.relative_to(local) for p in local.rglob("*.png"))
    assert len(files) == len(pairs) * len(config.models)
    assert sorted(p.relative_to(remote) for p in remote.rglob("*.png")) == files
    assert all((local / f).read_bytes() == (remote / f).read_bytes() for f in files)


def test_cache_dir_and_no_cache_reach_the_workers(
    cluster: LocalCluster, config: cfg.Config, baseline, tmp_path: Path
) -> None:
    # --cache-dir / --no-cache as the CLI passes them. Another runtime setting (reader threads, which the
    # sequential loop does not use) is a config the workers have not compiled: they compile it now, with
    # OpenVINO's compiled-model cache in the cache folder.
    expected, _ = baseline
    other = replace(config, runtime=replace(config.runtime, reader_threads=3))
    root = tmp_path / "cache"
    messages: list[str] = []
    with make_executor(
        "dask", cache_root=root, scheduler=cluster.scheduler_address, shard_size=SHARD, log=messages.append
    ) as ex:
        result = run(replace(other, output=tmp_path / "on"), executor=ex)
    assert messages == [f"feature cache {root / 'features'}: 0 ground truths reused, {N_PAIRS} computed"]
    assert len(list((root / "features").glob("*/*.feat"))) == N_PAIRS
    assert len(list((root / "ov-compiled").glob("*.blob"))) == len(config.models) + 1
    same_results(result, expected)
    messages.clear()
    off = tmp_path / "off"
    with make_executor(
        "dask", use_cache=False, cache_root=off, scheduler=cluster.scheduler_address, log=messages.append
    ) as ex:
        assert isinstance(ex, DaskExecutor) and ex.cache is None and ex.compiled_cache is None
        same_results(run(replace(other, output=tmp_path / "off-out"), executor=ex), expected)
    assert messages == [] and not off.exists()


def test_make_executor_checks_the_dask_options() -> None:
    with pytest.raises(InputError, match=r"--executor dask: give either --scheduler tcp://HOST:PORT or"):
        make_executor("dask")
    with pytest.raises(InputError, match=r"--scheduler, --workers and --shard-size need --executor dask"):
        make_executor("inprocess", workers=2)
