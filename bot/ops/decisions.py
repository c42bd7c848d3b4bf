"""One log line per trading decision, with its reason.

Under ``--log-format json`` each is one JSON object with ``event = "decision"``, the pair, the
action (enter, exit, hold, veto, wait) and the reason, so a log pipeline can answer "why did it
(not) trade at 14:00" without reading code.
"""

from __future__ import annotations

import logging

log = logging.getLogger("pairpilot.decisions")


def decision(pair: str, action: str, reason: str, **details: object) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s: %s",
            pair,
            action,
            reason,
            extra={
                "event": "decision",
                "pair": pair,
                "action": action,
                "reason": reason,
                **details,
            },
        )
