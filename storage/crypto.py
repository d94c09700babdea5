"""Encryption at rest of the text Vigil keeps: AES-256-GCM per value, keys only from the environment.

A stored value looks like ``v2:<key id>:<base64url(nonce || ciphertext)>``. Each value gets a fresh random
96-bit nonce. The associated data is the column name and the row's identity (for message text: the message
id, its author and its channel), so a value copied into another column *or another row* does not decrypt:
nobody with write access to the database can make an evidence pack attribute one person's words to another.
Values written before 2026-12 (``v1:``) were bound to their column only; they still decrypt, and
``vigil rekey`` rewrites them (and values of old keys) as ``v2`` under the current key.
The key id (a hash of the key, which reveals nothing about it) says which key wrote a value, so old keys keep
decrypting after a rotation while new writes use the current key.

Make a key with::

    python -c "import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vigil.config.settings import ConfigError

if TYPE_CHECKING:
    from vigil.config.settings import EncryptionSettings

__all__ = ["CipherError", "TextCipher", "parse_key"]

logger = logging.getLogger(__name__)

_VERSION = "v2"
# Bound to the column only (written before 2026-12): read, never written.
_COLUMN_ONLY_VERSION = "v1"
_VERSIONS = (_VERSION, _COLUMN_ONLY_VERSION)
_KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_ID_CHARS = 8


class CipherError(Exception):
    """A value cannot be decrypted: unknown key id, wrong key, damaged or not an encrypted value."""


def parse_key(text: str) -> bytes:
    """A key from its urlsafe base64 text (padding optional); ``ValueError`` if it is not 32 bytes."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not urlsafe base64") from None
    if len(key) != _KEY_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes, expected {_KEY_BYTES}")
    return key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"vigil-key-id:" + key).hexdigest()[:_KEY_ID_CHARS]


class TextCipher:
    """Encrypts text with the current key; decrypts values written with the current or any old key."""

    __slots__ = ("_current", "_current_id", "_keys")

    def __init__(self, *, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        for candidate in (key, *old_keys):
            if len(candidate) != _KEY_BYTES:
                raise ValueError(f"an encryption key must be {_KEY_BYTES} bytes")
        self._current_id = _key_id(key)
        self._current = AESGCM(key)
        self._keys: dict[str, AESGCM] = {_key_id(old): AESGCM(old) for old in old_keys}
        self._keys[self._current_id] = self._current

    @classmethod
    def from_environment(cls, settings: EncryptionSettings, environ: Mapping[str, str]) -> TextCipher | None:
        """The cipher the environment configures, or None when ``settings.key_env`` is unset or empty.

        Raises ``ConfigError`` naming the variable (never its value) when a key is malformed.
        """
        current_text = environ.get(settings.key_env, "").strip()
        old_texts = [part for part in environ.get(settings.old_keys_env, "").split(",") if part.strip()]
        if not current_text:
            if old_texts:
                raise ConfigError(
                    [
                        f"{settings.old_keys_env} is set but {settings.key_env} is not: old keys only "
                        "decrypt during a rotation, a current key is needed to write"
                    ]
                )
            return None
        problems: list[str] = []
        try:
            key = parse_key(current_text)
        except ValueError as error:
            problems.append(f"environment variable {settings.key_env}: {error}; expected 32 random bytes")
        old_keys: list[bytes] = []
        for position, text in enumerate(old_texts, start=1):
            try:
                old_keys.append(parse_key(text))
            except ValueError as error:
                problems.append(f"environment variable {settings.old_keys_env}, key {position}: {error}")
        if problems:
            raise ConfigError(problems)
        cipher = cls(key=key, old_keys=old_keys)
        logger.debug("encryption at rest on (key id %s, %d old keys)", cipher.key_id, len(old_keys))
        return cipher

    @property
    def key_id(self) -> str:
        """The id of the key new values are written with."""
        return self._current_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.split(":", 1)[0] in _VERSIONS and value.count(":") >= 2

    @staticmethod
    def key_id_of(value: str) -> str | None:
        """The id of the key that wrote ``value``, or None when it is not an encrypted value."""
        parts = value.split(":", 2)
        return parts[1] if len(parts) == 3 and parts[0] in _VERSIONS else None

    def is_current(self, value: str) -> bool:
        """Written by the current key, bound to its row: nothing for ``vigil rekey`` to do."""
        parts = value.split(":", 2)
        return len(parts) == 3 and parts[0] == _VERSION and parts[1] == self._current_id

    def encrypt(self, text: str, *, column: str, row: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.encrypt(nonce, text.encode("utf-8"), _associated_data(column, row))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_VERSION}:{self._current_id}:{payload}"

    def decrypt(self, value: str, *, column: str, row: str) -> str:
        parts = value.split(":", 2)
        if len(parts) != 3 or parts[0] not in _VERSIONS:
            raise CipherError(f"a value in {column} is not encrypted (or in an unknown format)")
        version, key_id, payload = parts
        associated = _associated_data(column, row) if version == _VERSION else column.encode("utf-8")
        aead = self._keys.get(key_id)
        if aead is None:
            raise CipherError(
                f"a value in {column} was encrypted with key id {key_id}, which is not among the configured "
                f"keys ({', '.join(sorted(self._keys))}); add that key to the old keys"
            )
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated)
            return plain.decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise CipherError(
                f"a value in {column} failed authentication: damaged, or moved from another row or column"
            ) from None


def _associated_data(column: str, row: str) -> bytes:
    # NUL cannot occur in a column name, so no (column, row) pair reads as another.
    return column.encode("utf-8") + b"\x00" + row.encode("utf-8")
