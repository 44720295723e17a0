"""SMTP mail (smtplib): plain-text body with the review link, the snapshot as a JPEG attachment.

SMTP replies 5xx (bad recipient, bad login) are permanent; 4xx and network errors are retried.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from alerts.channels.base import Channel, DeliveryError
from alerts.config import EmailChannelConfig
from alerts.messages import Dispatch


class EmailChannel(Channel):
    type = "email"
    config: EmailChannelConfig

    def build(self, dispatch: Dispatch) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = self.render(dispatch, "subject")
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.recipients(dispatch, self.config.to))
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="siteguard")
        msg.set_content(self.render(dispatch, "text"))
        snapshot = dispatch.snapshot
        if snapshot and self.config.attach_snapshot:
            name = f"{dispatch.violations[-1].event_id}.jpg"
            msg.add_attachment(snapshot, maintype="image", subtype="jpeg", filename=name)
        return msg

    def _tls(self) -> ssl.SSLContext:
        ca = self.config.ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def send(self, dispatch: Dispatch) -> int | None:
        msg = self.build(dispatch)
        cfg = self.config
        try:
            if cfg.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=self.timeout_s, context=self._tls()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout_s)
            with smtp:
                if cfg.starttls:
                    smtp.starttls(context=self._tls())
                if cfg.username and cfg.password:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            refused_all = f"all recipients refused: {exc.recipients}"
            raise DeliveryError(refused_all, permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if exc.smtp_error else ""
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {text}",
                status_code=exc.smtp_code,
                permanent=500 <= exc.smtp_code < 600,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise DeliveryError(f"some recipients refused: {sorted(refused)}", permanent=True)
        return 250
