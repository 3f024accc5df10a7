"""A real SMTP server on loopback (aiosmtpd) with STARTTLS, an idle timeout and faults.

``idle_timeout_s`` is aiosmtpd's own timeout: the server drops a connection
that sends nothing for that long. ``drop_on_quit`` makes the server close the
connection when it receives QUIT, without the 221 reply, after it has already
accepted the message. ``reject_recipients`` maps addresses to the reply that
RCPT TO gets for them instead of 250, such as ``550 5.1.1 ... User unknown``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.routing.servers.tls import Certificate


@dataclass
class Received:
    peer: tuple[str, int]
    envelope_from: str
    recipients: list[str]
    message: Message
    tls: bool


@dataclass
class _Handler:
    drop_on_quit: bool = False
    reject_recipients: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    rcpt_commands: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpt_commands.append(address)
        reply = self.reject_recipients.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(
            Received(
                peer=tuple(session.peer),  # type: ignore[arg-type]
                envelope_from=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(envelope.original_content or b""),
                tls=session.ssl is not None,
            )
        )
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> Any:
        if self.drop_on_quit and server.transport is not None:
            server.transport.abort()
        return "221 Bye"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SMTPServer:
    def __init__(self, certificate: Certificate, *, idle_timeout_s: float = 300,
                 drop_on_quit: bool = False,
                 reject_recipients: dict[str, str] | None = None) -> None:
        self.handler = _Handler(
            drop_on_quit=drop_on_quit, reject_recipients=dict(reject_recipients or {})
        )
        self.port = _free_port()
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=certificate.server_context(),
            require_starttls=True,
            timeout=idle_timeout_s,
        )

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
