"""A trial's pseudonym space: everything derived from the trial's secret key.

Two schemes. In the *subject* scheme (every trial created since browser de-identification) each subject has
its own key, HMAC(trial key, subject code), and that subject's UIDs, patient hash and date offset come from
it: the site's browser can then de-identify with the one subject's key, and the trial key never leaves the
server. In the *trial* scheme (trials that stored images before) the trial key maps every subject directly;
those trials keep it, so their pseudonyms never change.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_BYTES = 32

# Shifts move every date of a subject back by 1 to 10 years; the same shift for all of a subject's visits
# keeps the intervals RECIST needs exact.
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650

# Domain separation: UIDs are hashed bare (digits and dots only), so a prefixed message can never collide
# with a UID message.
_PATIENT_PREFIX = b"ctims:patient-id:"
_DATE_PREFIX = b"ctims:date-offset:"
_SUBJECT_KEY_PREFIX = b"ctims:subject-key:"
_KEY_CHECK_PREFIX = b"ctims:key-check:"

SCHEME_TRIAL = "trial"
SCHEME_SUBJECT = "subject"
SCHEMES = (SCHEME_TRIAL, SCHEME_SUBJECT)


def subject_key(trial_key: bytes, subject_code: str) -> bytes:
    """The subject's own 32-byte key: HMAC-SHA256(trial key, prefix + subject code).

    Knowing one subject's key tells nothing of the trial key or of another subject's key (HMAC is a PRF),
    so it is the only key the site's browser ever receives.
    """
    if not isinstance(trial_key, bytes | bytearray) or len(trial_key) != KEY_BYTES:
        raise ValueError(f"a pseudonym key is {KEY_BYTES} raw bytes")
    if not isinstance(subject_code, str) or not subject_code:
        raise ValueError("a subject key needs the subject's code")
    return hmac.new(bytes(trial_key), _SUBJECT_KEY_PREFIX + subject_code.encode("utf-8"), hashlib.sha256).digest()


class PseudonymSpace:
    """Keyed mappings of one trial: UIDs, patient hashes and date offsets. Two keys share nothing."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            # An exact length catches a hex or base64 text key passed where the raw key was meant, which
            # would silently give a second, unlinked pseudonym space for the same trial.
            raise ValueError(f"a pseudonym key is {KEY_BYTES} raw bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "PseudonymSpace(<key hidden>)"

    @classmethod
    def for_subject(cls, trial_key: bytes, subject_code: str, *, scheme: str = SCHEME_SUBJECT) -> PseudonymSpace:
        """The space a subject's images are mapped into under the trial's `scheme`."""
        if scheme == SCHEME_SUBJECT:
            return cls(subject_key(trial_key, subject_code))
        if scheme == SCHEME_TRIAL:
            return cls(trial_key)
        raise ValueError(f"unknown pseudonym scheme (one of {', '.join(SCHEMES)})")

    def _mac(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def uid(self, original_uid: str) -> str:
        """The pseudonymous UID of `original_uid`: ``2.25.`` and the first 16 bytes of its HMAC as an integer."""
        uid = original_uid.strip().rstrip("\x00").strip()
        return "2.25." + str(int.from_bytes(self._mac(uid.encode("ascii", "replace"))[:16], "big"))

    def patient_hash(self, patient_id: str) -> str:
        """A keyed digest of a source Patient ID, to match it to an enrolled subject without storing it."""
        return self._mac(_PATIENT_PREFIX + patient_id.strip().encode("utf-8")).hex()

    def date_offset_days(self, subject_code: str) -> int:
        """The subject's date shift in days, between -MAX_SHIFT_DAYS and -MIN_SHIFT_DAYS."""
        number = int.from_bytes(self._mac(_DATE_PREFIX + subject_code.encode("utf-8"))[:8], "big")
        return -(MIN_SHIFT_DAYS + number % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1))

    def key_check(self, sha256_hex: str) -> str:
        """A keyed tag of an output file's SHA-256: whoever holds this space's key made (or vouched for) it."""
        return self._mac(_KEY_CHECK_PREFIX + sha256_hex.encode("ascii")).hex()
