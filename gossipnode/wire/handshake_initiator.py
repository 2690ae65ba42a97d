"""The initiator's steps of the handshake (handshake.py states the protocol and its rules;
`Handshake` runs these): send a Hello keyed by the cluster secret, check the responder's
Reply (or Refusal) and answer with a signed Finish, which completes the initiator's side."""

from __future__ import annotations

import hmac

from .handshake_keys import (
    final_transcript,
    finish_mac,
    finish_transcript,
    hello_mac,
    replied_transcript,
    reply_mac,
    reply_transcript,
)
from .handshake_messages import Finish, Hello, Refusal, Reply
from .handshake_types import (
    NO_COMMON_VERSION,
    HandshakeError,
    HandshakeState,
    format_versions,
)

__all__ = ["InitiatorSteps"]


class InitiatorSteps(HandshakeState):
    """Mixed into `Handshake`: the state the steps share is the handshake's own."""

    def _send_hello(self) -> None:
        assert self._ephemeral is not None
        eph = bytes(self._ephemeral.public_key)
        mac = hello_mac(self._secret, self.versions, eph, self._nonce)
        self._hello_bytes = self._send(Hello(self.versions, eph, self._nonce, mac))

    def _on_refusal(self, refusal: Refusal) -> None:
        if not refusal.mac:
            raise HandshakeError(f"peer refused (unauthenticated): {refusal.reason!r}")
        expected = self._refusal_mac(refusal.reason, refusal.versions)
        if not hmac.compare_digest(expected, refusal.mac):
            raise HandshakeError("peer refused with a refusal that fails its MAC")
        if refusal.reason == NO_COMMON_VERSION:
            raise HandshakeError(
                f"{NO_COMMON_VERSION}: ours {format_versions(self.versions)}, "
                f"theirs {format_versions(refusal.versions)}"
            )
        raise HandshakeError(f"peer refused: {refusal.reason!r}")

    def _on_reply(self, reply: Reply) -> None:
        if reply.version not in self.versions:
            raise HandshakeError(f"peer chose protocol version {reply.version}, which we lack")
        transcript = reply_transcript(self._hello_bytes, reply.version, reply.ephemeral_key,
                                      reply.nonce, reply.node_id)
        self._transcript = transcript
        self._master = self._derive_master(reply.ephemeral_key)
        # The MAC first: it proves the cluster secret and this very exchange (replays fail).
        expected = reply_mac(self._master, transcript, reply.signature)
        if not hmac.compare_digest(expected, reply.mac):
            raise HandshakeError(
                "handshake MAC mismatch: the peer does not hold our cluster secret, "
                "or the reply was tampered with"
            )
        self._check_identity(reply.node_id, reply.signature, transcript)
        self._version = reply.version
        self._peer_id = reply.node_id
        node_id = self.identity.node_id
        self._transcript = replied_transcript(transcript, reply.signature, reply.mac)
        signed = finish_transcript(self._transcript, node_id)
        signature = self.identity.sign(signed)
        mac = finish_mac(self._master, signed, signature)
        self._send(Finish(node_id, signature, mac))
        self._complete(final_transcript(signed, signature, mac))
