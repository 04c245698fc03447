"""One writer per output folder: the lock (held by another process, freed by kill -9) and the journal rule
(a run without --resume refuses a folder that holds a journal; --fresh discards it on purpose)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error_line

from evalkit import cli, workflow
from evalkit.config import bundled_config
from evalkit.errors import InputError
from evalkit.execution.inprocess import InProcessExecutor
from evalkit.execution.journal import JOURNAL_DIR, Journal
from evalkit.execution.lock import LOCK_FILE, output_lock

# A second process that takes the folder's lock, says so, and holds it until killed.
HOLDER = """
import sys, time
from pathlib import Path
from evalkit.execution.lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def data(synthetic_data):
    return synthetic_data(4)


def run_args(standins, data, out: Path, *extra: str) -> list[str]:
    return [
        "run", str(bundled_config("demo.yaml")),
        "--data-root", str(data.root), "--pairs", str(data.pairs),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier), "--output", str(out), "--quiet", "--gallery-pairs", "0",
        "--no-cache", *extra,
    ]  # fmt: skip


def hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read() if proc.stderr else ""
    return proc


def fake_journal(out: Path) -> bytes:
    journal = Journal(out, {"k": 1}, ["original", "converted"])
    journal.start()
    return (out / JOURNAL_DIR / "meta.json").read_bytes()


def test_second_run_exits_2_naming_the_holder_before_any_work_and_kill_9_frees_the_folder(
    standins, data, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out"
    holder = hold(out)
    try:
        def no_inference(*args, **kwargs):
            raise AssertionError("the run started although another run holds its folder")

        monkeypatch.setattr(InProcessExecutor, "evaluate", no_inference)
        assert cli.main(run_args(standins, data, out)) == 2
        line = one_error_line(capsys)
        assert f"{out}: in use by pid {holder.pid} on {socket.gethostname()} since " in line
        assert "another evalkit run" in line and "--output" in line
        assert not (out / JOURNAL_DIR).exists() and not (out / "results.json").exists()
        # the library is refused the same way, also without run_and_report
        with pytest.raises(InputError, match=f"in use by pid {holder.pid}"):
            with output_lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
    # No cleanup: the kernel dropped the dead process's lock (its file is still there, holding nothing).
    assert (out / LOCK_FILE).exists()
    monkeypatch.undo()
    assert cli.main(run_args(standins, data, out)) == 0
    assert (out / "results.json").is_file()
    assert not (out / LOCK_FILE).exists()  # a finished run leaves no lock file behind


def test_lock_is_reentrant_within_a_process_and_released_on_exit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out):
        with output_lock(out):  # run_and_report holds it, then the pipeline asks again
            assert (out / LOCK_FILE).read_text().startswith(f"pid={os.getpid()}\n")
        assert (out / LOCK_FILE).exists()  # still held by the outer block
        probe = subprocess.run(
            [sys.executable, "-c", HOLDER.replace("time.sleep(600)", "pass"), str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode != 0 and "in use by pid" in probe.stderr
    assert not (out / LOCK_FILE).exists()
    holder = hold(out)  # free for another process at once
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()  # type: ignore[union-attr]
    holder.stderr.close()  # type: ignore[union-attr]


def test_a_folder_with_a_journal_is_refused_without_resume_and_kept(
    standins, data, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    meta = fake_journal(out)
    assert cli.main(run_args(standins, data, out)) == 2
    line = one_error_line(capsys)
    assert line == (
        f"evalkit: error: {out}: holds the journal of an unfinished run; pass --resume to continue it "
        "or --fresh to discard it"
    )
    assert (out / JOURNAL_DIR / "meta.json").read_bytes() == meta  # not deleted, not rewritten
    assert not (out / "results.json").exists() and not (out / LOCK_FILE).exists()


def test_fresh_discards_the_journal_and_runs(standins, data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    fake_journal(out)
    assert cli.main(run_args(standins, data, out, "--fresh")) == 0
    err = capsys.readouterr().err
    assert f"discarded the journal of an unfinished run in {out} (--fresh)" in err
    assert (out / "results.json").is_file() and not (out / JOURNAL_DIR).exists()


def test_resume_and_fresh_together_are_refused(standins, data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    meta = fake_journal(out)
    assert cli.main(run_args(standins, data, out, "--resume", "--fresh")) == 2
    assert "--resume and --fresh: choose one" in one_error_line(capsys)
    assert (out / JOURNAL_DIR / "meta.json").read_bytes() == meta


def test_library_evaluate_with_output_keeps_its_journal_and_refuses_a_silent_restart(
    standins, data, tmp_path: Path
) -> None:
    kwargs = dict(
        data_root=data.root,
        pairs=data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        output=tmp_path / "out",
    )
    first = workflow.evaluate(bundled_config("demo.yaml"), **kwargs)
    assert (tmp_path / "out" / JOURNAL_DIR / "meta.json").is_file()  # kept for a resume
    with pytest.raises(InputError, match="pass --resume to continue it or --fresh to discard it"):
        workflow.evaluate(bundled_config("demo.yaml"), **kwargs)
    again = workflow.evaluate(bundled_config("demo.yaml"), fresh=True, **kwargs)
    assert {n: m.metrics.to_dict() for n, m in again.models.items()} == {
        n: m.metrics.to_dict() for n, m in first.models.items()
    }
