"""Stop strings over the answer as it streams (thinking never reaches them).

vLLM matches stop strings in all the text it decodes, the reasoning included, so a stop
string a model happens to think ("so the answer is 9") would end the reply before it
answers. thinkctl matches them in the answer only, with vLLM's rules otherwise: the
first stop string of the list that occurs wins, the text ends before it (or after it,
with `include_stop_str_in_output`). While streaming, the tail that could still be the
start of a stop string is held back until the next text decides it.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopStrings:
    def __init__(self, stops: Sequence[str], include: bool = False) -> None:
        self.stops, self.include = tuple(s for s in stops if s), include
        self.held = ""  # text not released yet: it may begin a stop string
        self.matched: str | None = None

    def feed(self, text: str, final: bool = False) -> str:
        """The text that may be released now; `matched` is set once a stop string occurred
        (the text is cut there, and everything fed after it is dropped)."""
        if self.matched is not None:
            return ""
        buf = self.held + text
        for stop in self.stops:
            at = buf.find(stop)
            if at >= 0:
                self.matched, self.held = stop, ""
                return buf[: at + len(stop)] if self.include else buf[:at]
        if final:
            self.held = ""
            return buf
        keep = self._prefix_tail(buf)
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def _prefix_tail(self, buf: str) -> int:
        """Length of the longest tail of `buf` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), longest, -1):
                if buf.endswith(stop[:k]):
                    longest = k
                    break
        return longest
