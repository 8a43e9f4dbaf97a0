"""Handing one composed e-mail to the next hop: an SMTP server, or (with
``LEDGER_SMTP_URL`` unset) a folder of ``.eml`` files.

A mailer does not de-duplicate: the notify worker may hand it the same message
(same Message-ID) a second time after a crash, and says so in docs/emails.md.
What a mailer must do is classify failures correctly, because the worker acts
on the class:

* :class:`TransientFailure` — try again later.  ``server_down`` means the relay
  itself is unreachable or refuses us (connection refused, timeout, 4xx/5xx to
  our MAIL FROM): every message would fail, so the worker backs off globally
  and never blames the participant.  Otherwise (a 4xx for this recipient) only
  this message waits.
* :class:`PermanentFailure` — a 5xx for this recipient or this message: retrying
  cannot help; the worker records it on the registration and moves on.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse


class DeliveryError(Exception):
    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientFailure(DeliveryError):
    def __init__(self, reason: str, code: int | None = None, *, server_down: bool) -> None:
        super().__init__(reason, code)
        self.server_down = server_down


class PermanentFailure(DeliveryError):
    pass


class Mailer(Protocol):
    """Delivers one message to one envelope recipient.

    Returns only once the next hop has taken responsibility for the message
    (SMTP ``250`` after DATA, or the file renamed into place); otherwise raises
    :class:`TransientFailure` or :class:`PermanentFailure`.  May block for up to
    its timeout.  Not required to be idempotent.  Used from one thread.
    """

    def send(self, message: EmailMessage, *, envelope_from: str, envelope_to: str) -> None: ...

    def close(self) -> None: ...


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class SmtpMailer:
    """Standard SMTP: ``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://``.

    One connection is kept open between messages and re-opened after any
    failure, so a burst of e-mails costs one TCP/TLS handshake.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, local_hostname: str | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ValueError(f"LEDGER_SMTP_URL must be smtp:// or smtps://, not {parsed.scheme!r}")
        self.implicit_tls = parsed.scheme == "smtps"
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.starttls = parse_qs(parsed.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        conn: smtplib.SMTP
        if self.implicit_tls:
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    local_hostname=self.local_hostname,
                                    context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout,
                                local_hostname=self.local_hostname)
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
        if self.username:
            conn.login(self.username, self.password or "")
        self._conn = conn
        return conn

    def send(self, message: EmailMessage, *, envelope_from: str, envelope_to: str) -> None:
        try:
            conn = self._connect()
            conn.send_message(message, from_addr=envelope_from, to_addrs=[envelope_to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (0, b"refused"))
            reason = f"{code} {_decode(text)}"
            if 500 <= code < 600:
                raise PermanentFailure(reason, code) from exc
            raise TransientFailure(reason, code, server_down=False) from exc
        except smtplib.SMTPSenderRefused as exc:
            # Our own MAIL FROM refused: a configuration problem, never the participant's.
            self._drop()
            raise TransientFailure(f"{exc.smtp_code} {_decode(exc.smtp_error)}", exc.smtp_code,
                                   server_down=True) from exc
        except smtplib.SMTPDataError as exc:
            reason = f"{exc.smtp_code} {_decode(exc.smtp_error)}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(reason, exc.smtp_code) from exc
            raise TransientFailure(reason, exc.smtp_code, server_down=False) from exc
        except smtplib.SMTPResponseException as exc:  # HELO, AUTH, STARTTLS refused…
            self._drop()
            raise TransientFailure(f"{exc.smtp_code} {_decode(exc.smtp_error)}", exc.smtp_code,
                                   server_down=True) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS
            self._drop()
            raise TransientFailure(f"{type(exc).__name__}: {exc}", server_down=True) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


class OutboxMailer:
    """``LEDGER_SMTP_URL`` unset: each message becomes one ``.eml`` file.

    The file name is derived from the message's Date and Message-ID only, and
    the file is written to a temporary name then renamed, so a re-send after a
    crash replaces the same file: one file per fact, never a torn one.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def file_name(message: EmailMessage) -> str:
        local = str(message["Message-ID"]).strip("<>").split("@", 1)[0]  # kind.event.registration
        local = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in local)
        stamp = str(message.get("X-Ledger-Composed", "")).replace(":", "").replace("-", "")
        return f"{stamp}-{local}.eml" if stamp else f"{local}.eml"

    def send(self, message: EmailMessage, *, envelope_from: str, envelope_to: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            target = self.directory / self.file_name(message)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(message.as_bytes(policy=SMTP_POLICY))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # disk full, permissions: nothing the participant did
            raise TransientFailure(f"{type(exc).__name__}: {exc}", server_down=True) from exc

    def close(self) -> None:
        pass
