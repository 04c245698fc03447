"""The pipelined executor gives the sequential oracle's records bit for bit, for any streams, requests and
reader threads and either one-hot placement; keeps the fail/skip semantics and pair order; keeps only a window
of pairs in flight; and leaves no thread or memory behind, run after run in one process."""

from __future__ import annotations

import gc
import shutil
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from conftest import standin_config

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, read_pairs
from evalkit.errors import InputError
from evalkit.execution.inprocess import VERIFIER_STEP, Executor, InProcessExecutor, SequentialExecutor
from evalkit.execution.journal import PairRecord
from evalkit.execution.pair import PairEvaluator, PairInputs, prepare_pair
from evalkit.runtime.core import THREADS_PER_STREAM, compile_model, make_core
from evalkit.runtime.translator import load_translator, read_translator_model

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160), (200, 150)]
N_PAIRS = 12
#: (streams, requests, reader_threads); None = OpenVINO's THROUGHPUT defaults.
SETTINGS = [(None, None, 2), (1, 1, 1), (2, 4, 3), (2, 1, 2), (None, 3, 1)]


@pytest.fixture(scope="module")
def data(synthetic_data):
    return synthetic_data(N_PAIRS, SIZES)


def make_config(standins, root: Path, pairs: Path, **runtime) -> cfg.Config:
    config = standin_config(standins, root, pairs)
    return replace(config, runtime=replace(config.runtime, **runtime))


@pytest.fixture(scope="module")
def config(standins, data) -> cfg.Config:
    return make_config(standins, data.root, data.pairs)


def records_of(
    executor: Executor, config: cfg.Config, pairs: Sequence[Pair] | None = None, on_error: str = "fail"
) -> list[PairRecord]:
    assert config.dataset.pairs is not None
    delivered: list[PairRecord] = []
    executor.evaluate(config, pairs or read_pairs(config.dataset.pairs), delivered.append, on_error=on_error)
    return delivered


def assert_same_records(got: list[PairRecord], expected: list[PairRecord]) -> None:
    assert [r.index for r in got] == [r.index for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert (a.pair_id, a.skipped) == (b.pair_id, b.skipped)
        if a.skipped:
            continue
        assert a.gt_features.dtype == b.gt_features.dtype == np.float32
        assert a.gt_features.tobytes() == b.gt_features.tobytes(), a.pair_id
        assert list(a.models) == list(b.models)
        for name in a.models:
            x, y = a.models[name], b.models[name]
            assert x.scores == y.scores, (a.pair_id, name)  # floats compared exactly
            assert x.probabilities.tobytes() == y.probabilities.tobytes(), (a.pair_id, name)
            assert x.features.tobytes() == y.features.tobytes(), (a.pair_id, name)


@pytest.fixture(scope="module")
def oracle(config: cfg.Config) -> list[PairRecord]:
    """The sequential run: one synchronous request per model, one pair after the other."""
    return records_of(SequentialExecutor(), config)


@pytest.mark.parametrize(("streams", "requests", "reader_threads"), SETTINGS)
def test_pipelined_equals_sequential_bit_for_bit(
    config: cfg.Config, oracle, streams: int | None, requests: int | None, reader_threads: int
) -> None:
    runtime = {"streams": streams, "requests": requests, "reader_threads": reader_threads}
    got = records_of(InProcessExecutor(), replace(config, runtime=replace(config.runtime, **runtime)))
    assert len(got) == N_PAIRS
    assert_same_records(got, oracle)


def test_a_window_of_one_pair_gives_the_same_records(config: cfg.Config, oracle) -> None:
    assert_same_records(records_of(InProcessExecutor(window=1), config), oracle)


@pytest.mark.parametrize("make", [SequentialExecutor, InProcessExecutor], ids=["sequential", "pipelined"])
def test_one_hot_on_the_host_gives_the_same_records(config: cfg.Config, oracle, make) -> None:
    host = replace(config, runtime=replace(config.runtime, one_hot="host"))
    assert_same_records(records_of(make(), host), oracle)


def test_every_stream_has_one_thread(standins, config: cfg.Config) -> None:
    # The setting that makes the numbers independent of streams: see evalkit.runtime.core.THREADS_PER_STREAM.
    core = make_core()
    model, _ = read_translator_model(core, config.models[0])
    assert standins.original == config.models[0].path
    for streams in (None, 1, 2, 3):
        runtime = replace(config.runtime, streams=streams)
        compiled = compile_model(core, model, runtime, standins.original, mode="throughput")
        n_streams = int(compiled.get_property("NUM_STREAMS"))
        assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == n_streams * THREADS_PER_STREAM
        assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    sequential = compile_model(core, model, config.runtime, standins.original)
    assert int(sequential.get_property("NUM_STREAMS")) == 1
    assert int(sequential.get_property("INFERENCE_NUM_THREADS")) == THREADS_PER_STREAM


def test_raw_outputs_do_not_depend_on_streams_requests_or_one_hot_placement(
    standins, config: cfg.Config
) -> None:
    # Sharper than the records (an output's last bits rarely move a uint8 pixel): the translation outputs
    # themselves, sequential with NumPy one-hot vs several requests in flight on several streams with the
    # OneHot op in the graph, are the same bits.
    core = make_core()
    assert config.dataset.root is not None and config.dataset.pairs is not None
    prepared = [prepare_pair(config.dataset.root, p) for p in read_pairs(config.dataset.pairs)[:4]]
    host = replace(config.runtime, one_hot="host")
    for spec in config.models:
        translator = load_translator(core, spec, host)
        expected = [translator.translate(x.mask, x.exemplar, x.exemplar_mask).tobytes() for x in prepared]
        for streams, requests in ((None, None), (2, 4), (1, 2)):
            runtime = replace(config.runtime, streams=streams, requests=requests)
            fast = load_translator(core, spec, runtime, mode="throughput")
            ring = [fast.model.compiled.create_infer_request() for _ in range(requests or 2)]
            jobs = [x for _ in range(3) for x in prepared]
            got = []
            for start in range(0, len(jobs), len(ring)):
                batch = list(zip(ring, jobs[start : start + len(ring)], strict=False))
                for request, x in batch:
                    request.start_async(fast.feed(x.mask, x.exemplar, x.exemplar_mask), share_inputs=False)
                for request, _ in batch:
                    request.wait()
                    got.append(fast.model.outputs_of(request)[0][0].tobytes())
            assert got == expected * 3, (spec.name, streams, requests)


def test_the_graph_one_hot_model_takes_label_maps(config: cfg.Config) -> None:
    t = load_translator(make_core(), config.models[0], config.runtime)
    inputs = {p.get_any_name(): (p.get_element_type(), list(p.get_shape())) for p in t.model.compiled.inputs}
    assert inputs["input_seg_map"] == (ov.Type.u8, [1, 256, 256])
    assert inputs["ref_seg_map"] == (ov.Type.u8, [1, 256, 256])
    assert inputs["ref_image"] == (ov.Type.f32, [1, 3, 256, 256])


@pytest.fixture
def broken(standins, data, tmp_path: Path) -> tuple[cfg.Config, int]:
    """A copy of the data set whose 5th pair lacks its input mask."""
    copy = tmp_path / "data"
    shutil.copytree(data.root.parent, copy)
    bad = 5
    (copy / data.root.name / "annotations" / "validation" / f"ADE_val_{bad:08d}.png").unlink()
    return make_config(standins, copy / data.root.name, copy / data.pairs.name), bad


@pytest.mark.parametrize(
    "executor", [SequentialExecutor(), InProcessExecutor()], ids=["sequential", "pipelined"]
)
def test_fail_mode_delivers_every_pair_before_the_bad_one_then_raises(
    broken, oracle, executor: Executor
) -> None:
    config, bad = broken
    delivered: list[PairRecord] = []
    assert config.dataset.pairs is not None
    with pytest.raises(InputError, match=rf"label map not found \(pairs line {bad}\)") as info:
        executor.evaluate(config, read_pairs(config.dataset.pairs), delivered.append, on_error="fail")
    assert [r.index for r in delivered] == list(range(bad - 1))  # nothing after the bad pair
    assert_same_records(delivered, oracle[: bad - 1])
    assert "\n" not in str(info.value)


def test_skip_mode_gives_the_sequential_records(broken) -> None:
    config, bad = broken
    expected = records_of(SequentialExecutor(), config, on_error="skip")
    got = records_of(InProcessExecutor(), config, on_error="skip")
    assert [r.skipped is not None for r in got] == [i == bad - 1 for i in range(N_PAIRS)]
    assert_same_records(got, expected)


def nan_model(path: Path) -> Path:
    """A translation model whose output is NaN: a model error, found after inference."""
    names = ("input_seg_map", "ref_image", "ref_seg_map")
    params = [
        ops.parameter([1, 151, 256, 256], np.float32, name=names[0]),
        ops.parameter([1, 3, 256, 256], np.float32, name=names[1]),
        ops.parameter([1, 151, 256, 256], np.float32, name=names[2]),
    ]
    for p, n in zip(params, names, strict=True):
        p.output(0).get_tensor().set_names({n})
    out = ops.multiply(params[1], ops.constant(np.float32(np.nan)))
    out.output(0).get_tensor().set_names({"exemplar_based_output"})
    ov.save_model(ov.Model([out], params, "nan"), path)
    return path


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_model_error_is_the_same_in_both_executors(
    config: cfg.Config, tmp_path: Path, on_error: str
) -> None:
    model = nan_model(tmp_path / "nan.xml")
    bad = replace(config, models=(config.models[0], replace(config.models[1], path=model)))
    pairs = read_pairs(config.dataset.pairs)[:3]  # type: ignore[arg-type]
    if on_error == "fail":
        messages = []
        for executor in (SequentialExecutor(), InProcessExecutor()):
            delivered: list[PairRecord] = []
            with pytest.raises(InputError) as info:
                executor.evaluate(bad, pairs, delivered.append, on_error="fail")
            assert delivered == []
            messages.append(str(info.value))
        assert messages[0] == messages[1] == f"{model}: output 'exemplar_based_output' contains NaN or Inf"
    else:
        expected = records_of(SequentialExecutor(), bad, pairs, on_error="skip")
        got = records_of(InProcessExecutor(), bad, pairs, on_error="skip")
        assert all(r.skipped is not None for r in got)
        assert_same_records(got, expected)


def test_only_a_window_of_pairs_is_in_flight(config: cfg.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    # Memory is bounded: a pair is read only when fewer than `window` pairs are waiting for delivery.
    read: list[int] = []
    original = PairEvaluator.read

    def counting(self: PairEvaluator, pair: Pair) -> PairInputs:
        read.append(pair.index)
        return original(self, pair)

    monkeypatch.setattr(PairEvaluator, "read", counting)
    window = 3
    ahead: list[int] = []

    def deliver(record: PairRecord) -> None:
        ahead.append(max(read) - record.index)

    assert config.dataset.pairs is not None
    InProcessExecutor(window=window).evaluate(
        config, read_pairs(config.dataset.pairs), deliver, on_error="fail"
    )
    assert sorted(read) == list(range(N_PAIRS))
    assert max(ahead) < window


def test_no_pairs_is_no_work(config: cfg.Config) -> None:
    delivered: list[PairRecord] = []
    InProcessExecutor().evaluate(config, [], delivered.append, on_error="fail")
    assert delivered == []


@pytest.mark.parametrize("make", [SequentialExecutor, InProcessExecutor], ids=["sequential", "pipelined"])
def test_every_step_of_every_pair_is_reported_once(config: cfg.Config, make) -> None:
    steps: list[str] = []
    assert config.dataset.pairs is not None
    make().evaluate(
        config, read_pairs(config.dataset.pairs), lambda r: None, on_error="fail", on_step=steps.append
    )
    assert sorted(steps) == sorted(["original", "converted", VERIFIER_STEP] * N_PAIRS)


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_runs_in_one_process_leave_no_thread_and_no_memory_behind(config: cfg.Config, oracle) -> None:
    # Each run compiles its models and starts its threads; all of it must go when the run ends, on the
    # calling thread (an OpenVINO object freed on one of OpenVINO's threads aborts the process).
    threads = threading.active_count()
    records_of(InProcessExecutor(), config)
    gc.collect()
    after_one = _rss_mib()
    for _ in range(4):
        assert_same_records(records_of(InProcessExecutor(), config), oracle)
        assert threading.active_count() == threads
    gc.collect()
    assert _rss_mib() - after_one < 100  # a leaked run holds its compiled models: about 100 MiB each


def test_a_failing_delivery_ends_the_run_cleanly(config: cfg.Config) -> None:
    threads = threading.active_count()
    delivered: list[PairRecord] = []

    def deliver(record: PairRecord) -> None:
        if len(delivered) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the journal is written
        delivered.append(record)

    assert config.dataset.pairs is not None
    with pytest.raises(KeyboardInterrupt):
        InProcessExecutor().evaluate(config, read_pairs(config.dataset.pairs), deliver, on_error="fail")
    assert len(delivered) == 3 and threading.active_count() == threads
