"""English: the ISO dates of ctims.formats (Django's own would read 12/06/2026 2:27 a.m.)."""

from ctims.formats.iso import *  # noqa: F403
