"""Two-factor sign-in with django-otp: a TOTP authenticator app, and single-use recovery codes.

Who must use it is not ctims' business: the apps that hold roles register a policy (trials does, from each
trial's `two_factor_roles`), and operators (staff) always must. A person who must and has no device enrols at
their first log-in; afterwards every log-in asks for a code. Machine clients with a trial token are not
asked: their token was issued from a verified session and is narrowed to one trial and role.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .exceptions import ValidationFailed
from .models import User

# Each policy says whether a person must sign in with a second factor (registered in AppConfig.ready).
POLICIES: list[Callable[[User], bool]] = []

AUTHENTICATOR = "authenticator"
RECOVERY = "recovery codes"


def required_for(user: User) -> bool:
    """Whether `user` must verify a one-time code after their password: operators, or any registered policy."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_staff or any(policy(user) for policy in POLICIES)


def authenticator(user: User) -> TOTPDevice | None:
    """The person's confirmed authenticator app, if they enrolled one."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def authenticator_ensure(user: User) -> TOTPDevice:
    """The person's authenticator, made (confirmed, with a fresh secret) if they have none: for demo accounts,
    whose secrets `load_demo` prints so that the demo can be walked with any authenticator app."""
    return authenticator(user) or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=True)


def code_now(device: TOTPDevice) -> str:
    """The code an app with the device's secret shows now."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def enrolment_device(user: User) -> TOTPDevice:
    """The authenticator being set up: an unconfirmed device with a fresh secret, kept until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)


def secret_text(device: TOTPDevice) -> str:
    """The device's secret in base32, in groups of four: what a person types into an app without a camera."""
    from base64 import b32encode

    text = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def qr_svg_data_uri(device: TOTPDevice) -> str:
    """The device's otpauth:// link as a QR code, an SVG data URI (segno: pure Python, no image library)."""
    import segno

    return segno.make(device.config_url, error="m").svg_data_uri(scale=4, dark="#111")


def recovery_codes_new(user: User) -> list[str]:
    """Replace the person's recovery codes with fresh ones, each good once; returned once, stored as entered."""
    device, _created = StaticDevice.objects.get_or_create(user=user, name=RECOVERY, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(settings.TWO_FACTOR_RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def recovery_codes_renew(*, user: User) -> list[str]:
    """New recovery codes asked for by the person (the old ones stop working), audited without the codes."""
    with transaction.atomic():
        codes = recovery_codes_new(user)
        audit_record(
            actor=user,
            action="two_factor.recovery_codes_new",
            obj=user,
            summary={"email": user.email, "codes": len(codes)},
        )
    return codes


def enrol_confirm(*, request, code: str) -> list[str]:
    """Confirm the authenticator being set up with a code it shows: the session is verified, and the person gets
    their recovery codes (returned once). A wrong code changes nothing."""
    user = request.user
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None or not device.verify_token(_normal(code)):
        raise ValidationFailed(
            _("That code is not the one your app shows now. Check the app's clock and try the next code."),
            fields={"code": [_("Not the current code.")]},
        )
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = recovery_codes_new(user)
        audit_record(actor=user, action="two_factor.enrol", obj=user, summary={"email": user.email})
    otp_login(request, device)
    return codes


def verify(*, request, code: str) -> None:
    """Verify the session with a code from the app or a recovery code (used up); refused otherwise.

    django-otp throttles each device after failures (growing delays), so codes cannot be guessed in bulk.
    """
    user = request.user
    device = match_token(user, _normal(code))
    if device is None:
        from .account_events import login_fail_record

        login_fail_record(actor=user, email=user.email, request=request, reason="one-time code")
        raise ValidationFailed(
            _("That code is not correct, or was already used. Wait for the next code and try again."),
            fields={"code": [_("Not a valid code.")]},
        )
    if isinstance(device, StaticDevice):
        audit_record(
            actor=user,
            action="two_factor.recovery_code_used",
            obj=user,
            summary={"email": user.email, "left": device.token_set.count()},
        )
    otp_login(request, device)


def code_matches(user: User, code: str) -> bool:
    """Whether `code` is a valid one-time code of the person right now (a recovery code is used up)."""
    return bool(code) and match_token(user, _normal(code)) is not None


def _normal(code: str) -> str:
    """A code as typed, without spaces; recovery codes are lower case."""
    return "".join((code or "").split()).lower()
