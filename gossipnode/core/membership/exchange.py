"""The push-pull exchange by difference: members that agree swap a few bytes per member,
not every signed statement again.

Rules:
1. The opener sends its own alive statement (so that a member that does not know it can
   answer it, and a joiner announces itself) and a summary of its table: a fresh random
   salt and, per member it holds, an 8-byte digest of what it believes of that member
   (node id, the alive statement it holds, incarnation, state), keyed by the salt so
   that nobody can prepare a statement whose digest matches another's.
2. The answer carries the statements (as a full state carries them) of every member whose
   digest the summary lacks, and `wanted`: the summary's digests the answerer does not
   hold. The opener sends the statements `wanted` names in a third message, and its digest
   roots there if it owes them (an opening to a seed's address carries none: sync.py
   rule 1); with neither, there is no third message.
3. Statements then apply by SWIM's rules like any push-pull's (an older one changes
   nothing), so members that differ on one member swap that member's statements, and a
   joiner, whose summary holds only itself, pulls the full member list at once.
4. A push-pull without a salt carries no summary (an introduction, or a peer's full
   state): it is answered with the full state.
"""

from __future__ import annotations

import hashlib
import random
import struct

from ..errors import RemoteProtocolError
from .members import Entry
from .messages import PushPull, Roots, Updates
from .state import MemberTable

__all__ = [
    "SUMMARY_DIGEST_BYTES",
    "SUMMARY_SALT_BYTES",
    "answer",
    "check_summary",
    "opening",
    "summary",
    "wanted_state",
]

# A push-pull summary: a random salt, and per member a digest keyed by it. 8 bytes: two
# different beliefs about members collide once in 2**64 (and then only cost the next
# exchange's repair), while a summary of 20 members is 160 bytes.
SUMMARY_SALT_BYTES = 8
SUMMARY_DIGEST_BYTES = 8


def check_summary(message: PushPull, members_max: int) -> None:
    """Raises RemoteProtocolError unless a push-pull's salt and digest lists are well formed:
    no salt and no digests, or a salt and at most `members_max` digests in each list."""
    if not all(isinstance(part, bytes) for part in (message.salt, message.have, message.wanted)):
        raise RemoteProtocolError("a push-pull summary is bytes")
    if not message.salt:
        if message.have or message.wanted:
            raise RemoteProtocolError("push-pull digests without a salt")
        return
    if len(message.salt) != SUMMARY_SALT_BYTES:
        raise RemoteProtocolError(f"a push-pull salt is {SUMMARY_SALT_BYTES} bytes")
    for name, digests in (("have", message.have), ("wanted", message.wanted)):
        if len(digests) % SUMMARY_DIGEST_BYTES or len(digests) > members_max * SUMMARY_DIGEST_BYTES:
            raise RemoteProtocolError(
                f"push-pull {name}: {len(digests)} bytes, not at most {members_max} digests of "
                f"{SUMMARY_DIGEST_BYTES} bytes"
            )


def _digest(salt: bytes, entry: Entry) -> bytes:
    # The alive statement's signature stands for its content: two statements of one
    # incarnation (a restart that lost its incarnation) differ.
    facts = struct.pack(">Q", entry.incarnation) + entry.state.encode()
    return hashlib.blake2b(
        entry.node_id + entry.alive.signature + facts,
        digest_size=SUMMARY_DIGEST_BYTES, key=salt,
    ).digest()


def _digests(packed: bytes) -> list[bytes]:
    return [packed[i:i + SUMMARY_DIGEST_BYTES] for i in range(0, len(packed), SUMMARY_DIGEST_BYTES)]


def summary(table: MemberTable, salt: bytes) -> dict[bytes, Entry]:
    """Digest -> entry, for every member in the table, ourselves included (rule 1)."""
    return {_digest(salt, entry): entry for entry in table.members.values()}


def opening(table: MemberTable, rng: random.Random, roots: Roots = ()) -> PushPull:
    """The first message of an exchange (rule 1), with our digest `roots` if owed."""
    salt = rng.getrandbits(8 * SUMMARY_SALT_BYTES).to_bytes(SUMMARY_SALT_BYTES, "big")
    own = Updates(alive=(table.local.alive,))
    return PushPull(True, own, roots, salt=salt, have=b"".join(summary(table, salt)))


def answer(table: MemberTable, message: PushPull, roots: Roots = ()) -> PushPull:
    """The answer to an opening (rule 2), or to a push-pull without a summary (rule 4),
    with our digest `roots` if owed."""
    if not message.salt:
        return PushPull(False, table.full_state(), roots)
    ours = summary(table, message.salt)
    theirs = dict.fromkeys(_digests(message.have))  # in the message's order: deterministic
    missing = [entry for digest, entry in ours.items() if digest not in theirs]
    wanted = b"".join(digest for digest in theirs if digest not in ours)
    return PushPull(False, table.full_state(missing), roots, salt=message.salt, wanted=wanted)


def wanted_state(table: MemberTable, message: PushPull, roots: Roots = ()) -> PushPull | None:
    """The third message: the statements an answer asked for and our digest `roots` if
    owed (rule 2), or None when there are neither."""
    chosen = []
    if message.wanted and message.salt:
        ours = summary(table, message.salt)
        chosen = [ours[digest] for digest in dict.fromkeys(_digests(message.wanted))
                  if digest in ours]
    if not chosen and not roots:
        return None
    return PushPull(False, table.full_state(chosen), roots, salt=message.salt)
