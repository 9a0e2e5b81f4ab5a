"""The secure profile's material (ALGO_PROFILE=secure, `algo stack up --secure`): a local certificate
authority and a server certificate for 127.0.0.1 and localhost (the `cryptography` package), and one
generated password per principal, all under <run_dir>/secure (mode 0700, files 0600).

Principals: `admin` (the brokers' own, a Kafka super user; `algo provision` and the other operator
commands), one per worker (`bars`, `persistence`, ...: `algo worker NAME` connects as NAME) and
`bridge`. A principal's password is read by streams.settings from <run_dir>/secure/credentials.json
(or ALGO_SECRETS_DIR), never from the command line.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from pathlib import Path

from streams.settings import CREDENTIALS_FILE, PRINCIPALS

CA_FILE, SERVER_FILE = "ca.pem", "server.pem"


def _private_write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_material(settings) -> Path:
    """Creates what is missing (a second call changes nothing); returns the folder."""
    folder = settings.secrets_folder
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    credentials = folder / CREDENTIALS_FILE
    known = json.loads(credentials.read_text()) if credentials.exists() else {}
    if set(PRINCIPALS) - set(known):
        known.update({name: secrets.token_urlsafe(24) for name in PRINCIPALS if name not in known})
        _private_write(credentials, (json.dumps(known, indent=2, sort_keys=True) + "\n").encode())
    if not (folder / CA_FILE).exists() or not (folder / SERVER_FILE).exists():
        ca_pem, server_pem = certificates()
        _private_write(folder / CA_FILE, ca_pem)
        _private_write(folder / SERVER_FILE, server_pem)
    return folder


def certificates(days: int = 825) -> tuple[bytes, bytes]:
    """(the CA's certificate, the server's private key + certificate + the CA's), PEM. The CA's key is
    not kept: nothing else is ever signed with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "algo local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the chain
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca_pem, key_pem + server.public_bytes(serialization.Encoding.PEM) + ca_pem
