"""The guards an activation passes before it makes a notification: the rule's cooldown, its
chattering, and the site's flood. A held activation is still an episode (state, events,
alert id); it only carries ``notify=False``. See ``docs/rules.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule


class GuardPolicy:
    """A rule's guard parameters (rules with the same ones share one object)."""

    __slots__ = ("chatter_activations", "chatter_window", "cooldown")

    def __init__(self, cooldown: int, chatter_activations: int, chatter_window: int) -> None:
        self.cooldown = cooldown
        self.chatter_activations = chatter_activations
        self.chatter_window = chatter_window


class FloodGuard:
    """The site's flood (ISA-18.2: an alarm rate above what people can handle)."""

    __slots__ = ("flooding", "limit", "times", "window")

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        # Times of the latest ``limit`` activations that would have notified (saved).
        self.times: list[int] = []
        self.flooding = False

    def clear(self) -> None:
        self.times = []
        self.flooding = False

    def admit(self, t: int) -> tuple[bool, bool]:
        """An activation that would notify at ``t``: (held, whether a flood starts).

        It is held while ``limit`` such activations, held ones included, fell within the
        last window. So a flood lasts until the site is back under the rate, not just until
        the first ones age out."""
        recent = self.times
        cutoff = t - self.window
        while recent and recent[0] <= cutoff:
            del recent[0]
        held = starts = False
        if len(recent) >= self.limit:
            held = True
            starts = not self.flooding
            self.flooding = True
        else:
            self.flooding = False
        recent.append(t)
        if len(recent) > self.limit:  # only the latest ``limit`` matter
            del recent[: len(recent) - self.limit]
        return held, starts


class ActivationGuards:
    """Cooldown, then chattering, then flood; each counts the notifications it held."""

    __slots__ = ("flood", "held_chattering", "held_cooldown", "held_flood")

    def __init__(self, flood: FloodGuard) -> None:
        self.flood = flood
        self.held_cooldown = 0
        self.held_chattering = 0
        self.held_flood = 0

    def check(self, rule: CompiledRule, t: int, *, held: bool = False) -> tuple[bool, bool, bool]:
        """``rule`` activates at ``t``: (notify, starts chattering, starts a flood). Records
        the activation in the rule's history (``last_activation``, ``chatter_times``).
        ``held``: a lifecycle state (shelved, out of service, maintenance) holds it already;
        it still counts for chattering, but neither for the guards' counters nor the flood."""
        policy = rule.guard
        if held:
            starts_chattering = _chatter(rule, policy, t, rule.last_activation)
            rule.last_activation = t
            return False, starts_chattering, False
        notify = True
        previous = rule.last_activation
        if previous is not None and t - previous < policy.cooldown:
            notify = False
            self.held_cooldown += 1
        starts_chattering = _chatter(rule, policy, t, previous)
        if rule.chattering and notify:
            notify = False
            self.held_chattering += 1
        starts_flood = False
        if notify:
            held, starts_flood = self.flood.admit(t)
            if held:
                notify = False
                self.held_flood += 1
        rule.last_activation = t
        return notify, starts_chattering, starts_flood

    def check_release(self, rule: CompiledRule, t: int) -> tuple[bool, bool]:
        """A held episode of ``rule`` is announced at ``t`` because its last hold ended (a
        release): (notify, starts a flood). Not a new activation: no cooldown (it would
        swallow every release of a hold shorter than it, the held activation being the
        previous one) and no place in the chattering history; but a rule chattering now
        stays held, and the release counts toward the site's flood as an activation does."""
        if is_chattering(rule, t):
            self.held_chattering += 1
            return False, False
        held, starts_flood = self.flood.admit(t)
        if held:
            self.held_flood += 1
            return False, starts_flood
        return True, False


def _chatter(rule: CompiledRule, policy: GuardPolicy, t: int, previous: int | None) -> bool:
    """Quiet for a whole window ends chattering; N activations within one start it. True if
    this activation starts it."""
    times = rule.chatter_times
    if times is None:
        times = rule.chatter_times = []
    if rule.chattering and previous is not None and t - previous >= policy.chatter_window:
        rule.chattering = False
        times.clear()
    times.append(t)
    if len(times) > policy.chatter_activations:
        del times[: len(times) - policy.chatter_activations]
    if (
        not rule.chattering
        and len(times) >= policy.chatter_activations
        and t - times[0] < policy.chatter_window
    ):
        rule.chattering = True
        return True
    return False


def is_chattering(rule: CompiledRule, now: int | None) -> bool:
    """Whether ``rule``'s notifications are held as chattering at ``now``."""
    return rule.chattering and (
        now is None
        or rule.last_activation is None
        or now - rule.last_activation < rule.guard.chatter_window
    )
