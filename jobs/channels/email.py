"""The email channel: SMTP with STARTTLS or SSL and a verified certificate.

``security`` is explicit (``starttls``, ``ssl`` or ``none``) and never
downgraded: with ``starttls`` a server that does not offer STARTTLS is an
error. Certificates are verified against the system trust store, or
``[alerts.email] ca_file``. Login credentials come from the environment
variables the config names; the password never appears in errors or logs.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

from jobs.channels import Outcome
from jobs.config import Email
from jobs.digest import Digest, mime_message


class EmailChannel:
    name = "email"

    def __init__(self, e: Email, ca_file: Path | None) -> None:
        self.e = e
        self.ca_file = str(ca_file) if ca_file else None
        self.username = os.environ.get(self.e.username_env) if self.e.username_env else None
        self.password = os.environ.get(self.e.password_env) if self.e.password_env else None
        if self.username and not self.password:
            from jobs.errors import ConfigError

            raise ConfigError(
                f"{self.e.username_env} is set but {self.e.password_env} (named by "
                "alerts.email.password_env) is not"
            )

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def _connect(self) -> smtplib.SMTP:
        e = self.e
        if e.security == "ssl":
            return smtplib.SMTP_SSL(
                e.host, e.port, timeout=e.timeout_seconds, context=self._context()
            )
        smtp = smtplib.SMTP(e.host, e.port, timeout=e.timeout_seconds)
        if e.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS (security = 'starttls' is never downgraded)"
                )
            smtp.starttls(context=self._context())
            smtp.ehlo()
        return smtp

    def deliver(self, digest: Digest) -> Iterator[Outcome]:
        ids = [i.transaction_id for i in digest.items]
        msg = mime_message(digest, self.e.sender, list(self.e.recipients))
        try:
            smtp = self._connect()
            try:
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(msg)
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPAuthenticationError as exc:
            yield ids, False, f"SMTP login refused ({exc.smtp_code})", None
            return
        except ssl.SSLError as exc:
            yield ids, False, f"TLS failed: {exc.reason or type(exc).__name__}", None
            return
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            text = str(exc) if not self.password else str(exc).replace(self.password, "***")
            yield (
                ids,
                False,
                f"SMTP {self.e.host}:{self.e.port}: {type(exc).__name__}: {text}",
                None,
            )
            return
        if refused and len(refused) == len(self.e.recipients):
            yield ids, False, f"every recipient refused: {sorted(refused)}", None
            return
        yield ids, True, None, str(msg["Message-ID"])
