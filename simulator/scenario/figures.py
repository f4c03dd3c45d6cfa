"""From what a run observed to the figure behind each gate.

Pure: the runner samples the SMSC's counters once a second into ``Sample`` rows and
hands them over with the reply tracker's statistics; this module decides what each
gate's figure is, or that the run did not measure it (None, which fails the gate).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.harness.replies import ReplyStats
from simulator.smsc.stats import LatencyHistogram as BucketHistogram
from simulator.ussd.figures import UssdSnapshot
from simulator.ussd.figures import figures as ussd_figures


@dataclass(frozen=True, slots=True)
class Sample:
    """The SMSC's cumulative counters at real time ``t`` (seconds since the run began)."""

    t: float
    submits: int
    accepted: int
    throttled: int
    #: submit_sm refused with an error status (validation, window full): not throttling.
    refused: int
    wants_receipt: int
    receipts_due: int
    receipts_delivered: int
    mo_queued: int
    mo_delivered: int
    #: Receipt copies the receipt_duplicate fault queued (delivered ones are in
    #: ``receipts_delivered`` too).
    receipts_duplicated: int = 0
    #: Receipts and MO parts sent to the platform and not yet answered at ``t``.
    receipts_on_the_wire: int = 0
    mo_on_the_wire: int = 0


def _sending_window(samples: Sequence[Sample]) -> tuple[Sample, Sample] | None:
    """First and last sample between which accepted submits grew."""
    grew = [(a, b) for a, b in itertools.pairwise(samples) if b.accepted > a.accepted]
    if not grew:
        return None
    return grew[0][0], grew[-1][1]


def distinct_receipts(s: Sample) -> int:
    """Receipts the platform took, the fault's duplicates left out."""
    return s.receipts_delivered - s.receipts_duplicated


def figures(
    samples: Sequence[Sample],
    replies: ReplyStats,
    *,
    pending_replies: int,
    broadcasts: bool,
) -> dict[str, float | None]:
    """One figure per gate name (see ``gates.GATES``); None where nothing was measured."""
    out: dict[str, float | None] = {}
    hist = replies.combined()
    out["mo_reply_p50"] = hist.percentile(0.50)
    out["mo_reply_p95"] = hist.percentile(0.95)
    out["mo_reply_p99"] = hist.percentile(0.99)
    asked = replies.replies + replies.timeouts + pending_replies
    out["unanswered_ratio"] = (replies.timeouts + pending_replies) / asked if asked else None

    last = samples[-1] if samples else None
    window = _sending_window(samples) if broadcasts else None
    if window is not None:
        first, end = window
        span = end.t - first.t
        out["broadcast_throughput"] = (end.accepted - first.accepted) / span if span > 0 else None
    else:
        out["broadcast_throughput"] = None

    if last is not None and last.wants_receipt:
        # Duplicates are not completion: without them, a receipt lost could be hidden by
        # another's copy (a copy still in flight counts against, which errs low).
        out["receipt_completion_ratio"] = max(
            0.0, min(1.0, distinct_receipts(last) / last.wants_receipt)
        )
    else:
        out["receipt_completion_ratio"] = None
    out["receipt_completion_time"] = None
    if window is not None and last is not None and last.wants_receipt:
        target = last.wants_receipt
        done = next((s for s in samples if distinct_receipts(s) >= target), None)
        if done is not None:
            out["receipt_completion_time"] = done.t - window[0].t

    if last is not None and last.submits:
        # Counted refusals, not submits - accepted: USSD screens are submits that are
        # never "accepted" as messages, and must not read as errors.
        out["error_ratio"] = last.refused / last.submits
        out["throttle_ratio"] = last.throttled / last.submits
    else:  # the platform sent nothing: a ratio of nothing measures nothing
        out["error_ratio"] = None
        out["throttle_ratio"] = None

    if last is not None:
        # Owed and not taken, less what is on the wire as the count is taken (sent, its
        # response still to come): a duplicate is owed too, and a delivered duplicate
        # must not make up for a receipt that was lost.
        out["lost_messages"] = float(
            max(
                0,
                last.receipts_due
                + last.receipts_duplicated
                - last.receipts_delivered
                - last.receipts_on_the_wire,
            )
            + max(0, last.mo_queued - last.mo_delivered - last.mo_on_the_wire)
        )
    else:
        out["lost_messages"] = None
    return out


def ussd_gate_figures(
    start: UssdSnapshot, load_end: UssdSnapshot, end: UssdSnapshot, screens: BucketHistogram
) -> dict[str, float | None]:
    """The ussd_* gates' figures from the USSD networks' counters: sessions per second
    while the load ran (``start`` to ``load_end``), how sessions ended over the whole run
    with its drain (``start`` to ``end``)."""
    f = ussd_figures(start, end)
    dialling = ussd_figures(start, load_end)
    ended = sum(end.released.values()) - sum(start.released.values())
    return {
        "ussd_completion_ratio": f.completion_ratio,
        "ussd_screen_p95": screens.quantile(0.95),
        "ussd_sessions_per_s": (
            dialling.sessions_per_s if load_end.dialled > start.dialled else None
        ),
        "ussd_abandoned_ratio": f.abandoned / ended if ended else None,
        "ussd_timeout_ratio": (f.timed_out + f.platform_failed) / ended if ended else None,
    }
