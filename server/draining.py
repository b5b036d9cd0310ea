"""uvicorn's graceful stop, saying what it waits for.

On SIGTERM uvicorn stops accepting connections, then waits for the open ones to finish.
`DrainingServer` logs, once the listening sockets are closed, how many chat requests are
still running or queued, and when they are done: what an operator (or a test) needs to
see that a shutdown drained work rather than cut it off.
"""

from __future__ import annotations

import logging
import socket

import uvicorn

from thinkctl.server.limits import Admission

log = logging.getLogger("uvicorn.error")  # beside uvicorn's own "Shutting down"


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, admission: Admission) -> None:
        super().__init__(config)
        self.admission = admission

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # as uvicorn does first; closing twice is harmless
            server.close()
        running, waiting = self.admission.running, self.admission.waiting
        log.info("Stopped accepting connections; draining %d running and %d queued "
                 "request(s).", running, waiting)  # fmt: skip
        await super().shutdown(sockets)
        log.info("Drained.")
