"""What every process pays when it starts (web workers, Celery workers, each `manage.py` command)."""

import os
import subprocess
import sys
from pathlib import Path


def test_starting_the_application_does_not_import_the_chart_library():
    """matplotlib was half a second of every process's start-up, imported through the URL conf for the reader
    quality charts that few processes ever draw; it is now imported at the first chart."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, django; django.setup(); import ctims.urls, ctims.celery; "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout[:500]
