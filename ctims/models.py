"""People and the audit trail: the parts of CTIMS that know no trial internals."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who logs in with an email address."""

    username = None
    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]
    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self) -> None:
        """One spelling of each address, in lower case, held by one account whatever its case: a user ID is one
        person's (21 CFR 11.100(a)), and people and the log-in form do not tell "Rhea@" from "rhea@"."""
        super().clean()
        self.email = self.email.lower()
        if type(self).objects.filter(email__iexact=self.email).exclude(pk=self.pk).exists():
            raise ValidationError({"email": _("An account with this email exists already.")})

    def get_full_name(self) -> str:
        return self.full_name


class AuditEvent(models.Model):
    """One state change, append-only and hash-chained to the event before it."""

    seq = models.BigIntegerField(unique=True, editable=False)
    at = models.DateTimeField(editable=False, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=254, help_text="The actor's email at the time, or 'system'.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_label = models.CharField(max_length=200)
    trial_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    summary = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16, help_text="The id of the HMAC key the hash was made with.")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_label}"


class AuditHead(models.Model):
    """The single row holding the last sequence number and hash; locked while an event is appended."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


class Signature(models.Model):
    """A 21 CFR Part 11 electronic signature: who signed what, when, meaning what, over which content."""

    signer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="signatures")
    signer_name = models.CharField(max_length=200, help_text="The signer's printed name at the time of signing.")
    at = models.DateTimeField()
    meaning = models.CharField(max_length=200)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the signed content's canonical form.")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.signer_name}: {self.meaning}"
