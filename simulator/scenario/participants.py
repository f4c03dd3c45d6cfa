"""Who takes part in what: disjoint blocks of population indices, nothing stored.

The population permutes its indices (``Population.msisdn(i)`` for consecutive ``i`` mixes
operators in their shares), so a block of consecutive indices is a fair sample. Each
action of a scenario gets its own block, in order; ``same_participants_as`` reuses the
block of an earlier action; spontaneous senders take what is left, cut per Locust worker
and user, so no two senders share a number (a pending MO is timed per number). The
runner and every Locust worker compute the same blocks from the scenario alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import Scenario


@dataclass(frozen=True, slots=True)
class Block:
    start: int
    count: int

    def indices(self) -> range:
        return range(self.start, self.start + self.count)


def action_blocks(scenario: Scenario) -> list[Block]:
    size = scenario.population.size
    blocks: list[Block] = []
    nxt = 0
    for a in scenario.actions:
        wanted = (
            a.broadcast.recipients
            if a.broadcast
            else a.flow_start.participants
            if a.flow_start
            else a.mo_wave.senders
            if a.mo_wave
            else 0
        )
        ref = getattr(a.flow_start or a.mo_wave, "same_participants_as", None)
        if ref is not None:
            base = blocks[ref]
            blocks.append(Block(base.start, min(wanted, base.count)))
            continue
        count = min(wanted, max(0, size - nxt))
        blocks.append(Block(nxt, count))
        nxt += count
    return blocks


def spontaneous_block(scenario: Scenario) -> Block:
    """The indices left for spontaneous senders (all of them if actions took none)."""
    size = scenario.population.size
    used = max((b.start + b.count for b in action_blocks(scenario)), default=0)
    if used >= size:
        return Block(0, size)  # actions took everyone: spontaneous senders overlap them
    return Block(used, size - used)


def sender_slice(block: Block, part: int, parts: int) -> Block:
    """The ``part``-th of ``parts`` equal slices of ``block`` (a worker's, a user's)."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts}")
    per = block.count // parts
    start = block.start + part * per
    count = block.count - part * per if part == parts - 1 else per
    return Block(start, max(0, count))
