"""Sending a workflow's e-mail over SMTP (aiosmtplib), with the settings from the environment.

The SMTP server is the process's, not a pack's: `SmtpSettings.from_environment` reads

| variable | meaning | default |
|---|---|---|
| `SLATECRM_SMTP_HOST` | the server's host name | none: e-mail actions fail ("SMTP is not configured") |
| `SLATECRM_SMTP_PORT` | its port | 25 (465 is usual with `TLS`, 587 with `STARTTLS`) |
| `SLATECRM_SMTP_USERNAME`, `SLATECRM_SMTP_PASSWORD` | to log in (AUTH), both or neither | no login |
| `SLATECRM_SMTP_STARTTLS` | `true`: upgrade the connection with STARTTLS (required) | false |
| `SLATECRM_SMTP_TLS` | `true`: TLS from the start (implicit TLS, "SMTPS") | false |
| `SLATECRM_SMTP_FROM` | the sender, `Name <address>` | `SlateCRM <noreply@localhost>` |
| `SLATECRM_SMTP_TIMEOUT` | seconds for each step of the SMTP dialogue | 30 |

A value that is not valid raises ValueError naming the variable, when the settings are read
(at the worker's start), not at the first e-mail.

`send_email` is synchronous (the worker runs its jobs in threads) and raises DeliveryFailed:
retryable for what may pass later (no connection, a timeout, a 4xx reply, an error that
says nothing), permanent for a 5xx reply and for what is wrong in the message itself (a
recipient that is not an address, SMTP not configured). Each message carries its job's
idempotency key twice: as its Message-ID (`<key@slatecrm>`, the same on every retry, so a
mail client can tell a second copy for what it is) and in `X-SlateCRM-Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr

import aiosmtplib

from .errors import DeliveryFailed

__all__ = ["DeliveryFailed", "SmtpSettings", "build_message", "check_recipient", "message_id_header",
           "send_email", "send_email_async"]

DEFAULT_SENDER = "SlateCRM <noreply@localhost>"
NOT_CONFIGURED = "SMTP is not configured (SLATECRM_SMTP_HOST)"
IDEMPOTENCY_HEADER = "X-SlateCRM-Idempotency-Key"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how e-mail is sent. `host` None: not configured."""

    host: str | None = None
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    tls: bool = False
    sender: str = DEFAULT_SENDER
    timeout: float = 30.0

    @property
    def configured(self) -> bool:
        return self.host is not None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings:
        """The settings the `SLATECRM_SMTP_*` variables of `environ` (default: the process's)
        give; ValueError naming the variable when one is not valid."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def flag(name: str) -> bool:
            value = (text(name) or "false").lower()
            if value not in _TRUE | _FALSE:
                raise ValueError(f"{name} must be true or false, not {env[name]!r}")
            return value in _TRUE

        port_text = text("SLATECRM_SMTP_PORT") or "25"
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"SLATECRM_SMTP_PORT must be a port number (1 to 65535), not {port_text!r}")
        timeout_text = text("SLATECRM_SMTP_TIMEOUT") or "30"
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("SLATECRM_SMTP_TIMEOUT must be a number of seconds above 0, "
                             f"not {timeout_text!r}")
        starttls, tls = flag("SLATECRM_SMTP_STARTTLS"), flag("SLATECRM_SMTP_TLS")
        if starttls and tls:
            raise ValueError("SLATECRM_SMTP_STARTTLS and SLATECRM_SMTP_TLS exclude each other: STARTTLS "
                             "upgrades a plain connection, TLS starts encrypted; set one")
        username, password = text("SLATECRM_SMTP_USERNAME"), env.get("SLATECRM_SMTP_PASSWORD") or None
        if (username is None) != (password is None):
            raise ValueError("SLATECRM_SMTP_USERNAME and SLATECRM_SMTP_PASSWORD go together: set both "
                             "(to log in) or neither")
        sender = text("SLATECRM_SMTP_FROM") or DEFAULT_SENDER
        try:
            check_recipient(sender)
        except DeliveryFailed as error:
            raise ValueError(f"SLATECRM_SMTP_FROM: {error.message}") from None
        host = text("SLATECRM_SMTP_HOST")
        if host is not None and any(c.isspace() or c == "/" for c in host):
            raise ValueError(f"SLATECRM_SMTP_HOST must be a host name or address, not {host!r}")
        return cls(host=host, port=int(port_text), username=username, password=password,
                   starttls=starttls, tls=tls, sender=sender, timeout=timeout)


def check_recipient(address: str) -> tuple[str, str]:
    """`address` (`someone@example.com` or `Name <someone@example.com>`) as the To header
    writes it and as the SMTP envelope does; DeliveryFailed (permanent) naming it when it is
    not one address."""
    if not isinstance(address, str) or not address.strip():
        raise DeliveryFailed(f"{address!r} is not an e-mail address (empty)", retryable=False)
    if "\r" in address or "\n" in address:
        raise DeliveryFailed(f"{address!r} is not an e-mail address (it holds a line break)", retryable=False)
    written = address.strip()
    if written.endswith(">") and "<" in written:  # Name <address>: the address as written
        written = written[written.rfind("<") + 1:-1]
    name, mailbox = parseaddr(address)
    local, at, domain = mailbox.rpartition("@")
    if (not at or not local or not domain or "@" in local.strip('"') or any(c.isspace() for c in written)
            or any(c.isspace() for c in mailbox) or domain.startswith(".") or domain.endswith(".")
            or ".." in domain or len(getaddresses([address])) != 1):
        raise DeliveryFailed(f"{address!r} is not an e-mail address", retryable=False)
    if not local.isascii():
        raise DeliveryFailed(f"{address!r}: an address with non-ASCII characters before the @ cannot be "
                             "sent (SMTPUTF8 is not supported)", retryable=False)
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise DeliveryFailed(f"{address!r} is not an e-mail address (its domain)",
                                 retryable=False) from None
        mailbox = f"{local}@{domain}"
    return formataddr((name, mailbox)), mailbox


_MSGID_TEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def message_id_header(key: str) -> str:
    """The Message-ID of the e-mail of idempotency key `key`: `<key@slatecrm>` when the key is
    made of the characters a Message-ID may hold, the others replaced by `-` and a digest of
    the key appended otherwise (two keys never share one)."""
    left = _MSGID_TEXT.sub("-", key).strip(".")
    left = re.sub(r"\.{2,}", ".", left)
    if left != key or not left:
        left = f"{left or 'key'}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return f"<{left}@slatecrm>"


def build_message(settings: SmtpSettings, *, to: Sequence[str], subject: str, text: str, html: str | None,
                  message_id: str,
                  headers: Mapping[str, str] | None = None) -> tuple[EmailMessage, list[str]]:
    """The message (multipart/alternative when there is an HTML part) and its envelope
    recipients; DeliveryFailed (permanent) for a recipient or header that cannot be sent."""
    if isinstance(to, str):
        to = [to]
    if not to:
        raise DeliveryFailed("the e-mail has no recipient", retryable=False)
    checked = [check_recipient(address) for address in to]
    if not message_id or "\r" in message_id or "\n" in message_id:
        raise DeliveryFailed(f"{message_id!r} is not an idempotency key", retryable=False)
    message = EmailMessage()
    try:
        message["From"] = settings.sender
        message["To"] = ", ".join(header for header, _ in checked)
        message["Subject"] = " ".join(subject.split())  # a header is one line
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id_header(message_id)
        message[IDEMPOTENCY_HEADER] = message_id
        for name, value in (headers or {}).items():
            if not re.fullmatch(r"[!-9;-~]+", name):
                raise ValueError(f"{name!r} is not a header name")
            message[name] = value
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    except ValueError as error:  # a header given twice, a line break in a value
        raise DeliveryFailed(f"the e-mail cannot be built: {error}", retryable=False) from error
    return message, list(dict.fromkeys(mailbox for _, mailbox in checked))


async def send_email_async(settings: SmtpSettings, *, to: Sequence[str], subject: str, text: str,
                           html: str | None, message_id: str,
                           headers: Mapping[str, str] | None = None) -> None:
    """`send_email` for a caller with an event loop."""
    if settings.host is None:
        raise DeliveryFailed(NOT_CONFIGURED, retryable=False)
    message, recipients = build_message(settings, to=to, subject=subject, text=text, html=html,
                                        message_id=message_id, headers=headers)
    await _send(settings, message, recipients)


def send_email(settings: SmtpSettings, *, to: Sequence[str], subject: str, text: str, html: str | None,
               message_id: str, headers: Mapping[str, str] | None = None) -> None:
    """Sends one e-mail (`text`, and `html` as its alternative when given) to `to`, with
    idempotency key `message_id`; returns when the server has accepted it for every recipient.
    Raises DeliveryFailed (see the module). Runs the SMTP dialogue on an event loop of its own:
    in this thread, or in a new one when this thread already runs a loop."""
    if settings.host is None:
        raise DeliveryFailed(NOT_CONFIGURED, retryable=False)
    # checked here, so that a recipient that is no address is refused before any connection
    message, recipients = build_message(settings, to=to, subject=subject, text=text, html=html,
                                        message_id=message_id, headers=headers)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_send(settings, message, recipients))
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_send(settings, message, recipients))
        except BaseException as error:  # handed to the calling thread
            failure.append(error)

    thread = threading.Thread(target=run, name="slatecrm-smtp", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _retryable(code: int) -> bool:
    """An SMTP reply code: 5xx is permanent; 4xx, and anything else, may pass later."""
    return not 500 <= code <= 599


async def _send(settings: SmtpSettings, message: EmailMessage, recipients: list[str]) -> None:
    where = f"{settings.host}:{settings.port}"
    try:
        refused, _reply = await aiosmtplib.send(
            message, sender=parseaddr(settings.sender)[1], recipients=recipients,
            hostname=settings.host, port=settings.port, username=settings.username,
            password=settings.password, use_tls=settings.tls, start_tls=settings.starttls,
            timeout=settings.timeout)
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [r.code for r in error.recipients]
        said = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
        raise DeliveryFailed(f"the SMTP server {where} refused every recipient: {said}",
                             retryable=any(_retryable(c) for c in codes), status=max(codes, default=None)) \
            from error
    except aiosmtplib.SMTPResponseException as error:
        raise DeliveryFailed(f"the SMTP server {where} answered {error.code} {error.message}",
                             retryable=_retryable(error.code), status=error.code) from error
    except (aiosmtplib.SMTPTimeoutError, TimeoutError) as error:
        raise DeliveryFailed(f"the SMTP server {where} did not answer within {settings.timeout:g} s",
                             retryable=True) from error
    except aiosmtplib.SMTPException as error:  # connection lost, a command not supported, ...
        raise DeliveryFailed(f"e-mail through {where} failed: {error}", retryable=True) from error
    except OSError as error:  # refused, unreachable, a name that does not resolve, TLS
        raise DeliveryFailed(f"cannot connect to the SMTP server {where}: {error}", retryable=True) from error
    if refused:
        # the others have it: sending again would give them a second copy
        said = "; ".join(f"{address}: {reply.code} {reply.message}" for address, reply in refused.items())
        raise DeliveryFailed(f"the SMTP server {where} took the e-mail for "
                             f"{len(recipients) - len(refused)} of {len(recipients)} recipients "
                             f"and refused {said}", retryable=False,
                             status=max(reply.code for reply in refused.values()))
