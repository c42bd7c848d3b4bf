"""/reload (admin): the strategy files loaded again; its reply says what changed against the
strategies before (bot/chat/reload_desk.py), in Telegram HTML, every value escaped."""

from __future__ import annotations

from html import escape

from bot.chat.reload_desk import ReloadOutcome
from bot.core.errors import UserInputError
from handlers.request import Request


def reload_text(outcome: ReloadOutcome) -> str:
    named = (("new", outcome.new), ("changed", outcome.changed), ("removed", outcome.removed))
    counts = [f"{len(names)} {label}" for label, names in named if names]
    counts.append(f"{outcome.unchanged} unchanged")
    if outcome.problems:
        counts.append(f"{len(outcome.problems)} not loaded")
    lines = [f"Strategies reloaded: {', '.join(counts)}."]  # the audit keeps this line
    lines += [f"{label}: {escape(', '.join(names))}" for label, names in named if names]
    lines += [f"not loaded: {escape(problem)}" for problem in outcome.problems]
    if outcome.kept:
        runs = ", ".join(f"{pair} ({strategy})" for pair, strategy in outcome.kept)
        lines.append(f"running pairs keep the code they started with: {escape(runs)}")
    return "\n".join(lines)


async def run_reload(request: Request) -> str:
    if request.arguments:
        raise UserInputError(f"usage: {request.usage}")
    desk = request.cockpit.reload
    if desk is None:
        raise UserInputError("strategies cannot be reloaded here")
    return reload_text(await desk.reload())
