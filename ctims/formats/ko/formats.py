"""Korean: the ISO dates of ctims.formats (the order Korean itself writes dates in: year, month, day)."""

from ctims.formats.iso import *  # noqa: F403
