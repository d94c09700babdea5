"""Encryption at rest: text is really encrypted on disk, keys are checked before data is touched, rotation."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.cases.helpers import CHILD_SAFETY, MODERATOR, Harness, make_harness
from tests.storage.builders import make_pair_key, make_pair_state, make_window_message
from vigil.bots.core.cases import CaseAction
from vigil.bots.core.ports import StoreError
from vigil.config.settings import ConfigError, EncryptionSettings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.crypto import CipherError, TextCipher, parse_key
from vigil.storage.sqlite import SqliteStore

KEY_1 = secrets.token_bytes(32)
KEY_2 = secrets.token_bytes(32)
SETTINGS = EncryptionSettings()


def key_text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def raw_bytes(database: str) -> bytes:
    path = Path(database)
    return b"".join(p.read_bytes() for p in (path, Path(f"{database}-wal")) if p.exists())


@pytest.fixture
async def encrypted_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "encrypted.sqlite3", cipher=TextCipher(key=KEY_1))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# ---------------------------------------------------------------------- the cipher


def test_values_are_versioned_random_and_bound_to_their_column_and_row() -> None:
    cipher = TextCipher(key=KEY_1)
    column, row = "window_messages.text", "m-1\x1fadult\x1fgeneral"
    first = cipher.encrypt("how old are you", column=column, row=row)
    second = cipher.encrypt("how old are you", column=column, row=row)

    assert first != second and first.startswith(f"v2:{cipher.key_id}:")
    assert "how old" not in first
    assert cipher.decrypt(first, column=column, row=row) == "how old are you"
    with pytest.raises(CipherError, match="failed authentication"):
        cipher.decrypt(first, column="records.value", row=row)
    with pytest.raises(CipherError, match="another row"):
        cipher.decrypt(first, column=column, row="m-2\x1fkid\x1fgeneral")
    with pytest.raises(CipherError, match="failed authentication"):
        cipher.decrypt(first[:-4] + "AAAA", column=column, row=row)
    with pytest.raises(CipherError, match="key id"):
        TextCipher(key=KEY_2).decrypt(first, column=column, row=row)
    with pytest.raises(CipherError, match="not encrypted"):
        cipher.decrypt("plain text", column=column, row=row)


def test_values_written_before_row_binding_still_decrypt() -> None:
    # A v1 value as 2026.11 wrote it: AES-GCM with the column name alone as associated data.
    nonce = bytes(range(12))
    sealed = AESGCM(KEY_1).encrypt(nonce, b"old text", b"window_messages.text")
    payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    cipher = TextCipher(key=KEY_1)
    old = f"v1:{cipher.key_id}:{payload}"
    assert cipher.decrypt(old, column="window_messages.text", row="anything") == "old text"
    assert TextCipher.is_encrypted(old) and not cipher.is_current(old)
    assert cipher.is_current(cipher.encrypt("new", column="c", row="r"))


def test_from_environment() -> None:
    assert TextCipher.from_environment(SETTINGS, {}) is None
    assert TextCipher.from_environment(SETTINGS, {"VIGIL_ENCRYPTION_KEY": "  "}) is None
    cipher = TextCipher.from_environment(
        SETTINGS,
        {
            "VIGIL_ENCRYPTION_KEY": key_text(KEY_2).rstrip("="),
            "VIGIL_ENCRYPTION_OLD_KEYS": f" {key_text(KEY_1)} ,",
        },
    )
    assert cipher is not None and cipher.key_id == TextCipher(key=KEY_2).key_id
    old_value = TextCipher(key=KEY_1).encrypt("x", column="c", row="r")
    assert cipher.decrypt(old_value, column="c", row="r") == "x"
    assert parse_key(key_text(KEY_1)) == KEY_1


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VIGIL_ENCRYPTION_KEY": "c2hvcnQ="}, "VIGIL_ENCRYPTION_KEY"),
        ({"VIGIL_ENCRYPTION_KEY": "not base64 at all!!"}, "VIGIL_ENCRYPTION_KEY"),
        (
            {"VIGIL_ENCRYPTION_KEY": key_text(KEY_1), "VIGIL_ENCRYPTION_OLD_KEYS": "bad"},
            "VIGIL_ENCRYPTION_OLD_KEYS",
        ),
        ({"VIGIL_ENCRYPTION_OLD_KEYS": key_text(KEY_1)}, "VIGIL_ENCRYPTION_KEY"),
    ],
)
def test_bad_keys_are_config_errors_that_never_echo_the_value(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        TextCipher.from_environment(SETTINGS, environ)
    message = str(raised.value)
    assert named in message
    for value in environ.values():
        if len(value) > 8:
            assert value not in message


# ---------------------------------------------------------------------- the store


async def test_text_is_really_encrypted_on_disk(
    encrypted_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    harness: Harness = make_harness(encrypted_store, keyword_detector)
    alert = await harness.raise_alert()
    number = alert.case_number
    await harness.monitor.handle(harness.message("adult", "zebrafinch secret", to="kid"))
    await harness.service.act(
        actor=MODERATOR, case_number=number, action=CaseAction.NOTE, reason="quokka note"
    )
    await harness.service.act(actor=MODERATOR, case_number=number, action=CaseAction.ESCALATE)
    await encrypted_store.put_record("slack.installations", "T1", "xoxb-wombat-token")
    transcript = await harness.service.transcript(actor=CHILD_SAFETY, case_number=number)
    assert "zebrafinch secret" in [m.text for m in transcript.messages]
    database = encrypted_store.database
    await encrypted_store.close()

    on_disk = raw_bytes(database)
    assert on_disk  # the test reads the real file
    for plain in (b"secret groom", b"zebrafinch", b"quokka", b"xoxb-wombat"):
        assert plain not in on_disk
    with sqlite3.connect(database) as connection:
        texts = [row[0] for row in connection.execute("SELECT text FROM window_messages")]
        details = [
            row[0] for row in connection.execute("SELECT detail FROM case_audit WHERE detail IS NOT NULL")
        ]
    assert texts and all(text.startswith("v2:") for text in texts)
    assert details and all(detail.startswith("v2:") for detail in details)
    await encrypted_store.open()
    assert await encrypted_store.get_record("slack.installations", "T1") == "xoxb-wombat-token"
    view = await harness.service.get(actor=MODERATOR, case_number=number)
    assert view.case is not None and view.case.audit[0].detail == "quokka note"


async def test_the_wrong_key_fails_before_anything_is_touched(tmp_path: Path) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database, cipher=TextCipher(key=KEY_1)) as store:
        await store.save_pair(make_pair_state())
        await store.append_window(make_pair_key(), make_window_message(1), keep=10)
    before = raw_bytes(str(database))

    with pytest.raises(StoreError, match="Wrong encryption key") as raised:
        await SqliteStore(database, cipher=TextCipher(key=KEY_2)).open()
    assert TextCipher(key=KEY_1).key_id in str(raised.value)
    with pytest.raises(StoreError, match="is encrypted, but no encryption key is set"):
        await SqliteStore(database).open()

    assert raw_bytes(str(database)) == before


async def test_a_key_on_a_plaintext_database_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        await store.save_pair(make_pair_state())

    with pytest.raises(StoreError, match="created without encryption"):
        await SqliteStore(database, cipher=TextCipher(key=KEY_1)).open()

    async with SqliteStore(database) as store:
        assert await store.load_pair(make_pair_key()) is not None


async def test_a_key_on_an_older_database_that_holds_text_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        await store.save_pair(make_pair_state())
        await store.append_window(make_pair_key(), make_window_message(1), keep=10)
    # As a database from before encryption existed: no marker yet.
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM meta")

    with pytest.raises(StoreError, match="already holds unencrypted text"):
        await SqliteStore(database, cipher=TextCipher(key=KEY_1)).open()


async def test_rotation_old_keys_keep_decrypting_new_writes_use_the_new_key(tmp_path: Path) -> None:
    database = tmp_path / "vigil.sqlite3"
    key = make_pair_key()
    async with SqliteStore(database, cipher=TextCipher(key=KEY_1)) as store:
        await store.save_pair(make_pair_state())
        await store.append_window(key, make_window_message(1), keep=10)
    rotated = TextCipher(key=KEY_2, old_keys=[KEY_1])

    async with SqliteStore(database, cipher=rotated) as store:
        await store.append_window(key, make_window_message(2), keep=10)
        assert await store.load_window(key) == [make_window_message(1), make_window_message(2)]

    with sqlite3.connect(database) as connection:
        texts = [row[0] for row in connection.execute("SELECT text FROM window_messages ORDER BY seq")]
    assert TextCipher.key_id_of(texts[0]) == TextCipher(key=KEY_1).key_id
    assert TextCipher.key_id_of(texts[1]) == rotated.key_id
    # Retiring the old key too early: the database opens (the key check follows the current key), and the
    # old text fails with an error naming the missing key, never silently.
    async with SqliteStore(database, cipher=TextCipher(key=KEY_2)) as store:
        with pytest.raises(StoreError, match=TextCipher(key=KEY_1).key_id):
            await store.load_window(key)


async def test_swapping_two_rows_ciphertexts_is_detected_not_misattributed(
    encrypted_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    # The report's reproduction: with write access to the file, swap the adult's and the child's texts so
    # that the evidence attributes the adult's words to the child. Every such read must now fail.
    harness: Harness = make_harness(encrypted_store, keyword_detector)
    alert = await harness.raise_alert()
    database = encrypted_store.database
    await encrypted_store.close()
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT seq, author_id, text FROM window_messages ORDER BY seq").fetchall()
        adult = next(row for row in rows if row[1] == "adult")
        kid = next(row for row in rows if row[1] == "kid")
        connection.execute("UPDATE window_messages SET text = ? WHERE seq = ?", (kid[2], adult[0]))
        connection.execute("UPDATE window_messages SET text = ? WHERE seq = ?", (adult[2], kid[0]))
        # The same inside the alert's evidence excerpts.
        evidence = json.loads(connection.execute("SELECT evidence FROM alerts").fetchone()[0])
        assert len(evidence) >= 2
        evidence[0]["text"], evidence[1]["text"] = evidence[1]["text"], evidence[0]["text"]
        connection.execute("UPDATE alerts SET evidence = ?", (json.dumps(evidence),))
    await encrypted_store.open()
    with pytest.raises(StoreError, match="another row"):
        await encrypted_store.load_window(alert.key)
    with pytest.raises(StoreError, match="another row"):
        await encrypted_store.get_alert(alert.alert_id)
