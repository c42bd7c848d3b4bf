"""/check: a strategy check's verdict in Telegram HTML, every value escaped: the verdict line,
one line per check (as `pairpilot strategy check` words it), and where it was stored."""

from __future__ import annotations

from html import escape

from bot.chat.check_desk import CheckView
from bot.core.errors import UserInputError
from handlers.request import Request

HASH_SHOWN = 8  # characters of the source hash: enough to tell two versions apart


def check_reply(view: CheckView) -> str:
    if view.passed:
        verdict = "✅ <b>{}</b> on {} {}: PASSED"
    else:
        verdict = f"❌ <b>{{}}</b> on {{}} {{}}: FAILED ({escape(', '.join(view.failed))})"
    lines = [
        verdict.format(escape(view.strategy), escape(view.pair), escape(view.timeframe)),
        f"{view.candles:,} candles {view.first:%Y-%m-%d %H:%M} .. {view.last:%Y-%m-%d %H:%M} "
        f"UTC, {view.seconds:.1f} s",
    ]
    for line in view.lines:
        mark = "ok" if line.passed else "<b>FAIL</b>"
        lines.append(f"{escape(line.check)}: {mark}, {escape(line.detail)}")
    lines.append(f"stored as check {view.check_id} for source hash {view.source_hash[:HASH_SHOWN]}")
    return "\n".join(lines)


async def run_check(request: Request) -> str:
    checks = request.cockpit.checks
    if checks is None:
        raise UserInputError("strategy checks are not available here")
    return check_reply(await checks.check(request.arguments, request.progress))
