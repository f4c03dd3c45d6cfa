"""Coverage-guided fuzzing of the codec and the session with atheris, for long local runs.

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/atheris_codec.py -max_total_time=1200 -rss_limit_mb=2048 runs/fuzz-corpus

The same checks as tests/test_fuzz_codec.py, on libFuzzer's inputs instead of
hypothesis's: ``decode_pdu`` raises only a documented SmppError or returns a fixed point
of the codec, and an SMSC or ESME ``Session`` fed the input (cut where the input says)
answers every request once with the spec's status, answers no response, closes only on
a framing error and stays usable. A crash leaves ``crash-*`` with the input; turn it
into a named regression test. The corpus directory is seeded with a valid PDU of every
command when empty. Not run by CI (``make test`` runs the hypothesis tests only).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from simulator.smpp import pdu as _pdu_module
    from simulator.smpp import session as _session_module
    from simulator.smpp import tlv as _tlv_module
    from simulator.smpp.constants import CommandId, Tag
    from simulator.smpp.pdu import BIND_CLASSES, PDU_CLASSES, DeliverSm, SubmitSm
    from simulator.smpp.session import Role, Session

from tests.test_fuzz_codec import MAX_PDU, App, _check_decode, _feed, _probe

del _pdu_module, _session_module, _tlv_module
# The per-command codec is generated with exec() at import: instrument it too.
for _cls in PDU_CLASSES.values():
    atheris.instrument_func(_cls._decode_body)
    atheris.instrument_func(_cls._encode_body)
_IDS = [int(c) for c in CommandId]


def _seeds() -> list[bytes]:
    out = [cls(sequence_number=1).encode() for cls in PDU_CLASSES.values()]
    out.append(
        SubmitSm(
            sequence_number=2,
            destination_addr="201001234567",
            short_message=b"hello",
            tlvs={Tag.SAR_MSG_REF_NUM: 7, Tag.RECEIPTED_MESSAGE_ID: "abc", 0x1400: b"x"},
        ).encode()
    )
    return out


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:  # the bytes as they are
        _check_decode(fdp.ConsumeBytes(fdp.remaining_bytes()))
        return
    if mode == 1:  # a true header of a known command, then the bytes
        cid = _IDS[fdp.ConsumeIntInRange(0, len(_IDS) - 1)]
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
        _check_decode(struct.pack(">IIII", 16 + len(body), cid, 0, 7) + body)
        return
    role = Role.SMSC if mode == 2 else Role.ESME
    session = Session(role, max_pdu_size=MAX_PDU, enquire_link_interval=None)
    app = App(session)
    bind = BIND_CLASSES[fdp.ConsumeIntInRange(0, 2)]
    if role is Role.SMSC:
        if fdp.ConsumeBool():
            app.handle(session.receive_data(bind(sequence_number=1).encode()))
            if session.can_receive:
                app.request(DeliverSm(destination_addr="1442"))
        session.inbound_window = fdp.ConsumeIntInRange(0, 4) or None
    else:
        app.request(bind())
        app.handle(session.receive_data(bind.response_class(sequence_number=1).encode()))  # type: ignore[misc]
        app.state = session.state
        if session.can_transmit:
            app.request(SubmitSm(destination_addr="201001234567"))
    session.data_to_send()
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    sent = [fdp.ConsumeBytes(fdp.remaining_bytes())]
    _, problems, fatal = _feed(session, app, sent, cuts)
    assert not problems, problems
    if not fatal:
        _probe(session, app)


def main() -> None:
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs:
        corpus = Path(dirs[0])
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for i, seed in enumerate(_seeds()):
                for mode in range(4):
                    # FuzzedDataProvider reads the mode from the input's last bytes.
                    (corpus / f"seed-{i}-{mode}").write_bytes(seed + bytes((mode,)) * 4)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
