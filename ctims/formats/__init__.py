"""One date policy for every language: ISO 8601 (2026-12-06 02:27 +0900), 24-hour clock, in the trial's time zone,
which a moment's offset states.

Django's own English formats read "12/06/2026 2:27 a.m." (US order) and its Korean ones mix orders; a trial runs
across countries and its people compare dates with the DICOM and CSV files, which are ISO. The named formats
(DATE_FORMAT, SHORT_DATETIME_FORMAT, ...) are what templates use, so changing them here changes every page.
"""
