"""A self-signed TLS pair for an agent, and the fingerprint a host pins.

``lutnas agent cert`` writes ``agent.crt`` and ``agent.key``; the agent serves them with
``--tls-cert/--tls-key`` and every host passes the same ``agent.crt`` as ``--tls-ca``, which
trusts that one certificate and nothing else. The certificate names the hosts and addresses
clients dial (gRPC checks them), and the SHA-256 fingerprint printed beside it lets an
operator check a copied file (``openssl x509 -noout -fingerprint -sha256 -in agent.crt``).

Needs the ``cryptography`` package (a host dependency); the agent itself only reads PEM files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent._files import create_file, replace_file

__all__ = ["CLOCK_SKEW", "CertPair", "make_self_signed", "fingerprint", "default_names"]

DEFAULT_DAYS = 825  # the longest validity mainstream TLS clients accept for a server certificate
CLOCK_SKEW = dt.timedelta(days=1)  # how far a host's clock may lag the agent's that made the certificate


@dataclass(frozen=True)
class CertPair:
    """Where a pair was written and what it covers."""

    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex
    names: tuple[str, ...]  # subject alternative names (DNS names and IP addresses)
    not_after: str  # ISO date the certificate expires

    def to_dict(self) -> dict[str, object]:
        """The ``lutnas agent cert --json`` document."""
        return {"cert": str(self.cert), "key": str(self.key), "sha256_fingerprint": self.fingerprint,
                "names": list(self.names), "not_after": self.not_after}


def default_names() -> list[str]:
    """This machine's host name plus the loopback names, so a local host can dial it too."""
    return list(dict.fromkeys([socket.gethostname(), "localhost", "127.0.0.1", "::1"]))


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...`` (openssl's format)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def _san(names: Sequence[str]) -> list:
    from cryptography import x509

    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def make_self_signed(out_dir: Path, names: Sequence[str], days: int = DEFAULT_DAYS, overwrite: bool = False) -> CertPair:
    """Write a new EC P-256 key and a self-signed certificate for ``names`` into ``out_dir``.

    The key is created with mode 0600, never through a symlink: without ``overwrite`` any entry at either
    path is refused; with it, each file is written beside its path and renamed over it.

    Raises:
        ValueError: no names, a bad validity, or the files (or symlinks) exist and ``overwrite`` is off.
        ImportError: the ``cryptography`` package is missing (message names it).
        OSError: the folder or files cannot be written.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as err:
        raise ImportError(f"making a certificate needs the cryptography package (pip install cryptography): {err}") from err
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise ValueError("a certificate needs at least one host name or address")
    if not 1 <= days <= 36500:
        raise ValueError(f"--days must be in 1..36500, got {days}")
    out_dir = Path(out_dir)
    cert_path, key_path = out_dir / "agent.crt", out_dir / "agent.key"
    # lexists: a symlink planted at either path counts, dangling or not; it is never written through.
    existing = [str(p) for p in (cert_path, key_path) if os.path.lexists(p)]
    if existing and not overwrite:
        raise ValueError(f"{', '.join(existing)} already exist(s); pass --force to replace the pair")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lutnas agent {names[0]}"[:64])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # The one check in lutnas that reads two machines' clocks: hosts check this start against their own clock.
        # A board without a battery-backed clock may run hours ahead of the host; hosts pin this very
        # certificate, so starting its validity a day early gives nothing away.
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        # Its own trust anchor: hosts pin this very certificate as their CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    write = replace_file if overwrite else _create_file
    write(key_path, key_pem, 0o600)
    write(cert_path, cert_pem, 0o644)
    return CertPair(
        cert=cert_path,
        key=key_path,
        fingerprint=fingerprint(cert_pem),
        names=tuple(names),
        not_after=cert.not_valid_after_utc.date().isoformat(),
    )


def _create_file(path: Path, data: bytes, mode: int) -> None:
    """:func:`agent._files.create_file`, something that appeared at ``path`` meanwhile as ValueError."""
    try:
        create_file(path, data, mode)
    except FileExistsError:
        raise ValueError(f"{path} already exists; pass --force to replace the pair") from None
