"""The delivery parts of workflows against real servers: e-mail to an aiosmtpd SMTP server,
webhooks to an HTTP receiver (http.server) that checks their signatures, and templates in
the sandbox. Nothing here sleeps: what a test waits for, it waits for on an Event."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import email
import email.policy
import functools
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from slatecrm.platform.workflows.delivery import json_body, post_webhook
from slatecrm.platform.workflows.errors import DeliveryFailed, TemplateFailed
from slatecrm.platform.workflows.mail import NOT_CONFIGURED, SmtpSettings, message_id_header, send_email
from slatecrm.platform.workflows.signing import SignatureRefused, sign, signature_headers, verify
from slatecrm.platform.workflows.templates import RecordView, render

WAIT = 30.0  # seconds an Event is waited for: generous, it is set long before on any machine


def free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- e-mail ------------------------------------------------------------------------------------
class Mailbox:
    """An aiosmtpd handler keeping what arrives; it refuses `refuse-…` recipients for good
    (550) and `later-…` ones for now (451)."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.connections = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refuse-"):
            return "550 5.1.1 No such mailbox"
        if address.startswith("later-"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpSettings]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, SmtpSettings.from_environment({
            "SLATECRM_SMTP_HOST": "127.0.0.1", "SLATECRM_SMTP_PORT": str(controller.port),
            "SLATECRM_SMTP_FROM": "Sales desk <desk@example.com>", "SLATECRM_SMTP_TIMEOUT": "10"})
    finally:
        controller.stop()


def test_an_email_arrives_as_sent(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    send_email(settings, to=["Ann Owner <ann@example.com>", "bob@example.org"],
               subject="Acme closes on 2026-03-01", text="Acme: 1,200.00 €\n",
               html="<p>Acme: <b>1,200.00 €</b></p>", message_id="wf-42:run-7:action-0",
               headers={"X-SlateCRM-Workflow": "proposal_follow_up"})
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "desk@example.com"
    assert envelope.rcpt_tos == ["ann@example.com", "bob@example.org"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["From"] == "Sales desk <desk@example.com>"
    assert message["To"] == "Ann Owner <ann@example.com>, bob@example.org"
    assert message["Subject"] == "Acme closes on 2026-03-01"
    assert message["X-SlateCRM-Idempotency-Key"] == "wf-42:run-7:action-0"
    assert message["Message-ID"] == message_id_header("wf-42:run-7:action-0")
    assert message["Message-ID"].startswith("<wf-42-run-7-action-0.") and message["Message-ID"].endswith(
        "@slatecrm>")
    assert message["X-SlateCRM-Workflow"] == "proposal_follow_up"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content().splitlines() == ["Acme: 1,200.00 €"]
    assert html_part.get_content().splitlines() == ["<p>Acme: <b>1,200.00 €</b></p>"]


def test_text_only_and_a_key_that_is_already_a_message_id(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    send_email(settings, to=["ann@example.com"], subject="two\r\nlines", text="Hello",
               html=None, message_id="abc.123")
    message = email.message_from_bytes(mailbox.envelopes[0].original_content, policy=email.policy.default)
    assert message.get_content_type() == "text/plain"
    assert message["Subject"] == "two lines"  # a header is one line: no header injection
    assert message["Message-ID"] == "<abc.123@slatecrm>"
    assert message_id_header("a:b") != message_id_header("a-b")  # two keys, two ids


@pytest.mark.parametrize("address", ["", "no-at-sign", "ann@example.com\r\nBcc: eve@example.com",
                                     "ann@example.com, bob@example.com", "ann @example.com",
                                     "ann@exa mple.com", "ann@", "Ann <ann@example.com> extra", "a@b@c",
                                     "ann@example..com",
                                     "ünï@example.com"])
def test_a_bad_recipient_is_refused_before_connecting(address: str) -> None:
    # nothing listens on the port: a connection attempt would fail as retryable
    settings = SmtpSettings(host="127.0.0.1", port=free_port())
    with pytest.raises(DeliveryFailed) as failed:
        send_email(settings, to=["ok@example.com", address], subject="s", text="t", html=None,
                   message_id="k")
    assert not failed.value.retryable
    assert failed.value.message.startswith(repr(address))


def test_a_closed_port_is_retryable() -> None:
    port = free_port()
    with pytest.raises(DeliveryFailed) as failed:
        send_email(SmtpSettings(host="127.0.0.1", port=port, timeout=10), to=["ann@example.com"],
                   subject="s", text="t", html=None, message_id="k")
    assert failed.value.retryable
    assert f"127.0.0.1:{port}" in failed.value.message


def test_smtp_not_configured() -> None:
    settings = SmtpSettings.from_environment({})
    assert not settings.configured and settings.port == 25
    assert settings.sender == "SlateCRM <noreply@localhost>"
    with pytest.raises(DeliveryFailed) as failed:
        send_email(settings, to=["ann@example.com"], subject="s", text="t", html=None, message_id="k")
    assert failed.value.message == "SMTP is not configured (SLATECRM_SMTP_HOST)" == NOT_CONFIGURED
    assert not failed.value.retryable


def test_replies_decide_what_is_retried(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    with pytest.raises(DeliveryFailed) as refused:
        send_email(settings, to=["refuse-x@example.com"], subject="s", text="t", html=None, message_id="k1")
    assert not refused.value.retryable and refused.value.status == 550
    assert "refuse-x@example.com: 550" in refused.value.message
    with pytest.raises(DeliveryFailed) as later:
        send_email(settings, to=["later-x@example.com"], subject="s", text="t", html=None, message_id="k2")
    assert later.value.retryable and later.value.status == 451
    assert mailbox.envelopes == []
    # one of two refused: the other has it, so sending again would give them a second copy
    with pytest.raises(DeliveryFailed) as partly:
        send_email(settings, to=["ann@example.com", "later-y@example.com"], subject="s", text="t",
                   html=None, message_id="k3")
    assert not partly.value.retryable and "for 1 of 2 recipients" in partly.value.message
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["ann@example.com"]]


def test_sending_from_a_thread_that_runs_an_event_loop(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp

    async def inside_a_loop() -> None:
        send_email(settings, to=["ann@example.com"], subject="from a loop", text="t", html=None,
                   message_id="k")

    asyncio.run(inside_a_loop())
    assert len(mailbox.envelopes) == 1


@pytest.mark.parametrize(("environ", "named"), [
    ({"SLATECRM_SMTP_PORT": "smtp"}, "SLATECRM_SMTP_PORT"),
    ({"SLATECRM_SMTP_PORT": "70000"}, "SLATECRM_SMTP_PORT"),
    ({"SLATECRM_SMTP_STARTTLS": "maybe"}, "SLATECRM_SMTP_STARTTLS"),
    ({"SLATECRM_SMTP_STARTTLS": "true", "SLATECRM_SMTP_TLS": "true"}, "SLATECRM_SMTP_TLS"),
    ({"SLATECRM_SMTP_USERNAME": "mailer"}, "SLATECRM_SMTP_PASSWORD"),
    ({"SLATECRM_SMTP_TIMEOUT": "0"}, "SLATECRM_SMTP_TIMEOUT"),
    ({"SLATECRM_SMTP_TIMEOUT": "nan"}, "SLATECRM_SMTP_TIMEOUT"),
    ({"SLATECRM_SMTP_FROM": "nobody"}, "SLATECRM_SMTP_FROM"),
])
def test_bad_settings_name_their_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SmtpSettings.from_environment({"SLATECRM_SMTP_HOST": "mail.example.com", **environ})


def test_settings_from_the_environment() -> None:
    settings = SmtpSettings.from_environment({
        "SLATECRM_SMTP_HOST": "mail.example.com", "SLATECRM_SMTP_PORT": "587",
        "SLATECRM_SMTP_USERNAME": "mailer", "SLATECRM_SMTP_PASSWORD": "s3cret",
        "SLATECRM_SMTP_STARTTLS": "TRUE", "SLATECRM_SMTP_TIMEOUT": "7.5"})
    assert settings == SmtpSettings(host="mail.example.com", port=587, username="mailer", password="s3cret",
                                    starttls=True, tls=False, timeout=7.5)
    assert "s3cret" not in repr(settings)


# --- webhooks ----------------------------------------------------------------------------------
SECRET = b"whsec_test_5f1c"


@dataclass
class Receiver:
    """An HTTP server that checks signatures as a webhook's receiver should: a refused signature
    is 401, a missing or old one 400, a key and timestamp it took before 409; then it answers
    what `script` says (200 when it is empty)."""

    secret: bytes
    script: deque[int] = field(default_factory=deque)
    seen: set[tuple[str, str]] = field(default_factory=set)
    log: list[dict[str, Any]] = field(default_factory=list)
    slow_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path == "/slow":
            self.slow_arrived.set()
            self.release.wait(WAIT)
            return 200, {}, b"late"
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            extra = {"Retry-After": "7"} if status == 429 else {"Location": "/hook"} if status == 302 else {}
            return status, extra, b"as asked"
        try:
            verify(self.secret, headers, body, now=int(time.time()))
        except SignatureRefused as refused:
            with self.lock:
                self.log.append({"refused": refused.kind, "headers": dict(headers)})
            return (401 if refused.kind == "mismatch" else 400), {}, refused.reason.encode()
        seen = (headers["Idempotency-Key"], headers["X-SlateCRM-Timestamp"])
        with self.lock:
            if seen in self.seen:
                self.log.append({"replay": seen})
                return 409, {}, b"replayed"
            status = self.script.popleft() if self.script else 200
            if 200 <= status < 300:  # a delivery it took; one it failed may come again
                self.seen.add(seen)
            self.log.append({"verified": seen, "status": status, "headers": dict(headers),
                             "body": json.loads(body)})
        return status, {"Content-Type": "application/json; charset=utf-8"}, \
            json.dumps({"status": status, "note": "é" * 3000}).encode()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, answer = state.answer(self.path, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (the timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def test_retries_carry_one_idempotency_key_and_a_valid_signature_each(receiver: tuple[Receiver, str]) -> None:
    state, base = receiver
    state.script.extend([500, 500, 200])
    body = json_body({"record": {"id": 7, "name": "Acme", "amount": decimal.Decimal("1200.50")},
                      "workflow": "deal_won"})
    started = int(time.time())
    outcomes: list[Any] = []
    for attempt in range(3):  # each attempt signed a second later, as a retry would be
        try:
            outcomes.append(post_webhook(f"{base}/hook", body, secret=SECRET, idempotency_key="wf-9:run-31",
                                         event="deal_won", timeout=10,
                                         now=functools.partial(int, started + attempt)))
        except DeliveryFailed as failed:
            outcomes.append(failed)
    first, second, third = outcomes
    assert isinstance(first, DeliveryFailed) and first.retryable and first.status == 500
    assert isinstance(second, DeliveryFailed) and second.retryable
    assert not isinstance(third, DeliveryFailed)
    assert third.status_code == 200 and third.elapsed_ms > 0
    assert len(third.body) == 2_000 and third.body.startswith('{"status": 200')  # the first 2,000 characters
    verified = [entry for entry in state.log if "verified" in entry]
    assert [entry["status"] for entry in verified] == [500, 500, 200]
    assert [entry["headers"]["Idempotency-Key"] for entry in verified] == ["wf-9:run-31"] * 3
    assert [entry["headers"]["X-SlateCRM-Event"] for entry in verified] == ["deal_won"] * 3
    assert [entry["headers"]["X-SlateCRM-Timestamp"] for entry in verified] == [
        str(started), str(started + 1), str(started + 2)]
    assert all(entry["body"]["record"]["amount"] == "1200.50" for entry in verified)
    assert not [entry for entry in state.log if "verified" not in entry]

    # the third request sent again, byte for byte: its key and timestamp were seen
    replay = signature_headers(SECRET, body, "wf-9:run-31", "deal_won", now=started + 2)
    assert httpx.post(f"{base}/hook", content=body, headers=replay).status_code == 409
    assert state.log[-1] == {"replay": ("wf-9:run-31", str(started + 2))}


def test_an_old_timestamp_is_refused(receiver: tuple[Receiver, str]) -> None:
    state, base = receiver
    with pytest.raises(DeliveryFailed) as failed:
        post_webhook(f"{base}/hook", b"{}", secret=SECRET, idempotency_key="k", event="e", timeout=10,
                     now=lambda: time.time() - 1_000)
    assert failed.value.status == 400 and not failed.value.retryable
    assert state.log[-1]["refused"] == "expired"


def test_a_wrong_secret_or_none_is_refused(receiver: tuple[Receiver, str]) -> None:
    state, base = receiver
    with pytest.raises(DeliveryFailed) as wrong:
        post_webhook(f"{base}/hook", b"{}", secret=b"not the secret", idempotency_key="k", event="e",
                     timeout=10)
    assert wrong.value.status == 401 and not wrong.value.retryable
    assert state.log[-1]["refused"] == "mismatch"
    with pytest.raises(DeliveryFailed) as unsigned:
        post_webhook(f"{base}/hook", b"{}", secret=None, idempotency_key="k", event="e", timeout=10)
    assert unsigned.value.status == 400
    assert state.log[-1]["refused"] == "missing"
    assert state.log[-1]["headers"]["Idempotency-Key"] == "k"  # unsigned, but with its key
    assert "X-SlateCRM-Signature" not in state.log[-1]["headers"]
    assert not [entry for entry in state.log if "verified" in entry]


def test_a_receiver_slower_than_the_timeout(receiver: tuple[Receiver, str]) -> None:
    state, base = receiver
    with pytest.raises(DeliveryFailed) as failed:
        post_webhook(f"{base}/slow", b"{}", secret=SECRET, idempotency_key="k", event="e", timeout=0.3)
    assert failed.value.retryable and "did not answer within 0.3 s" in failed.value.message
    assert state.slow_arrived.wait(WAIT)  # it was the receiver that was slow, not the connection
    state.release.set()


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (408, True), (503, True), (404, False),
                                                   (410, False), (302, False)])
def test_what_an_answer_means(receiver: tuple[Receiver, str], status: int, retryable: bool) -> None:
    state, base = receiver
    with pytest.raises(DeliveryFailed) as failed:
        post_webhook(f"{base}/status/{status}", b"{}", secret=SECRET, idempotency_key="k", event="e",
                     timeout=10)
    assert failed.value.retryable is retryable and failed.value.status == status
    if status == 429:
        assert failed.value.retry_after == 7
    if status == 302:  # not followed: the receiver got no request at /hook
        assert "redirect to /hook" in failed.value.message and state.log == []


def test_no_connection_is_retryable_and_other_schemes_are_refused() -> None:
    with pytest.raises(DeliveryFailed) as refused:
        post_webhook(f"http://127.0.0.1:{free_port()}/hook", b"{}", secret=None, idempotency_key="k",
                     event="e", timeout=10)
    assert refused.value.retryable
    for url in ("ftp://example.com/hook", "file:///etc/passwd", "not a url"):
        with pytest.raises(DeliveryFailed) as scheme:
            post_webhook(url, b"{}", secret=None, idempotency_key="k", event="e", timeout=10)
        assert not scheme.value.retryable and repr(url) in scheme.value.message


def test_json_body_is_deterministic() -> None:
    moment = dt.datetime(2026, 3, 1, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    payload = {"b": [decimal.Decimal("10.50"), dt.date(2026, 3, 1)], "a": {"z": moment, "y": None}}
    assert json_body(payload) == (b'{"a":{"y":null,"z":"2026-03-01T10:30:00Z"},'
                                  b'"b":["10.50","2026-03-01"]}')
    assert json_body({"big": 2**70, "a": 1}) == b'{"a":1,"big":1180591620717411303424}'
    assert json_body({"é": "ü"}) == '{"é":"ü"}'.encode()
    with pytest.raises(TypeError):
        json_body({"x": object()})


# --- signatures --------------------------------------------------------------------------------
def test_signatures() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign(b"k", 1_700_000_000, body) == expected
    headers = signature_headers(b"k", body, "key-1", "deal_won", now=1_700_000_000)
    assert headers["X-SlateCRM-Signature"] == "v1=" + sign(b"k", 1_700_000_000, body)
    lower = {name.lower(): value for name, value in headers.items()}
    verify(b"k", lower, body, now=1_700_000_100)  # any case of header names
    rotated = dict(headers, **{"X-SlateCRM-Signature": f"v1={'0' * 64}, {headers['X-SlateCRM-Signature']}"})
    verify(b"k", rotated, body, now=1_700_000_000)  # one of several matching is enough

    def refused(headers: Mapping[str, str], body: bytes = body, now: int = 1_700_000_000) -> str:
        with pytest.raises(SignatureRefused) as error:
            verify(b"k", headers, body, now=now)
        return error.value.kind

    assert refused(headers, body + b" ") == "mismatch"
    assert refused(headers, now=1_700_000_301) == "expired"
    assert refused(headers, now=1_699_999_699) == "expired"  # from the future too
    assert refused({k: v for k, v in headers.items() if k != "X-SlateCRM-Signature"}) == "missing"
    assert refused({k: v for k, v in headers.items() if k != "X-SlateCRM-Timestamp"}) == "missing"
    assert refused(dict(headers, **{"X-SlateCRM-Timestamp": "yesterday"})) == "malformed"
    assert refused(dict(headers, **{"X-SlateCRM-Signature": "sha256"})) == "malformed"
    assert refused(dict(headers, **{"X-SlateCRM-Signature": "v0=abc"})) == "malformed"
    # the timestamp is signed: moving it breaks the signature
    assert refused(dict(headers, **{"X-SlateCRM-Timestamp": "1700000001"})) == "mismatch"


# --- templates ---------------------------------------------------------------------------------
class Lookups:
    """The records a reference may point to, counting the fetches."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, Any], dict[str, Any]] = {
            ("account", 7): {"name": "Acme <Corp>", "parent": 1}, ("account", 1): {"name": "Holding"}}
        self.fetched: list[tuple[str, Any]] = []

    def __call__(self, entity: str, id: Any) -> Mapping[str, Any] | None:
        self.fetched.append((entity, id))
        return self.records.get((entity, id))


def view(values: dict[str, Any], lookups: Lookups) -> RecordView:
    return RecordView(values, lookup=lookups, references={"account": "account"},
                      references_of=lambda entity: {"parent": "account"} if entity == "account" else {})


WORKFLOW = {"name": "deal_won", "label": "Deal won"}


def test_templates_read_fields_references_and_previous() -> None:
    lookups = Lookups()
    record = view({"name": "Big deal", "account": 7, "amount": decimal.Decimal("10.50"), "rating": 4,
                   "items": "three", "note": None}, lookups)
    text = render("{{ record.name }} for {{ record.account.name }} ({{ record.account.parent.name }}): "
                  "{{ record.amount }}; rating {{ previous.rating }} → {{ record.rating }}; "
                  "{{ record.account.name | upper }} in {{ workflow.label }}; [{{ record.note }}] "
                  "{{ record.items }}", record=record, previous={"rating": 2}, workflow=WORKFLOW)
    assert text == ("Big deal for Acme <Corp> (Holding): 10.50; rating 2 → 4; ACME <CORP> in Deal won; "
                    "[] three")
    assert lookups.fetched == [("account", 7), ("account", 1)]  # each record once
    assert render("{{ record['account']['name'] }}", record=record, previous=None, workflow=WORKFLOW) == \
        "Acme <Corp>"


def test_what_is_not_there_prints_nothing() -> None:
    lookups = Lookups()
    record = view({"name": "x", "account": 99}, lookups)  # a reference to a record that is gone
    assert render("[{{ record.account.name }}|{{ record.nothing }}|{{ record.nothing.deeper }}|"
                  "{{ previous.rating }}|{{ unknown }}]", record=record, previous=None,
                  workflow=WORKFLOW) == "[||||]"
    assert render("{{ record.account }}", record=view({"account": None}, lookups), previous=None,
                  workflow=WORKFLOW) == ""
    with pytest.raises(TemplateFailed, match="'nothing' is undefined"):
        render("{{ record.nothing + 1 }}", record=record, previous=None, workflow=WORKFLOW)


def test_only_html_is_escaped() -> None:
    record = view({"name": "<b>Tom & Jerry</b>", "account": 7}, Lookups())
    template = "{{ record.name }} / {{ record.account.name }}"
    assert render(template, record=record, previous=None, workflow=WORKFLOW) == \
        "<b>Tom & Jerry</b> / Acme <Corp>"
    assert render(template, record=record, previous=None, workflow=WORKFLOW, html=True) == \
        "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt; / Acme &lt;Corp&gt;"


@pytest.mark.parametrize("template", [
    "{{ record.__class__ }}",
    "{{ record['__class__'] }}",
    "{{ record.name.__class__.__mro__ }}",
    "{{ ''.__class__.__subclasses__() }}",
    "{{ workflow.update({'name': 'x'}) }}",
    "{{ 'x' * 100000000 }}",
])
def test_the_sandbox_refuses(template: str) -> None:
    workflow = dict(WORKFLOW)
    with pytest.raises(TemplateFailed, match="refused") as failed:
        render(template, record=view({"name": "n"}, Lookups()), previous=None, workflow=workflow)
    assert "line 1 of the template" in failed.value.message
    assert workflow == WORKFLOW


def test_template_errors_say_what_and_where() -> None:
    record = view({"name": "n", "amount": 3}, Lookups())
    with pytest.raises(TemplateFailed, match=r"TypeError: .* \(line 2 of the template\)"):
        render("ok\n{{ record.name + record.amount }}", record=record, previous=None, workflow=WORKFLOW)
    with pytest.raises(TemplateFailed, match=r"does not parse: .* \(line 1 of the template\)"):
        render("{% if %}", record=record, previous=None, workflow=WORKFLOW)
