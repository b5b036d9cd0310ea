"""Every error a user of thinkctl can see, from the HTTP API or from a command, in one tree.

    ThinkctlError                   any error thinkctl reports on purpose
    ├── APIError (400)              a request refused, in OpenAI's shape (server/errors.py)
    │   ├── InvalidRequest (400)    bad input: types, ranges, conflicts, too-long prompts
    │   ├── Unauthorized (401)      missing or wrong API key
    │   ├── NotFound (404)          unknown model or route
    │   ├── TooManyRequests (429)   over the admission limits (with Retry-After)
    │   ├── RequestTimeout (504)    the per-request time limit ran out (engine work aborted)
    │   ├── EngineUnavailable (503) the engine is dead, shutting down, or no slot came free
    │   └── ServerError (500)       the engine failed on a valid request
    ├── EngineError                 the engine's failure for one request, with the HTTP
    │                               status it deserves (engine/client.py classifies it)
    └── CommandError                a command cannot go on: `thinkctl` prints it, exits 1
        ├── UnknownModel            a name that is no embedded model, catalogue id, folder
        │                           or hub id (models/resolve.py lists the known ones)
        ├── ModelUnavailable        a known model whose weights are not on this machine
        ├── FolderError             a model folder's facts contradict (probes/model_folder.py)
        └── ProbeError              a probe or calibration made for another model
                                    (probes/artifact.py)

The HTTP side renders `APIError` (server/errors.py, the only module here that needs
FastAPI); `thinkctl.cli.main` renders `CommandError`. This module imports nothing, so every
package, the engine-free ones included, can raise these.
"""

from __future__ import annotations


class ThinkctlError(Exception):
    """The root: `message` is what the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- the HTTP API -------------------------------------------------------------------------


class APIError(ThinkctlError):
    status = 400
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.param, self.code, self.headers = param, code, headers


class InvalidRequest(APIError):
    pass


class Unauthorized(APIError):
    status = 401


class NotFound(APIError):
    status = 404


class TooManyRequests(APIError):
    status = 429
    type = "rate_limit_error"


class RequestTimeout(APIError):
    status = 504
    type = "timeout_error"


class EngineUnavailable(APIError):
    status = 503
    type = "service_unavailable_error"


class ServerError(APIError):
    status = 500
    type = "server_error"


class EngineError(ThinkctlError):
    """`status`: the HTTP status it deserves (4xx: the request; 503: a dead engine; 500)."""

    def __init__(
        self, message: str, status: int, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def as_api_error(self) -> APIError:
        """The same failure as the API reports it."""
        cls = {400: InvalidRequest, 503: EngineUnavailable}.get(self.status)
        if cls is None:
            cls = ServerError if self.status >= 500 else APIError
        err = cls(self.message, self.param, self.code)
        err.status = self.status
        return err


# --- commands -----------------------------------------------------------------------------


class CommandError(ThinkctlError):
    """A command cannot go on (bad flags, a missing file): one line, exit status 1."""

    exit_code = 1


class UnknownModel(CommandError, ValueError):
    pass


class ModelUnavailable(CommandError):
    pass


class FolderError(CommandError, ValueError):
    pass


class ProbeError(CommandError, ValueError):
    pass
