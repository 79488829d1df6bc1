"""The named date formats of every language (see ctims.formats)."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
# A moment is shown with its UTC offset (2026-12-07 22:15 +0900): a signature's or an audit event's time names
# its zone (21 CFR 11.50, 11.10(e)), and people in other zones read it without guessing.
DATETIME_FORMAT = "Y-m-d H:i O"
SHORT_DATETIME_FORMAT = "Y-m-d H:i O"
TIME_FORMAT = "H:i"
YEAR_MONTH_FORMAT = "Y-m"
MONTH_DAY_FORMAT = "m-d"
