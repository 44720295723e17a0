"""Email through a real SMTP server (aiosmtpd) on 127.0.0.1: attachment, STARTTLS, login."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from alert_peers import JPEG, SmtpSink, start_smtp, violation


def mail_channel(sink: SmtpSink, **extra: object) -> dict:
    return {
        "type": "email",
        "host": sink.host,
        "port": sink.port,
        "from": "siteguard@example.com",
        "to": ["hse@example.com"],
        **extra,
    }


def test_mail_with_snapshot_attached(smtp: SmtpSink, make_hub) -> None:
    config = {
        "channels": {"mail": mail_channel(smtp)},
        "routes": [
            {"name": "r", "channels": [{"channel": "mail", "recipients": ["boss@example.com"]}]}
        ],
    }
    hub = make_hub(config)
    notice = violation(zone="scaffold-2")
    hub.notify_violation(notice)
    ((mail_from, rcpt, msg),) = smtp.wait()

    assert mail_from == "siteguard@example.com"
    assert rcpt == ["boss@example.com"]  # the route's recipients replace the channel's
    assert msg["Subject"] == "[SiteGuard] site-a/gate-1：未戴安全帽"
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "未戴安全帽" in body and "scaffold-2" in body and notice.link in body
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "image/jpeg"
    assert attachment.get_filename() == f"{notice.event_id}.jpg"
    assert attachment.get_content() == JPEG
    hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.ok and attempt.channel_type == "email"


def test_mail_without_snapshot_links_it(smtp: SmtpSink, make_hub) -> None:
    config = {
        "language": "en",
        "channels": {"mail": mail_channel(smtp, attach_snapshot=False)},
        "routes": [{"name": "r", "channels": ["mail"]}],
    }
    hub = make_hub(config)
    notice = violation()
    hub.notify_violation(notice)
    ((_, rcpt, msg),) = smtp.wait()
    assert rcpt == ["hse@example.com"]
    assert not list(msg.iter_attachments())
    assert f"Review it: {notice.link}" in msg.get_content()


def test_rejected_recipient_is_a_permanent_failure(smtp: SmtpSink, make_hub) -> None:
    smtp.reject["gone@example.com"] = "550 5.1.1 no such user"
    config = {
        "channels": {"mail": mail_channel(smtp, to=["gone@example.com"])},
        "routes": [{"name": "r", "channels": ["mail"]}],
    }
    hub = make_hub(config)
    hub.notify_violation(violation())
    assert hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.outcome == "failed" and attempt.attempt == 1  # not retried
    assert "refused" in (attempt.error or "")
    assert smtp.messages == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the test's private CA)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    tmp_path = tmp_path_factory.mktemp("tls")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture()
def tls_smtp(free_port: int, tls_files: tuple[Path, Path]) -> Iterator[SmtpSink]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (b"siteguard", b"s3cret")
        return AuthResult(success=ok, handled=False)  # False: the server replies 535

    sink = SmtpSink("127.0.0.1", free_port)
    controller = start_smtp(
        sink,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    yield sink
    controller.stop()


def test_starttls_and_login(tls_smtp: SmtpSink, tls_files: tuple[Path, Path], make_hub) -> None:
    cert, _ = tls_files
    channel = mail_channel(
        tls_smtp, starttls=True, username="siteguard", password="s3cret", ca_file=str(cert)
    )
    hub = make_hub({"channels": {"mail": channel}, "routes": [{"name": "r", "channels": ["mail"]}]})
    assert hub.send_test("mail").ok
    ((_, _, msg),) = tls_smtp.wait()
    assert msg["Subject"] == "[SiteGuard] 测试消息"


def test_wrong_password_is_a_permanent_failure(
    tls_smtp: SmtpSink, tls_files: tuple[Path, Path], make_hub
) -> None:
    cert, _ = tls_files
    channel = mail_channel(
        tls_smtp, starttls=True, username="siteguard", password="wrong", ca_file=str(cert)
    )
    hub = make_hub({"channels": {"mail": channel}, "routes": [{"name": "r", "channels": ["mail"]}]})
    hub.notify_violation(violation())
    assert hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.outcome == "failed" and attempt.status_code == 535
    assert tls_smtp.messages == []


def test_implicit_tls(free_port: int, tls_files: tuple[Path, Path], make_hub) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink("127.0.0.1", free_port)
    controller = start_smtp(sink, ssl_context=context)
    try:
        channel = mail_channel(sink, ssl=True, ca_file=str(cert))
        hub = make_hub(
            {"channels": {"mail": channel}, "routes": [{"name": "r", "channels": ["mail"]}]}
        )
        hub.notify_violation(violation())
        ((_, _, msg),) = sink.wait()
        assert list(msg.iter_attachments())[0].get_content() == JPEG
    finally:
        controller.stop()


def test_untrusted_certificate_is_refused(tls_smtp: SmtpSink, make_hub) -> None:
    """Without the private CA, STARTTLS verification fails: nothing is sent in clear."""
    channel = mail_channel(tls_smtp, starttls=True, username="siteguard", password="s3cret")
    hub = make_hub({"channels": {"mail": channel}, "routes": [{"name": "r", "channels": ["mail"]}]})
    attempt = hub.send_test("mail")
    assert attempt.outcome == "failed" and "CERTIFICATE_VERIFY_FAILED" in (attempt.error or "")
    assert tls_smtp.messages == []
