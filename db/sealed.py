"""Credentials at rest, sealed with AES-GCM under ``LULL_SECRET_KEY``.

A backup of the database must not hand over the accounts it serves: a Telegram auth key
(and any credential Lull stores later) is stored sealed. Keys carry ids so they rotate:
``LULL_SECRET_KEY`` is ``id:base64key[,id:base64key...]``, the first one seals and every
one opens; `lull secrets rotate` re-seals what is stored under the first. The row a value
belongs to is bound in as associated data, so a sealed value copied to another row does
not open there.
"""

from __future__ import annotations

import base64
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"LS1"
NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class SecretKeyError(ValueError):
    """``LULL_SECRET_KEY`` is malformed, or a stored value cannot be opened with it."""


class SecretBox:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SecretKeyError("no keys")
        self._keys = dict(keys)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, raw: str) -> SecretBox:
        """``id:base64key[,id:base64key...]``, each key 32 bytes; the first one seals."""
        keys = []
        for part in raw.split(","):
            key_id, sep, encoded = part.strip().partition(":")
            if not sep or not KEY_ID.fullmatch(key_id):
                raise SecretKeyError(
                    "expected id:base64key[,id:base64key...] (ids of letters, digits, - or _)"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise SecretKeyError(f"key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise SecretKeyError(f"key {key_id!r} must be 32 bytes, not {len(key)}")
            keys.append((key_id, key))
        return cls(keys)

    @staticmethod
    def new_key_setting(key_id: str = "k1") -> str:
        """A fresh ``id:base64key`` value for LULL_SECRET_KEY."""
        return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self.current.encode()
        sealed = AESGCM(self._keys[self.current]).encrypt(nonce, plaintext, context.encode())
        return MAGIC + bytes([len(key_id)]) + key_id + nonce + sealed

    def open(self, stored: bytes, *, context: str) -> bytes:
        """The plaintext of a sealed value. A value stored before sealing existed (no
        marker) is returned as it is; the next save seals it."""
        if not is_sealed(stored):
            return stored
        size = stored[len(MAGIC)]
        start = len(MAGIC) + 1
        key_id = stored[start : start + size].decode()
        nonce = stored[start + size : start + size + NONCE_BYTES]
        body = stored[start + size + NONCE_BYTES :]
        key = self._keys.get(key_id)
        if key is None:
            raise SecretKeyError(
                f"a stored credential is sealed with key {key_id!r}, which LULL_SECRET_KEY "
                "does not hold (add it after the current key until `lull secrets rotate` ran)"
            )
        try:
            return AESGCM(key).decrypt(nonce, body, context.encode())
        except InvalidTag:
            raise SecretKeyError(
                f"a stored credential does not open with key {key_id!r} (wrong key or row)"
            ) from None

    def sealed_with_current(self, stored: bytes) -> bool:
        if not is_sealed(stored):
            return False
        size = stored[len(MAGIC)]
        return stored[len(MAGIC) + 1 : len(MAGIC) + 1 + size].decode() == self.current


def is_sealed(stored: bytes) -> bool:
    return stored.startswith(MAGIC) and len(stored) > len(MAGIC) + 1 + NONCE_BYTES
