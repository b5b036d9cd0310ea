"""Control events from the engine's worker process to the HTTP process.

vLLM's `RequestOutput` has no room for a logits processor's decisions, and the
processor runs in another process (on CPU, the worker behind the engine core). So the
processor pushes each step's report (its `ControlEvent`s, and the LYNX probe's notes as
columns, expanded into events here rather than in the decode loop) in one message, over a
ZeroMQ PUSH socket (pyzmq ships with vLLM), tagged with thinkctl's request id. The server
binds the PULL end before the engine starts and passes its address through the
environment, which spawned engine processes inherit. On one machine the address is an
`ipc://` path; when ranks may run on other nodes (Ray, --nnodes) it is `tcp://` on the
API server's address (vLLM's VLLM_HOST_IP, else its guess), so every rank's events
reach it (engine/launch.py also makes Ray copy the variables to its workers).

Ordering: an event is sent inside `apply()`, before the token it forces is even
sampled, while that token still has to travel worker -> engine core -> frontend
before the server sees it. So by the time the server holds a request's final output
its events have been sent; `EventCollector.take` drains the socket before answering.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections import defaultdict

import zmq

from thinkctl.control.batch import ProbeNotes, StepReport
from thinkctl.control.stack import ControlEvent

ADDR_ENV = "THINKCTL_TRACE_ADDR"


class EventSender:
    """Worker side. Never blocks the decode loop: when the queue is full, events drop."""

    def __init__(self, addr: str) -> None:
        self._sock = zmq.Context.instance().socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(addr)

    @classmethod
    def from_env(cls) -> EventSender | None:
        addr = os.environ.get(ADDR_ENV)
        return cls(addr) if addr else None

    def send(self, report: StepReport) -> None:
        """A step's report in one message."""
        if not report.events and report.notes is None:
            return
        message = [[(rid, *e) for rid, e in report.events], report.notes]
        try:
            self._sock.send(json.dumps(message).encode(), zmq.NOBLOCK)
        except zmq.Again:
            pass


class EventCollector:
    """HTTP side. Used from the event-loop thread only (ZeroMQ sockets are not thread-safe)."""

    def __init__(self, host: str | None = None) -> None:
        """`host`: listen on TCP there (for ranks on other nodes), else on an IPC path."""
        self._sock = zmq.Context.instance().socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        if host is None:
            self.addr = f"ipc://{tempfile.gettempdir()}/thinkctl-trace-{uuid.uuid4().hex}"
            self._sock.bind(self.addr)
        else:
            port = self._sock.bind_to_random_port(f"tcp://{host}")
            self.addr = f"tcp://{host}:{port}"
        self._pending: dict[str, list[ControlEvent]] = defaultdict(list)

    def _drain(self) -> None:
        while True:
            try:
                raw = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            events, notes = json.loads(raw)
            for rid, controller, reason, at, tokens, detail, note in events:
                event = ControlEvent(controller, reason, at, tuple(tokens),
                                     tuple(map(tuple, detail)), note)  # fmt: skip
                self._pending[rid].append(event)
            for rid, event in ProbeNotes(*notes).events() if notes else ():
                self._pending[rid].append(event)

    def take(self, request_id: str) -> list[ControlEvent]:
        """All events of a request received so far; forgets them (call once, at the end)."""
        self._drain()
        return self._pending.pop(request_id, [])

    def close(self) -> None:
        self._sock.close()
        path = self.addr.removeprefix("ipc://")
        if self.addr.startswith("ipc://") and os.path.exists(path):
            os.unlink(path)
