"""The responder's steps of the handshake (handshake.py states the protocol and its rules;
`Handshake` runs these): answer a Hello that proves the cluster secret with a signed Reply
(or from the reply cache, for a replayed hello), and check the initiator's Finish."""

from __future__ import annotations

import hmac

import nacl.public

from .framing import encode_frame
from .handshake_cache import CachedReply, ReplyCache
from .handshake_keys import (
    final_transcript,
    finish_mac,
    finish_transcript,
    hello_mac,
    replied_transcript,
    reply_mac,
    reply_transcript,
)
from .handshake_messages import HANDSHAKE_FRAME_BYTES_MAX, Finish, Hello, Refusal, Reply
from .handshake_types import (
    NO_COMMON_VERSION,
    WRONG_SECRET,
    HandshakeError,
    HandshakeState,
    format_versions,
)

__all__ = ["ResponderSteps"]


class ResponderSteps(HandshakeState):
    """Mixed into `Handshake`: the state the steps share is the handshake's own."""

    secrets: tuple[bytes, ...]
    _reply_cache: ReplyCache | None
    _now: float
    _cache_key: bytes
    _expecting: type
    _outgoing: bytearray

    def _on_hello(self, hello: Hello, frame: bytes) -> None:
        # Rule 1: find the secret before any public-key work.
        for secret in self.secrets:
            expected = hello_mac(secret, hello.versions, hello.ephemeral_key, hello.nonce)
            if hmac.compare_digest(expected, hello.mac):
                self._secret = secret
                break
        else:
            self._send(Refusal(WRONG_SECRET, (), b""))
            raise HandshakeError(f"{WRONG_SECRET} (the peer's hello matches none of ours)")
        self._hello_bytes = frame
        shared = set(hello.versions) & set(self.versions)
        if not shared:
            reason = NO_COMMON_VERSION
            self._send(Refusal(reason, self.versions, self._refusal_mac(reason, self.versions)))
            raise HandshakeError(
                f"{NO_COMMON_VERSION}: ours {format_versions(self.versions)}, "
                f"theirs {format_versions(hello.versions)}"
            )
        if self._answer_from_cache(frame):
            return
        self._version = max(shared)
        self._ephemeral = nacl.public.PrivateKey.generate()
        eph = bytes(self._ephemeral.public_key)
        node_id = self.identity.node_id
        self._transcript = reply_transcript(frame, self._version, eph, self._nonce, node_id)
        self._master = self._derive_master(hello.ephemeral_key)
        signature = self.identity.sign(self._transcript)
        mac = reply_mac(self._master, self._transcript, signature)
        reply = self._send(Reply(self._version, eph, self._nonce, node_id, signature, mac))
        self._transcript = replied_transcript(self._transcript, signature, mac)
        self._expecting = Finish
        if self._reply_cache is not None:
            self._cache_key = self._reply_cache.key(frame)
            cached = CachedReply(
                self._now, reply, self._secret, self._version, self._transcript,
                self._master, self._ephemeral,
            )  # fmt: skip
            self._reply_cache.put(self._cache_key, cached)

    def _answer_from_cache(self, hello_frame: bytes) -> bool:
        """A replayed hello: send the cached reply, restore what finishing needs."""
        if self._reply_cache is None:
            return False
        key = self._reply_cache.key(hello_frame)
        cached = self._reply_cache.get(key, self._now)
        if cached is None or cached.secret not in self.secrets:
            return False  # (a secret rotated out since: answered afresh, or refused)
        self._outgoing += encode_frame(cached.reply, HANDSHAKE_FRAME_BYTES_MAX)
        self._cache_key = key
        self._secret, self._version = cached.secret, cached.version
        self._transcript, self._master = cached.transcript, cached.master
        self._ephemeral = cached.ephemeral
        self._expecting = Finish
        return True

    def _on_finish(self, finish: Finish) -> None:
        if not self._master:
            raise HandshakeError("a replayed hello: that handshake finished already")
        signed = finish_transcript(self._transcript, finish.node_id)
        expected = finish_mac(self._master, signed, finish.signature)
        if not hmac.compare_digest(expected, finish.mac):
            raise HandshakeError(
                "handshake MAC mismatch: a replayed or tampered handshake, "
                "or a peer without our cluster secret"
            )
        self._check_identity(finish.node_id, finish.signature, signed)
        self._peer_id = finish.node_id
        if self._reply_cache is not None:
            self._reply_cache.finished(self._cache_key)
        self._complete(final_transcript(signed, finish.signature, finish.mac))
