"""STOW-RS bodies: multipart/related read in one linear pass, as senders really write it, bounded in size and time."""

from __future__ import annotations

import io
import socket

import pytest
from django.urls import reverse

from trials.dicomweb import stow
from trials.dicomweb.multipart import (
    BodyTimeout,
    BodyTooLarge,
    BoundedBody,
    MultipartError,
    MultipartReader,
)
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, UploadItem

BOUNDARY = "b0undary-7f3e"


def body(
    parts: list[bytes], *, nl: bytes = b"\r\n", padding: bytes = b"", preamble: bytes = b"", epilogue=b""
) -> bytes:
    out = [preamble]
    for part in parts:
        out.append(b"--" + BOUNDARY.encode() + padding + nl + b"Content-Type: application/dicom" + nl + nl + part + nl)
    out.append(b"--" + BOUNDARY.encode() + b"--" + padding + nl + epilogue)
    return b"".join(out)


def parse(data: bytes, *, chunk: int = 1 << 20, max_part: int = 1 << 30, **kwargs) -> list[tuple[dict, bytes]]:
    reader = MultipartReader(io.BytesIO(data), BOUNDARY, max_part=max_part, chunk=chunk, **kwargs)
    out = []
    for part in reader:
        out.append((part.headers, part.read()))
        part.close()
    return out


PAYLOADS = [
    b"first\r\nwith a line break",
    b"",
    b"--b0undary-7f3 near miss\r\n--b0undary-7f3 and --b0undary-7f3e inside a line",
    b"\r",
]


# -- what the reader accepts --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 17, 1 << 20])
def test_parts_are_read_whole_whatever_the_read_size(chunk):
    parts = parse(body(PAYLOADS), chunk=chunk)
    assert [content for _headers, content in parts] == PAYLOADS
    assert parts[0][0] == {"content-type": "application/dicom"}


def test_lf_only_line_breaks_are_accepted():
    assert [c for _h, c in parse(body(PAYLOADS[:1] + [b"two\nlines"], nl=b"\n"))] == [PAYLOADS[0], b"two\nlines"]


def test_transport_padding_after_a_boundary_is_accepted():
    assert [c for _h, c in parse(body([b"a", b"b"], padding=b" \t  "))] == [b"a", b"b"]


def test_a_preamble_and_an_epilogue_are_ignored():
    data = body([b"a"], preamble=b"This is a multi-part message.\r\n--not-the-boundary\r\n", epilogue=b"bye\r\n")
    assert [c for _h, c in parse(data)] == [b"a"]


def test_a_part_without_headers_is_taken_as_the_requests_type():
    data = b"--" + BOUNDARY.encode() + b"\r\n\r\nDICM?\r\n--" + BOUNDARY.encode() + b"--\r\n"
    reader = MultipartReader(io.BytesIO(data), BOUNDARY, max_part=100)
    [part] = list(reader)
    assert part.headers == {} and part.content_type == "application/dicom" and part.read() == b"DICM?"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"garbage without any delimiter", "no part delimiter"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\nab", "middle of a part"),
        (
            b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\nab\r\n--" + BOUNDARY.encode(),
            "closing",
        ),
        (b"--" + BOUNDARY.encode() + b"X\r\n\r\nab\r\n--" + BOUNDARY.encode() + b"--", "line break"),
        (b"--" + BOUNDARY.encode() + b"\r\nno colon here\r\n\r\nab", "colon"),
    ],
)
def test_a_malformed_body_is_an_error_that_says_what(data, message):
    with pytest.raises(MultipartError, match=message):
        parse(data)


def test_a_part_larger_than_the_largest_file_is_refused():
    with pytest.raises(MultipartError, match="larger than the largest file"):
        parse(body([b"x" * 5000]), chunk=512, max_part=4096)


def test_a_large_part_is_spooled_to_disk_not_held_in_memory():
    reader = MultipartReader(io.BytesIO(body([b"y" * 300_000])), BOUNDARY, max_part=1 << 20, spool_memory=64 * 1024)
    [part] = list(reader)
    assert part.file._rolled and part.size == 300_000 and part.read() == b"y" * 300_000


# -- linear work, counted rather than timed -----------------------------------------------------------------


def adversarial(size: int) -> bytes:
    """Parts full of near-delimiters (a line break, the dashes and all but the last byte of the boundary)."""
    near = b"\r\n--" + BOUNDARY.encode()[:-1] + b"_"
    part = near * (64 * 1024 // len(near))
    return body([part] * (size // len(part)))


@pytest.mark.parametrize("make", [adversarial, lambda size: body([b"\0" * size])], ids=["many parts", "one part"])
def test_the_work_grows_linearly_with_the_body(make):
    searched = {}
    for mib in (1, 2, 4, 8):
        data = make(mib << 20)
        reader = MultipartReader(io.BytesIO(data), BOUNDARY, max_part=1 << 30, chunk=64 * 1024)
        for part in reader:
            part.close()
        # Every byte searched at most about twice: the kept tail is shorter than one delimiter.
        assert reader.counters.searched_bytes <= 2 * len(data) + 1024, (mib, reader.counters)
        assert reader.counters.read_bytes == len(data)
        searched[mib] = reader.counters.searched_bytes / len(data)
    # Work per byte does not grow with the body (a quadratic parser's doubles with each doubling).
    assert searched[8] <= searched[1] * 1.05, searched


# -- the body's bounds -----------------------------------------------------------------------------------------


def test_a_body_longer_than_the_limit_is_cut_off():
    bounded = BoundedBody(io.BytesIO(b"x" * 100), max_bytes=64)
    with pytest.raises(BodyTooLarge):
        while bounded.read(16):
            pass


def test_a_request_past_its_deadline_is_cut_off():
    now = [0.0]
    bounded = BoundedBody(io.BytesIO(b"x" * 100), max_bytes=1000, deadline=5.0, clock=lambda: now[0])
    assert bounded.read(10) == b"x" * 10
    now[0] = 6.0
    with pytest.raises(BodyTimeout):
        bounded.read(10)


def test_a_read_the_socket_timed_out_is_a_body_timeout():
    class Stalled:
        def read(self, size):
            raise TimeoutError("timed out")

    with pytest.raises(BodyTimeout, match="stopped arriving"):
        BoundedBody(Stalled(), max_bytes=10).read(1)


# -- through the STOW endpoint ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=3, seed="stow-multipart")


def open_upload(api, user) -> int:
    return api.as_(user).post(reverse("api-upload-open", args=["ALPHA", "ALPHA-SEO-001", "BL"])).json()["id"]


def post(api, user, upload_id, data: bytes, **extra):
    return api.as_(user).generic(
        "POST",
        reverse("stow-upload", args=["ALPHA", upload_id]),
        data,
        content_type=f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"',
        HTTP_ACCEPT="application/dicom+json",
        **extra,
    )


with_stores = pytest.mark.usefixtures("stores", "on_commit_now")


@with_stores
def test_a_chunked_body_ended_by_the_server_is_stored(world, api, series):
    upload_id = open_upload(api, world.cora)
    data = body(series)
    # As gunicorn hands over a chunked request: no Content-Length, the input ends where the body ends.
    response = post(
        api,
        world.cora,
        upload_id,
        b"",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 3 and Instance.objects.count() == 3


@with_stores
def test_a_chunked_body_the_server_cannot_end_is_refused_with_411(world, api, series):
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, b"", CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411 and UploadItem.objects.count() == 0


@with_stores
def test_lf_line_breaks_padding_and_a_preamble_are_stored(world, api, series):
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, body(series, nl=b"\n", padding=b"  ", preamble=b"preamble\n"))
    assert response.status_code == 200, response.content
    assert Instance.objects.count() == 3


@with_stores
def test_a_non_dicom_part_after_a_good_one_is_a_failed_instance_not_dropped(world, api, series):
    upload_id = open_upload(api, world.cora)
    data = body([series[0]]).replace(
        b"--" + BOUNDARY.encode() + b"--",
        b"--"
        + BOUNDARY.encode()
        + b"\r\nContent-Type: text/plain\r\n\r\nscanner notes\r\n--"
        + BOUNDARY.encode()
        + b"--",
    )
    response = post(api, world.cora, upload_id, data)
    assert response.status_code == 202, response.content
    failed = response.json()["00081198"]["Value"]
    assert failed == [{"00081197": {"vr": "US", "Value": [0xC000]}}]
    assert "part 2 is text/plain, not application/dicom" in response["Warning"]
    assert len(response.json()["00081199"]["Value"]) == 1 and UploadItem.objects.count() == 1


@with_stores
def test_only_non_dicom_parts_answer_409(world, api):
    upload_id = open_upload(api, world.cora)
    data = (
        b"--"
        + BOUNDARY.encode()
        + b"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--"
        + BOUNDARY.encode()
        + b"--"
    )
    response = post(api, world.cora, upload_id, data)
    assert response.status_code == 409 and len(response.json()["00081198"]["Value"]) == 1


@with_stores
def test_parts_past_the_most_a_request_may_carry_are_not_read(world, api, series, monkeypatch):
    """Found with 20,000 parts of a few bytes in one 700 KB request: 88 s of a web worker, 20,000 rejected
    files in the upload's status and a Warning header line per part. The parts past MAX_PARTS are not read;
    what came before stands, the answer says 202 (not everything was stored) and why, and the client sends
    the files not acknowledged again."""
    monkeypatch.setattr(stow, "MAX_PARTS", 2)
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, body([*series, b"not dicom"] * 3))
    assert response.status_code == 202, response.content
    assert len(response.json()["00081199"]["Value"]) == 2 and UploadItem.objects.count() == 2
    assert "more than 2 parts" in response["Warning"] and len(response["Warning"]) < 300
    monkeypatch.setattr(stow, "MAX_PARTS", 100)
    response = post(
        api,
        world.cora,
        upload_id,
        body([series[0], *[b"notes"] * 50]).replace(b"dicom\r\n\r\nnotes", b"plain\r\n\r\nnotes"),
    )
    assert len(response.json()["00081198"]["Value"]) == 50
    assert "40 more part(s) are not application/dicom" in response["Warning"] and len(response["Warning"]) < 1000
    response = post(api, world.cora, upload_id, body(series[2:]))
    assert response.status_code == 200 and Instance.objects.count() == 3


@with_stores
def test_a_request_stated_or_found_larger_than_the_limit_is_413(world, api, series, monkeypatch):
    monkeypatch.setattr(stow, "MAX_REQUEST_BYTES", 4096)
    upload_id = open_upload(api, world.cora)
    assert post(api, world.cora, upload_id, body(series)).status_code == 413
    chunked = post(
        api,
        world.cora,
        upload_id,
        b"",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body(series)), "wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413 and UploadItem.objects.count() == 0


# -- a live server and a raw socket -----------------------------------------------------------------------------


@pytest.fixture
def live_upload(transactional_db, stores, live_server):
    from tests.conftest import build_world
    from trials import services
    from trials.ingest.services import upload_open
    from trials.models import Membership, Role, Timepoint

    world = build_world()
    membership = Membership.objects.get(user=world.cora, trial=world.trial, role=Role.SITE_COORDINATOR)
    _, key = services.api_token_create(actor=world.cora, membership=membership, name="stow-socket")
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    return live_server, key, reverse("stow-upload", args=["ALPHA", upload.pk])


def raw_request(live_upload, content_length: int, sent_body: bytes, *, wait: float = 60.0) -> bytes:
    """Send a STOW request's head stating `content_length` and then `sent_body` (all of it or a start), and wait
    (up to `wait` seconds) for the head of the server's answer."""
    live_server, key, path = live_upload
    host, port = live_server.thread.host, live_server.thread.port
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f'Content-Type: multipart/related; type="application/dicom"; boundary={BOUNDARY}\r\n'
        f"Content-Length: {content_length}\r\nAccept: application/dicom+json\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(head + sent_body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


def test_an_overstated_content_length_frees_the_worker_with_408(live_upload, monkeypatch, series):
    monkeypatch.setattr(stow, "READ_TIMEOUT_SECONDS", 1.0)
    sent = body(series[:1])[:2000]  # the start of a real body, then silence
    answer = raw_request(live_upload, 10 * 1024 * 1024, sent)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert UploadItem.objects.count() == 0


def test_a_whole_request_over_a_raw_socket_is_stored(live_upload, series):
    data = body(series, nl=b"\n")
    answer = raw_request(live_upload, len(data), data)
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 200 OK", b"HTTP/1.1 202 Accepted"), answer[:200]
    assert UploadItem.objects.count() == 3


@with_stores
def test_files_acknowledged_before_the_upload_refused_more_stand(world, api, series, monkeypatch):
    from ctims.exceptions import InvalidState

    calls = []

    def receive_then_close(*, upload, files, **kwargs):
        calls.append(len(files))
        if len(calls) > 1:
            raise InvalidState("closed")
        return original(upload=upload, files=files, **kwargs)

    original = stow.upload_receive
    monkeypatch.setattr(stow, "BATCH_SIZE", 1)
    monkeypatch.setattr(stow, "upload_receive", receive_then_close)
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, body(series))
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 1
    assert "1 file(s) not received" in response["Warning"]


@with_stores
def test_the_answers_retrieve_url_is_the_study_stored_into(world, api, series):
    """PS3.18 Table I.1-1: the Retrieve URL is where the study is available through a Studies Retrieve
    transaction (it named the upload's API resource, which is no DICOMweb resource); empty (Type 2) when
    the files went into several studies or none."""
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, body(series[:2]))
    study = Instance.objects.first().series.study.study_instance_uid
    url = f"http://testserver/dicomweb/trials/ALPHA/studies/{study}"
    assert response.json()["00081190"] == {"vr": "UR", "Value": [url]}
    assert api.as_(world.cora).get(f"{url}/metadata").status_code == 200
    nothing = post(api, world.cora, upload_id, body([b"not dicom"]).replace(b"dicom\r\n\r\nnot", b"plain\r\n\r\nnot"))
    assert nothing.json()["00081190"] == {"vr": "UR"}


@with_stores
def test_a_file_the_server_rejects_is_named_by_its_part_in_the_warning(world, api, series):
    """Processed as the request commits (an in-process worker), a file is rejected by the time the answer is
    made though it was only waiting when the upload took it: the answer still names its part."""
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_id, body([series[0], b"not a DICOM file at all", series[1]]))
    assert response.status_code == 202, response.content
    assert len(response.json()["00081198"]["Value"]) == 1
    assert '"part 2 was rejected: not_dicom: ' in response["Warning"]
