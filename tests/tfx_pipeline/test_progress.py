"""Component lines, wall/CPU/memory per component, progress lines and heartbeats, from fake log records."""

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from models.foundation import progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProbe:
    """Resources as the test sets them; `reset_ok` False plays a kernel without clear_refs."""

    def __init__(self, reset_ok=True):
        self.cpu, self.rss, self.hwm, self.reset_ok = 0.0, 100.0, 100.0, reset_ok
        self.on_sample = None  # called inside tree_rss_mib: a component boundary while sampling

    def cpu_seconds(self):
        return self.cpu

    def tree_rss_mib(self):
        if self.on_sample:
            self.on_sample()
        return self.rss

    def reset_peak(self):
        return self.reset_ok

    def self_peak_mib(self):
        return self.hwm


def _record(msg, *args, name="absl"):
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def _handler(heartbeat_seconds=30.0, probe=None):
    lines, clock = [], FakeClock()
    handler = progress.ComponentProgress(lines.append, heartbeat_seconds=heartbeat_seconds, clock=clock,
                                         probe=probe or FakeProbe())
    return handler, lines, clock


def test_lines_wall_cpu_and_peak_memory_per_component():
    probe = FakeProbe()
    handler, lines, clock = _handler(probe=probe)
    probe.cpu, probe.rss = 1.0, 100.0
    handler.handle(_record("Component %s is running.", "Transform"))
    clock.now, probe.rss = 1.0, 300.0
    handler.tick()                       # the sampled tree (300) beats the process's own mark (250)
    clock.now, probe.cpu, probe.rss, probe.hwm = 2.5, 4.0, 120.0, 250.0
    handler.handle(_record("Component %s is finished.", "Transform"))
    probe.rss = 90.0
    handler.handle(_record("Component %s is running.", "Trainer"))
    handler.handle(_record("A cached execution %d is used.", 7))
    clock.now, probe.cpu, probe.hwm = 3.0, 4.5, 700.0  # here the process's own mark beats the samples
    handler.handle(_record("Component %s is finished.", "Trainer"))
    assert lines == ["[Transform] running", "[Transform] finished in 2.5 s",
                     "[Trainer] running", "[Trainer] finished in 0.5 s (cached)"]
    assert handler.wall_seconds == {"Transform": 2.5, "Trainer": 0.5}
    # cpu: 4.0 - 1.0 and 4.5 - 4.0; peak: max(300, 250) and max(90, 700)
    assert handler.resources == {"Transform": {"cpu_seconds": 3.0, "peak_rss_mib": 300.0},
                                 "Trainer": {"cpu_seconds": 0.5, "peak_rss_mib": 700.0}}
    assert handler.peak_rss_mib == 700.0 and handler.running is None


def test_without_a_resettable_high_water_mark_the_peak_is_sampled():
    probe = FakeProbe(reset_ok=False)
    probe.hwm = 5000.0  # the process's lifetime peak: not this component's
    handler, _, clock = _handler(probe=probe)
    handler.handle(_record("Component %s is running.", "A"))
    probe.rss = 180.0
    handler.tick()
    probe.rss = 150.0
    handler.handle(_record("Component %s is finished.", "A"))
    assert handler.resources["A"]["peak_rss_mib"] == 180.0


def test_progress_lines_carry_the_running_component_and_reach_the_log_file(tmp_path):
    lines, log = [], tmp_path / "run.log"
    with progress.RunLogging(str(log), write=lines.append) as handler:
        progress.report_progress("before any component")
        logging.getLogger("absl").info("Component %s is running.", "Teacher")
        progress.report_progress("epoch 3/60: loss 2.5")
        logging.getLogger("tensorflow").info("not for the console")
        logging.getLogger("absl").info("Component %s is finished.", "Teacher")
    assert lines[0] == "[recdistill] before any component"
    assert lines[1:3] == ["[Teacher] running", "[Teacher] epoch 3/60: loss 2.5"]
    assert lines[3].startswith("[Teacher] finished in ") and len(lines) == 4
    text = log.read_text()
    assert "recdistill.progress: epoch 3/60: loss 2.5" in text and "not for the console" in text
    assert set(handler.resources) == {"Teacher"} and handler.resources["Teacher"]["cpu_seconds"] >= 0


def test_the_heartbeat_fires_after_the_interval_of_silence_and_never_after_finish():
    probe = FakeProbe()
    handler, lines, clock = _handler(heartbeat_seconds=30.0, probe=probe)
    handler.handle(_record("Component %s is running.", "Trainer"))
    clock.now, probe.rss = 29.9, 1234.4
    assert handler.tick() is None
    clock.now = 30.0
    assert handler.tick() == "[Trainer] still running: 30 s, 1234 MiB resident"
    clock.now = 59.0                      # 29 s after the heartbeat: not yet
    assert handler.tick() is None
    clock.now = 50.0
    progress_record = _record("batch 9", name=progress.PROGRESS_LOGGER)
    handler.handle(progress_record)       # a progress line at 50 s postpones the next beat to 80 s
    clock.now = 79.0
    assert handler.tick() is None
    clock.now = 80.0
    assert handler.tick() == "[Trainer] still running: 80 s, 1234 MiB resident"
    clock.now = 81.0
    handler.handle(_record("Component %s is finished.", "Trainer"))
    clock.now = 500.0
    assert handler.tick() is None
    assert lines == ["[Trainer] running", "[Trainer] still running: 30 s, 1234 MiB resident", "[Trainer] batch 9",
                     "[Trainer] still running: 80 s, 1234 MiB resident", "[Trainer] finished in 81.0 s"]
    assert handler.resources["Trainer"]["peak_rss_mib"] == 1234.4


def test_no_heartbeat_after_a_failure():
    handler, lines, clock = _handler(heartbeat_seconds=1.0)
    handler.handle(_record("Component %s is running.", "Trainer"))
    clock.now = 2.0
    handler.handle(_record("Execution %d failed.", 3))
    clock.now = 10.0
    assert handler.tick() is None
    assert lines == ["[Trainer] running", "[Trainer] failed after 2.0 s"] and handler.running == "Trainer"


def test_a_sample_taken_while_a_component_finishes_is_dropped():
    probe = FakeProbe()
    handler, lines, clock = _handler(heartbeat_seconds=1.0, probe=probe)
    handler.handle(_record("Component %s is running.", "A"))
    clock.now, probe.rss = 5.0, 100.0

    def finish_meanwhile():
        probe.on_sample = None
        handler.handle(_record("Component %s is finished.", "A"))
        probe.rss = 999.0                 # what the racing sample returns

    probe.on_sample = finish_meanwhile
    assert handler.tick() is None         # no heartbeat for a finished component
    assert lines[-1] == "[A] finished in 5.0 s" and handler.resources["A"]["peak_rss_mib"] == 100.0
    probe.hwm = 0.0
    assert handler.peak_rss_mib == 100.0  # nor does it count for the run


def test_the_heartbeat_thread_beats_and_stops_at_exit(tmp_path):
    lines = []
    logger = logging.getLogger("absl")
    run_logging = progress.RunLogging(str(tmp_path / "run.log"), write=lines.append, heartbeat_seconds=0.02)
    with run_logging as handler:
        logger.info("Component %s is running.", "Slow")
        deadline = time.monotonic() + 5
        while not any("still running" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        logger.info("Component %s is finished.", "Slow")
        count = len(lines)
        time.sleep(0.1)                   # five intervals: no heartbeat for a finished component
        assert len(lines) == count
    assert any(line.startswith("[Slow] still running: 0 s, ") and line.endswith(" MiB resident") for line in lines)
    assert lines[-1].startswith("[Slow] finished in ")
    assert handler._thread is None
    assert not [t for t in threading.enumerate() if t.name == "recdistill-heartbeat"]
    assert "recdistill.heartbeat: [Slow] still running" in (tmp_path / "run.log").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_probe_measures_this_process_and_its_children():
    probe = progress.ResourceProbe()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10)"])
    try:
        time.sleep(0.3)
        with open(f"/proc/{child.pid}/statm") as f:
            child_mib = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        with open("/proc/self/statm") as f:
            own_mib = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        tree = probe.tree_rss_mib()
        # this process and the child at least (in the whole suite a fixture's server is a child too),
        # and the /proc walk agrees with the probe's own count of the same tree
        assert tree >= own_mib + child_mib - 20
        assert progress._proc_tree_rss(os.getpid()) / 2**20 == pytest.approx(tree, abs=20)
    finally:
        child.kill()
        child.wait()
    if not probe.reset_peak():
        pytest.skip("no /proc/self/clear_refs here")
    block = b"x" * (200 * 2**20)
    high = probe.self_peak_mib()
    del block
    assert probe.reset_peak()
    assert probe.self_peak_mib() < high - 150  # the 200 MiB block left the high-water mark
    started = probe.cpu_seconds()
    sum(i * i for i in range(300_000))
    assert probe.cpu_seconds() > started
