"""The worker-to-server event channel: a step's report arrives as the trace's events."""

import time

import pytest

from thinkctl.control.batch import ProbeNotes, StepReport
from thinkctl.control.stack import ControlEvent
from thinkctl.engine.trace_channel import EventCollector, EventSender


@pytest.mark.parametrize("host", [None, "127.0.0.1"])  # IPC on one machine; TCP across nodes
def test_a_report_arrives_as_events_with_its_notes_expanded(host):
    collector = EventCollector(host)
    assert collector.addr.startswith("tcp://" if host else "ipc://")
    try:
        sender = EventSender(collector.addr)
        exit_event = ControlEvent("lynx", "lynx", 9, (2, 5), (("cue_index", 1), ("score", 0.9)))
        rules = [(("delta", 0.05),), (("threshold", 0.8), ("max_accuracy_loss", 0.01))]
        notes = ProbeNotes(["a", "b"], [4, 6], [0, 2], [0.1234567, 0.25], rules, [0, 8], 1e-4)
        sender.send(StepReport([("c", exit_event)], notes))
        sender.send(StepReport([]))  # nothing to say: no message
        deadline = time.monotonic() + 10
        got: dict[str, list] = {}
        while time.monotonic() < deadline and len(got) < 3:
            for rid in "abc":
                got.setdefault(rid, []).extend(collector.take(rid))
            got = {k: v for k, v in got.items() if v}
            time.sleep(0.01)
        assert got["c"] == [exit_event]
        want = dict(notes.events())
        assert got["a"] == [want["a"]] and got["b"] == [want["b"]]
        assert want["a"] == ControlEvent(
            "lynx", "probe", 4, (),
            (("cue_index", 0), ("score", 0.123457), ("delta", 0.05), ("latency_s", 1e-4)), True,
        )  # fmt: skip
        assert dict(want["b"].detail) == {"cue_index": 2, "score": 0.25, "threshold": 0.8,
                                          "max_accuracy_loss": 0.01, "latency_s": 1e-4,
                                          "min_thinking": 8}  # fmt: skip
    finally:
        collector.close()
