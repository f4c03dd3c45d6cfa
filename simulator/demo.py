"""``smsim demo``: the fake SMSC alone, with a short built-in client run (no Locust).

Starts the fake SMSC on its defaults, binds the built-in client as the 1442 platform
would (transceiver, rapidpro/secret), sends a quiz question in Arabic (three UCS-2
parts, receipt asked on the first part only, as Kannel does), a batch of GSM 7-bit
reminders with receipts, injects subscribers' replies (Arabic-Indic digits, Arabic,
Franco-Arabic, a long multi-part feedback), and shows with rich what went through.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.config import OperatorConfig, ReceiptConfig, SmscConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.constants import EsmClass, Tag
from simulator.smpp.pdu import DeliverSm, SubmitSm
from simulator.smpp.segmentation import Concat, Reassembler, parse_udh, split_message
from simulator.smpp.text import Alphabet, choose_coding, decode_text
from simulator.smsc.server import SmscServer, new_event_loop

QUIZ = (
    "مسابقة التوعية بفيروس كورونا - السؤال ١: ما هي أهم طريقة للوقاية من العدوى؟ "
    "١) غسل اليدين بالماء والصابون ٢) تناول المضادات الحيوية ٣) شرب الماء الساخن. "
    "أرسل رقم الإجابة إلى 1442 مجانا"
)
REPLIES = [
    ("201001234501", "١"),
    ("201101234502", "1"),
    ("201201234503", "نعم"),
    ("201501234504", "el egaba 1 ya3ni"),
    (
        "201001234505",
        "شكرا للوزارة على المنصة، لكن الدعم النقدي لتكافل وكرامة تأخر هذا الشهر "
        "ونرجو سرعة الصرف لأن الأسرة تعتمد عليه في مصاريف المدارس والعلاج",
    ),
    ("201101234506", "إلغاء"),
]
PARTICIPANTS = [number for number, _ in REPLIES]


def run_demo(port: int = 2775, messages: int = 2000) -> int:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_demo(port, messages))
    finally:
        loop.close()


async def _demo(port: int, messages: int) -> int:
    console = Console()
    config = SmscConfig(operators=[OperatorConfig(port=port, receipt=ReceiptConfig(delay=0.05))])
    try:
        smsc = SmscServer(config)
        await smsc.start()
    except OSError as exc:
        console.print(f"[red]cannot listen on 127.0.0.1:{port}: {exc.strerror}[/red]")
        console.print("Another SMSC running? Try: smsim demo --port 0")
        return 1
    host, real_port = smsc.address()
    console.rule(f"[bold]smsim fake SMSC on {host}:{real_port}  (account rapidpro / secret)")
    mo_seen: list[tuple[str, str, int]] = []
    receipts: dict[str, str] = {}
    reassembler = Reassembler()

    def on_deliver(pdu: DeliverSm) -> int:
        if pdu.esm_class & EsmClass.DELIVERY_RECEIPT:
            rid = pdu.tlv_str(Tag.RECEIPTED_MESSAGE_ID) or ""
            receipts[rid] = pdu.short_message.decode("ascii", "replace")
            return 0
        body = pdu.short_message
        if pdu.esm_class & EsmClass.UDHI:
            info, _, body = parse_udh(body)
            if info is not None and info.total > 1:
                whole = reassembler.add(
                    pdu.source_addr, info.ref, info.total, info.seq, body, time.monotonic()
                )
                if whole is not None:
                    mo_seen.append(
                        (pdu.source_addr, decode_text(whole, pdu.data_coding), info.total)
                    )
                return 0
        mo_seen.append((pdu.source_addr, decode_text(body, pdu.data_coding), 1))
        return 0

    client = await EsmeClient.connect(host, real_port, on_deliver=on_deliver, window=10)
    try:
        # 1. The quiz question, Arabic, three UCS-2 parts, receipt on the first part.
        coding, payload = choose_coding(QUIZ)
        ids: list[str] = []
        for number in PARTICIPANTS:
            parts = split_message(payload, Alphabet.UCS2, Concat.UDH8, len(ids) % 256)
            for part in parts:
                resp = await client.request(
                    SubmitSm(
                        source_addr_ton=3,
                        source_addr="1442",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=number,
                        esm_class=EsmClass.UDHI if part.udhi else 0,
                        data_coding=coding,
                        registered_delivery=1 if part.seq == 1 else 0,
                        short_message=part.body,
                    )
                )
                if part.seq == 1:
                    ids.append(resp.message_id)  # type: ignore[attr-defined]
        # 2. Subscribers answer.
        for number, text in REPLIES:
            smsc.inject_mo(number, text)
        # 3. A throughput run: GSM 7-bit reminders with receipts, window 10.
        t0 = time.perf_counter()
        with Progress(
            TextColumn("reminders"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("submit", total=messages)
            pending = []
            for i in range(messages):
                await client.wait_for_slot()
                pending.append(
                    client.send_nowait(
                        SubmitSm(
                            source_addr="1442",
                            source_addr_ton=3,
                            destination_addr=f"2010{i:08d}",
                            dest_addr_ton=1,
                            dest_addr_npi=1,
                            registered_delivery=1,
                            short_message=b"Takaful & Karama: school attendance reminder",
                        )
                    )
                )
                if i % 100 == 0:
                    progress.update(task, completed=i)
            await asyncio.gather(*pending)
            progress.update(task, completed=messages)
        submit_secs = time.perf_counter() - t0
        expected = len(PARTICIPANTS) + messages
        deadline = time.monotonic() + 15
        while (len(receipts) < expected or len(mo_seen) < len(REPLIES)) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        all_secs = time.perf_counter() - t0
    finally:
        await client.unbind()
    mt = smsc.recorder.messages()
    await smsc.stop()

    table = Table(title="MT at the SMSC, reassembled (what the handsets got)")
    for col in ("to", "parts", "text", "receipt"):
        table.add_column(col)
    for m in mt[: len(PARTICIPANTS)]:
        rid = m.message_ids[0]
        stat = receipts.get(rid, "")
        stat = stat.split("stat:")[1].split()[0] if "stat:" in stat else "-"
        table.add_row(m.destination_addr, str(m.parts), m.text[:60] + "…", stat)
    console.print(table)

    table = Table(title="MO from subscribers to 1442 (what the platform got)")
    for col in ("from", "parts", "text"):
        table.add_column(col)
    for number, text, n_parts in mo_seen:
        table.add_row(number, str(n_parts), text)
    console.print(table)

    stats = smsc.stats()
    table = Table(title="Totals")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("submit_sm accepted (parts; receipt asked on first)", str(stats.accepted))
    table.add_row(
        "receipts asked / delivered / matched by id",
        f"{expected} / {stats.receipts_delivered} / {len(receipts)}",
    )
    table.add_row("MO parts delivered", str(stats.mo_delivered))
    table.add_row(
        "reminders/s (submit → resp, window 10, one bind)", f"{messages / submit_secs:,.0f}"
    )
    table.add_row("reminders/s incl. all receipts", f"{messages / all_secs:,.0f}")
    table.add_row("protocol errors", str(stats.protocol_errors))
    console.print(table)
    ok = len(receipts) >= expected and len(mo_seen) == len(REPLIES)
    console.print("[green]demo OK[/green]" if ok else "[red]demo incomplete[/red]")
    return 0 if ok else 1
