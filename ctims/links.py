"""Absolute links in emails: SITE_URL and a path, never the Host header of whoever made the request."""

from __future__ import annotations

from django.conf import settings


def site_link(path: str) -> str:
    return settings.SITE_URL + path
