"""The platform's USSD application: the *1442# menu over SMPP and over HTTP.

Over SMPP a bind hands over each deliver_sm carrying ussd_service_op (a PSSR indication
opens a session, a USSR confirm brings an input, the end bit of its_session_info closes
it); the answer is a submit_sm with USSR request (continue) or PSSR response plus the end
bit (last screen), which every operator convention reads as meant. Over HTTP an
aggregator POSTs ``sessionId, serviceCode, phoneNumber, networkCode, text`` and reads
``CON ...`` / ``END ...``. Both walk the same ``ussd_menu.Menu``; what a subscriber asks
for (volunteering, a message) is recorded on the contact once per session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from simulator.platform.api import normalize_urn
from simulator.platform.model import MsgDirection
from simulator.platform.store import PlatformStore
from simulator.platform.ussd_menu import MENU, Menu, Screen
from simulator.smpp.constants import Tag, UssdServiceOp
from simulator.smpp.pdu import DataSm, DeliverSm, SubmitSm
from simulator.smpp.text import choose_coding, decode_text

log = logging.getLogger("smsim.platform.ussd")

#: Where aggregators POST (Africa's Talking style); public like the /c/ channel paths.
HTTP_PATH = "/c/ussd/callback"


class RawSender(Protocol):
    """A bind that can write a PDU of ours (aiosmpplib can't encode ussd_service_op)."""

    name: str

    def send_raw(self, pdu: SubmitSm) -> bool: ...


@dataclass(slots=True)
class UssdAppStats:
    sessions: int = 0
    screens: int = 0
    completed: int = 0
    released: int = 0  # the network ended it before the last screen
    actions: dict[str, int] = field(default_factory=dict)
    http_requests: int = 0


def dial_inputs(dialled: str) -> list[str]:
    """``*1442*2#`` -> ``["2"]``: a dial string's shortcut into the menu."""
    parts = dialled.strip("*#").split("*")
    return [p for p in parts[1:] if p]


class UssdApp:
    """Serves ``menu`` to both transports and records what subscribers ask for."""

    def __init__(
        self,
        store: PlatformStore,
        *,
        menu: Menu = MENU,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.menu = menu
        self.now = now
        self.stats = UssdAppStats()
        #: (bind name, msisdn) -> (session number, inputs) of open SMPP sessions.
        self._smpp: dict[tuple[str, str], tuple[int, list[str]]] = {}
        #: HTTP sessionIds whose action was recorded (aggregators repeat the path).
        self._http_done: dict[str, None] = {}

    # --- SMPP -------------------------------------------------------------------------------

    def on_deliver(self, bind: RawSender, pdu: DeliverSm | DataSm) -> None:
        op = pdu.tlv_int(Tag.USSD_SERVICE_OP)
        info = pdu.tlv_bytes(Tag.ITS_SESSION_INFO)
        number = info[0] if info and len(info) == 2 else 0
        end = bool(info[1] & 1) if info and len(info) == 2 else False
        msisdn = pdu.source_addr
        key = (bind.name, msisdn)
        body = pdu.short_message if isinstance(pdu, DeliverSm) else b""
        text = decode_text(pdu.tlv_bytes(Tag.MESSAGE_PAYLOAD) or body, pdu.data_coding)
        if end:
            if self._smpp.pop(key, None) is not None:
                self.stats.released += 1
                log.info("ussd_released channel=%s msisdn=%s", bind.name, msisdn)
            return
        # A dial: sequence 0 in its_session_info, or the dialled code in the text or the
        # destination (SMSCs that send inputs as PSSR indications too send neither).
        dial = (
            (info is not None and len(info) == 2 and info[1] >> 1 == 0)
            or text.startswith("*")
            or pdu.destination_addr.startswith("*")
        )
        if op == UssdServiceOp.PSSR_INDICATION and (key not in self._smpp or dial):
            dialled = text or pdu.destination_addr
            inputs = dial_inputs(dialled)
            self._smpp[key] = (number, inputs)
            self.stats.sessions += 1
        elif key in self._smpp:
            number, inputs = self._smpp[key]
            inputs.append(text)
        else:
            log.info("ussd_unknown_session channel=%s msisdn=%s op=%s", bind.name, msisdn, op)
            return
        screen = self._screen(inputs, msisdn, None)
        if screen.end:
            del self._smpp[key]
        seq = len(inputs)
        tlvs: dict[int, int | str | bytes] = {
            Tag.USSD_SERVICE_OP: UssdServiceOp.PSSR_RESPONSE
            if screen.end
            else UssdServiceOp.USSR_REQUEST,
            Tag.ITS_SESSION_INFO: bytes((number, (seq & 0x7F) << 1 | int(screen.end))),
        }
        coding, payload = choose_coding(screen.text)
        reply = SubmitSm(
            tlvs=tlvs,
            service_type=pdu.service_type if isinstance(pdu, DeliverSm) else "",
            source_addr_ton=pdu.dest_addr_ton,
            source_addr_npi=pdu.dest_addr_npi,
            source_addr=pdu.destination_addr,
            dest_addr_ton=pdu.source_addr_ton,
            dest_addr_npi=pdu.source_addr_npi,
            destination_addr=msisdn,
            data_coding=coding,
            short_message=payload,
        )
        if not bind.send_raw(reply):
            log.warning("ussd_unsent channel=%s msisdn=%s", bind.name, msisdn)

    # --- HTTP -------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(HTTP_PATH, self.http_callback)

    async def http_callback(self, request: web.Request) -> web.Response:
        """Africa's Talking's contract: form fields in, ``CON``/``END`` text out."""
        form = await request.post()
        session_id = str(form.get("sessionId", ""))
        phone = str(form.get("phoneNumber", ""))
        text = str(form.get("text", ""))
        self.stats.http_requests += 1
        if not session_id or not phone:
            return web.Response(status=400, text="END missing sessionId or phoneNumber")
        msisdn = phone.lstrip("+")
        inputs = text.split("*") if text else []
        if not inputs:
            self.stats.sessions += 1
        code = str(form.get("serviceCode", ""))
        inputs = dial_inputs(code) + inputs
        screen = self._screen(inputs, msisdn, session_id)
        prefix = "END " if screen.end else "CON "
        return web.Response(text=prefix + screen.text, content_type="text/plain")

    # --- both -------------------------------------------------------------------------------

    def _screen(self, inputs: list[str], msisdn: str, session: str | None) -> Screen:
        """The screen for ``inputs``; ``session``: an HTTP sessionId, whose action is
        recorded once however often the aggregator repeats the last path."""
        screen = self.menu.walk(inputs, msisdn, self.now())
        self.stats.screens += 1
        if screen.end:
            self.stats.completed += 1
            if screen.action and (session is None or session not in self._http_done):
                if session is not None:
                    self._http_done[session] = None
                    if len(self._http_done) > 100_000:
                        del self._http_done[next(iter(self._http_done))]
                self._record(msisdn, screen)
        return screen

    def _record(self, msisdn: str, screen: Screen) -> None:
        """A volunteer's governorate on the contact; a message as an incoming msg."""
        urn = normalize_urn("tel:+" + msisdn)
        if urn is None:
            return
        now = self.now()
        contact, _ = self.store.get_or_create_contact(urn, now)
        actions = self.stats.actions
        actions[screen.action] = actions.get(screen.action, 0) + 1
        if screen.action == "volunteer":
            contact.fields["volunteer_governorate"] = screen.value
            contact.modified_on = now
            self.store.upsert_contact(contact)
        elif screen.action == "feedback":
            self.store.new_msg(contact, MsgDirection.IN, screen.value, now, channel="ussd")
        log.info("ussd_action msisdn=%s action=%s", msisdn, screen.action)
