"""Real OpenPGP certificates for tests, made with pysequoia (never with the code under test).

A `Key` holds a freshly generated secret key; its methods give public copies of the same
certificate that differ the way copies on different keyservers do: an extra user ID, a
revocation, a user ID revocation, a new expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pysequoia
from pysequoia.packet import PacketPile

__all__ = ["Key", "armored", "packet_set"]


@dataclass
class Key:
    tsk: pysequoia.Tsk

    @classmethod
    def generate(cls, user_id: str) -> Key:
        return cls(pysequoia.Tsk.generate(user_ids=[user_id],
                                          cipher_suite=pysequoia.CipherSuite.Cv25519))

    @property
    def cert(self) -> pysequoia.Cert:
        return self.tsk.extract_certificate()

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint.lower()

    def public(self) -> bytes:
        return bytes(self.cert)

    def with_user_id(self, user_id: str) -> bytes:
        return bytes(self.cert.add_user_id(user_id, self.tsk.certifier(None)))

    def revocation(self) -> bytes:
        """The bare key revocation signature packet."""
        return bytes(self.cert.revoke(self.tsk.certifier(None)))

    def revoked(self) -> bytes:
        """The certificate with its key revocation, as Sequoia serializes it."""
        return bytes(pysequoia.Cert.from_bytes(self.public() + self.revocation()))

    def user_id_revoked(self, user_id: str) -> bytes:
        """The certificate with a revocation of one of its user IDs (Sequoia files it
        under that user ID)."""
        cert = self.cert
        (uid,) = [u for u in cert.user_ids if str(u) == user_id]
        signature = cert.revoke_user_id(uid, self.tsk.certifier(None))
        return bytes(pysequoia.Cert.from_bytes(bytes(cert) + bytes(signature)))

    def secret(self) -> bytes:
        return str(self.tsk).encode("ascii")


def armored(binary: bytes) -> bytes:
    return pysequoia.armor(binary, pysequoia.ArmorKind.PublicKey).encode("ascii")


def packet_set(data: bytes) -> set[tuple[str, bytes]]:
    """The (tag, body) of every packet, read by Sequoia's packet parser."""
    return {(str(packet.tag), bytes(packet.body)) for packet in PacketPile.from_bytes(data)}
