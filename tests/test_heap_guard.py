"""The engine's heap guard: free heap pages go back only when memory is short, at most so often."""

from __future__ import annotations

from pathlib import Path

import pytest

from blurbkit.runtime.allocator import HeapGuard
from blurbkit.runtime.cgroups import memory_state

GB = 1 << 30


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _guard(state, clock, released):
    return HeapGuard(min_available=0.25, max_share=0.5, min_interval=10.0, state=lambda: state[0],
                     release=lambda: released.append(clock.now) or True, clock=clock)


def test_plenty_of_memory_keeps_the_heap():
    clock, released, state = Clock(), [], [(24 * GB, 20 * GB, 4 * GB)]
    guard = _guard(state, clock, released)
    for _ in range(5):
        clock.now += 30
        assert not guard.check()
    assert released == []


def test_short_memory_releases_at_most_once_per_interval():
    clock, released, state = Clock(), [], [(24 * GB, 5 * GB, 4 * GB)]  # under a quarter available
    guard = _guard(state, clock, released)
    assert guard.check()
    clock.now += 9.9
    assert not guard.check()  # too soon: if the last release did not help, another process holds the memory
    clock.now += 0.2
    assert guard.check()
    assert released == [100.0, pytest.approx(110.1)] and guard.releases == 2


def test_a_process_holding_more_than_its_share_releases_even_on_an_idle_machine():
    clock, released, state = Clock(), [], [(24 * GB, 7 * GB, 13 * GB)]
    assert _guard(state, clock, released).check()
    state[0] = (24 * GB, 7 * GB, 11 * GB)  # at or under half, a quarter still available: kept
    clock.now += 60
    assert not _guard(state, clock, released).check()


def test_no_proc_no_release():
    clock, released = Clock(), []
    assert not _guard([None], clock, released).check()
    assert released == []


def _proc(tmp_path: Path, total_kb: int, available_kb: int, resident_pages: int) -> dict:
    (tmp_path / "meminfo").write_text(f"MemTotal:       {total_kb} kB\nMemFree:  1 kB\nMemAvailable:   {available_kb} kB\n")
    (tmp_path / "statm").write_text(f"999 {resident_pages} 5 6 0 7 0\n")
    return {"meminfo": tmp_path / "meminfo", "statm": tmp_path / "statm", "root": tmp_path / "cgroup"}


def test_memory_state_reads_the_machine_and_the_smallest_cgroup_limit_on_the_way_up(tmp_path):
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    files = _proc(tmp_path, 24 << 20, 20 << 20, (3 * GB) // page)
    v2 = "0::/system.slice/job.scope\n"
    job = tmp_path / "cgroup" / "system.slice" / "job.scope"
    job.mkdir(parents=True)
    assert memory_state(**files, self_cgroup=v2) == (24 * GB, 20 * GB, 3 * GB)  # no limit files: the machine
    (job / "memory.max").write_text("max\n")
    (job.parent / "memory.max").write_text(f"{4 * GB}\n")  # the slice holds the limit, not the leaf
    assert memory_state(**files, self_cgroup=v2) == (4 * GB, 1 * GB, 3 * GB)
    (job / "memory.max").write_text(f"{30 * GB}\n")  # above the machine: the machine's memory stays the bound
    (job.parent / "memory.max").write_text("max\n")
    assert memory_state(**files, self_cgroup=v2) == (24 * GB, 20 * GB, 3 * GB)
    v1 = tmp_path / "cgroup" / "memory" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory_state(**files, self_cgroup="5:memory:/docker/abc\n")[0] == 24 * GB
    (v1 / "memory.limit_in_bytes").write_text(f"{8 * GB}\n")  # docker --memory 8g
    assert memory_state(**files, self_cgroup="5:memory:/docker/abc\n2:cpu:/docker/abc\n") == (8 * GB, 5 * GB, 3 * GB)
    (tmp_path / "meminfo").write_text("garbage\n")
    assert memory_state(**files, self_cgroup=v2) is None


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads /proc")
def test_memory_state_on_this_machine():
    total, available, resident = memory_state()
    assert 0 < available <= total and 0 < resident < total


def test_inference_asks_the_guard_after_every_batch(monkeypatch):
    """Predicting a corpus with the tuned heap (the CPU default) checks memory once per batch."""
    import blurbkit.inference.runner as runner
    from blurbkit.inference.predictor import Predictor

    checks = []

    class Recording(HeapGuard):
        def check(self) -> bool:
            checks.append(1)
            return False

    monkeypatch.setattr(runner, "HeapGuard", Recording)
    batches = []
    decode = runner.InferenceRunner._decode
    monkeypatch.setattr(runner.InferenceRunner, "_decode", lambda self, *args: batches.append(1) or decode(self, *args))
    model = Path(__file__).parent / "fixtures" / "v0_1_models" / "ner_bio"
    predictor = Predictor.load(model, batch_tokens=64)  # small batches: several of them
    sentences = [f"Selegiline number {n} was given to patient {n} with hepatitis ." for n in range(12)]
    assert len(predictor.predict(sentences)) == 12
    assert len(batches) >= 3 and len(checks) == len(batches)  # once per batch, not every few
