"""Compressed pixel data is decoded once at ingest, frame by frame, with the decoders that serve it: an image whose
pixels cannot be decoded is rejected with a reason the coordinator can act on (export it again), instead of being
stored, passing QC and failing only when a reader opens it weeks later."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage, generate_uid

from tests.conftest import upload_files
from trials.deid.errors import DeidRejected
from trials.ingest.decodable import check_decodable
from trials.models import Instance, UploadItem

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, about the damage it meets

# Compressed files of every kind of codec the server decodes: RLE, JPEG 2000, JPEG-LS, JPEG lossless and baseline,
# single- and multi-frame.
COMPRESSED = (
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-LL.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
)


def the_subjects(name: str, n: int = 0, damage=None) -> bytes:
    """A pydicom test file made the subject's (synthesize_ct_series's patient, UIDs of its own), its frames
    damaged by `damage(frames)` if given."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName, ds.PatientID = "HONG^GILDONG", "PID0001"
    uid = lambda part: generate_uid(entropy_srcs=["decodable", name, str(n), part])  # noqa: E731 - same each run
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("instance")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # a primary image: never decoded for OCR
    if ds.SOPClassUID == SecondaryCaptureImageStorage:  # the trial takes CT and MR
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    if damage is not None:
        count = int(getattr(ds, "NumberOfFrames", 1) or 1)
        frames = [bytearray(frame) for frame in generate_frames(ds.PixelData, number_of_frames=count)]
        damage(frames)
        ds.PixelData = encapsulate([bytes(frame) for frame in frames])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def last_frame_cut(frames: list[bytearray]) -> None:
    del frames[-1][len(frames[-1]) // 2 :]


def first_frame_zeroed(frames: list[bytearray]) -> None:
    frames[0][40:200] = bytes(160)


def rle_segment_misplaced(frames: list[bytearray]) -> None:
    second = int.from_bytes(frames[0][8:12], "little")
    frames[0][8:12] = (second - 20).to_bytes(4, "little")  # the RLE header puts the second segment too early


def frame_missing(frames: list[bytearray]) -> None:
    del frames[-1]


DAMAGED = {
    "RLE, a segment misplaced": ("MR_small_RLE.dcm", rle_segment_misplaced),
    "JPEG 2000, cut short": ("MR_small_jp2klossless.dcm", last_frame_cut),
    "JPEG 2000, its header zeroed": ("JPEG2000.dcm", first_frame_zeroed),
    "JPEG baseline colour, zeroed": ("SC_rgb_jpeg_dcmtk.dcm", first_frame_zeroed),
    "multi-frame RLE, the last frame cut": ("emri_small_RLE.dcm", last_frame_cut),
    "multi-frame JPEG 2000, the first frame zeroed": ("emri_small_jpeg_2k_lossless.dcm", first_frame_zeroed),
    "multi-frame JPEG 2000, a frame missing": ("emri_small_jpeg_2k_lossless.dcm", frame_missing),
}


@pytest.mark.parametrize("name", COMPRESSED)
def test_whole_compressed_images_decode(name):
    check_decodable(the_subjects(name), pydicom.dcmread(get_testdata_file(name)).file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_compressed_pixels_are_refused_with_a_reason_to_act_on(case):
    name, damage = DAMAGED[case]
    syntax = pydicom.dcmread(get_testdata_file(name)).file_meta.TransferSyntaxUID
    with pytest.raises(DeidRejected) as refused:
        check_decodable(the_subjects(name, damage=damage), syntax)
    assert refused.value.code == "pixels_undecodable"
    assert "export it again" in refused.value.reason
    assert "HONG" not in str(refused.value) and "plugin" not in refused.value.reason


def relabelled(name: str, syntax: str) -> bytes:
    """The subject's copy of `name` declaring another (encapsulated) transfer syntax for the same fragments."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = pydicom.dcmread(io.BytesIO(the_subjects(name, 7)))
    ds.file_meta.TransferSyntaxUID = syntax  # pydicom's save_as writes only syntaxes it knows
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, ds.file_meta)
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


@pytest.mark.parametrize(
    ("syntax", "named"),
    [
        ("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),  # known, no decoder here
        ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.110"),  # JPEG XL: newer than pydicom, named by its UID
        ("1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.8.1"),
    ],
)
def test_a_compression_no_decoder_here_reads_is_refused_by_name(syntax, named):
    """Neither the server nor the viewer (whose codecs are the same set) could show it to a reader."""
    with pytest.raises(DeidRejected) as refused:
        check_decodable(relabelled("MR_small_RLE.dcm", syntax), syntax)
    assert refused.value.code == "transfer_syntax_unsupported"
    assert f"({named})" in refused.value.reason and "JPEG 2000" in refused.value.reason


def a_larger_picture(frames: list[bytearray]) -> None:
    """Each frame replaced by a JPEG 2000 codestream of a blank 4000x4000 picture: a few hundred bytes that a
    decoder would expand to 32 MB (a hostile one declares 60000x60000 the same way)."""
    import numpy as np
    from openjpeg import encode

    blank = encode(np.zeros((4000, 4000), dtype=np.uint16), codec_format=0, compression_ratios=[1000])
    frames[:] = [bytearray(blank) for _ in frames]


def rle_runs_past_the_image(frames: list[bytearray]) -> None:
    """Each frame one RLE segment of replicate runs: 2 bytes each that pydicom's decoder writes out as 128 (a
    16 MB frame of them took 1.1 GB and 6 s to decode, for a 1x1 image, and was stored)."""
    import struct

    runs = b"\x81\x00" * 100_000
    frames[:] = [bytearray(struct.pack("<16L", 1, 64, *[0] * 14) + runs) for _ in frames]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("MR_small_jp2klossless.dcm", a_larger_picture),
        ("emri_small_jpeg_2k_lossless.dcm", a_larger_picture),
        ("MR_small_RLE.dcm", rle_runs_past_the_image),
        ("emri_small_RLE.dcm", rle_runs_past_the_image),
    ],
)
def test_a_frame_declaring_a_larger_picture_than_the_image_is_refused_before_it_is_decoded(monkeypatch, name, damage):
    """A decompression bomb: the codestream's own header says more rows and columns than the image's pixel
    module, so it is refused from the header, and no decoder ever allocates the picture."""
    import pydicom.pixels

    data = the_subjects(name, damage=damage)
    assert len(data) < 64 << 10 or damage is rle_runs_past_the_image
    monkeypatch.setattr(pydicom.pixels, "iter_pixels", None)  # would raise if called
    with pytest.raises(DeidRejected) as refused:
        check_decodable(data, pydicom.dcmread(get_testdata_file(name)).file_meta.TransferSyntaxUID)
    assert refused.value.code == "pixels_too_long"
    assert "export it again" in refused.value.reason


def test_a_jpeg_frame_declaring_more_components_than_the_image_is_refused_before_it_is_decoded(monkeypatch):
    """A colour JPEG frame inside an image that says one sample per pixel would decode to three times its size."""
    import pydicom.pixels

    colour = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    ds = pydicom.dcmread(io.BytesIO(the_subjects("SC_rgb_jpeg_dcmtk.dcm", 3)))
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    del ds.PlanarConfiguration
    ds.PixelData = colour.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer)
    monkeypatch.setattr(pydicom.pixels, "iter_pixels", None)
    with pytest.raises(DeidRejected) as refused:
        check_decodable(buffer.getvalue(), colour.file_meta.TransferSyntaxUID)
    assert refused.value.code == "pixels_too_long"


def test_uncompressed_pixels_are_not_decoded_again(monkeypatch):
    """Native pixel data is checked against the pixel module before de-identification (validate.py); only
    encapsulated data needs its decoder."""
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "iter_pixels", None)  # would raise if called
    check_decodable(the_subjects("MR_small.dcm"), "1.2.840.10008.1.2.1")


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_a_damaged_compressed_image_is_rejected_at_upload_and_the_rest_of_its_batch_stored(world):
    whole = [the_subjects(name, n) for n, name in enumerate(COMPRESSED)]
    damaged = {case: the_subjects(name, 100 + n, damage) for n, (case, (name, damage)) in enumerate(DAMAGED.items())}
    timepoint = upload_files(world.cora, "ALPHA-SEO-001", whole[:4] + list(damaged.values()) + whole[4:])

    assert Instance.objects.filter(series__study__timepoint=timepoint).count() == len(COMPRESSED)
    for case, data in damaged.items():
        item = UploadItem.objects.get(sha256=hashlib.sha256(data).hexdigest())
        assert (item.state, item.code) == ("rejected", "pixels_undecodable"), (case, item.state, item.reason)
        assert "cannot be decoded" in item.reason
    timepoint.refresh_from_db()
    assert timepoint.state == "uploaded"


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_an_image_in_a_compression_no_decoder_here_reads_is_rejected_at_upload(world):
    """JPEG XL is refused by the engine (pydicom does not know the syntax; the site's browser holds it back),
    H.264 by the server's decoding (pydicom knows it and has no decoder); before, the first was `unreadable`
    ('please resend it', which cannot help) and the second was stored."""
    unsupported = [relabelled("MR_small_RLE.dcm", s) for s in ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.102")]
    upload_files(world.cora, "ALPHA-SEO-001", [the_subjects("MR_small_RLE.dcm", 1), *unsupported])
    for data in unsupported:
        item = UploadItem.objects.get(sha256=hashlib.sha256(data).hexdigest())
        assert (item.state, item.code) == ("rejected", "transfer_syntax_unsupported"), item.reason
        assert "Please export it uncompressed" in item.reason
    assert Instance.objects.count() == 1


def test_a_transfer_syntax_not_written_as_a_uid_is_never_quoted():
    from tests.trials.deid.factories import SUBJECT, space
    from trials.deid import DeidOptions, deidentify

    with pytest.raises(DeidRejected) as refused:
        deidentify(
            relabelled("MR_small_RLE.dcm", "HONG^GILDONG"), space=space(), subject_code=SUBJECT, options=DeidOptions()
        )
    assert refused.value.code == "transfer_syntax_unsupported"
    assert "(?)" in refused.value.reason and "HONG" not in str(refused.value)


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_a_damaged_compressed_image_de_identified_in_the_browser_is_rejected_at_receipt(world, api):
    """The browser's engine cannot decode compressed pixels (no decoders in Pyodide), so it sends a primary
    image as it is; the server decodes it on receipt, as it does on the server path."""
    from tests.trials.test_browser_deid_api import in_browser, key_of, open_upload, stow_with_records
    from trials.models import Trial

    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    upload_id = open_upload(api, world.cora).json()["id"]
    files = [the_subjects("MR_small_RLE.dcm", 1), the_subjects("MR_small_RLE.dcm", 2, rle_segment_misplaced)]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), files)
    response = stow_with_records(api, world.cora, upload_id, records, outputs)

    assert response.status_code == 202, response.content
    states = {i.sha256: (i.state, i.code) for i in UploadItem.objects.filter(upload_id=upload_id)}
    assert states == {
        hashlib.sha256(outputs[0]).hexdigest(): ("accepted", ""),
        hashlib.sha256(outputs[1]).hexdigest(): ("rejected", "pixels_undecodable"),
    }
