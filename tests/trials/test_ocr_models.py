"""The server's OCR reads with the models the upload page's OCR gets (settings.OCR_MODELS_DIR, which the
front-end build fills); where they are missing it falls back to the system's, and `manage.py check` says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from trials.checks import ocr_models_check
from trials.deid import burned_in

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "static" / "dist" / "deid" / "ocr"


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No system models (neither $TESSDATA_PREFIX nor Debian's) and no engine made yet."""
    monkeypatch.setattr(burned_in, "_DEBIAN_TESSDATA", (str(tmp_path / "debian"),))
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    monkeypatch.setattr(burned_in, "_ENGINES", type(burned_in._ENGINES)())
    monkeypatch.setattr(burned_in, "_models_dir", burned_in._models_dir)
    return tmp_path


def _models(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for language in burned_in.LANGUAGES:
        shutil.copyfile(BUNDLE / f"{language}.traineddata", folder / f"{language}.traineddata")
    return folder


def test_the_server_reads_with_the_models_the_front_end_build_wrote_for_the_browser():
    assert settings.OCR_MODELS_DIR == BUNDLE
    assert burned_in.models_in_use() == ("bundle", str(BUNDLE))
    assert burned_in.tessdata_path() == str(BUNDLE)
    assert ocr_models_check(None) == []


def test_a_folder_named_in_the_settings_is_used_and_its_engine_made_for_it(nowhere):
    burned_in.use_models(_models(nowhere / "models"))
    assert burned_in.models_in_use() == ("bundle", str(nowhere / "models"))
    first = burned_in._api()
    assert burned_in._api() is first  # made once per thread
    burned_in.use_models(_models(nowhere / "other"))
    assert burned_in._api() is not first  # not the engine of the folder before


def test_without_the_browsers_models_the_system_ones_are_used_and_the_check_warns(nowhere, capsys):
    burned_in.use_models(nowhere / "not built")
    system = _models(nowhere / "debian")
    assert burned_in.models_in_use() == ("system", str(system))
    assert [w.id for w in ocr_models_check(None)] == ["trials.W001"]
    call_command("check")
    assert "trials.W001" in capsys.readouterr().err


def test_without_any_models_the_check_says_images_with_text_will_be_refused(nowhere):
    burned_in.use_models(nowhere / "not built")
    assert burned_in.models_in_use() == ("none", "")
    (warning,) = ocr_models_check(None)
    assert warning.id == "trials.W002" and "refused" in warning.msg
    with pytest.raises(burned_in.OcrUnavailable):
        burned_in.require_ocr()


def test_a_process_reading_with_the_system_models_says_so_in_its_log(nowhere, caplog):
    burned_in.use_models(nowhere / "not built")
    system = _models(nowhere / "debian")
    burned_in._api()
    assert [r.levelname for r in caplog.records if str(system) in r.getMessage()] == ["WARNING"]
