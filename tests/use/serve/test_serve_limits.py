"""Every limit of `mlplab serve`, each on the live server: body size (declared and streamed),
pixels, undecodable and wrong-type bodies, concurrency. Nothing a client sends gets a 5xx."""

from __future__ import annotations

import io
import json
import select
import socket
import struct
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import MAX_BODY, MAX_PIXELS, drawn_digit, png_bytes, start_server


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def read_response(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = parse_response(data)[1].get("content-length")
            if length is not None and len(body) >= int(length):
                return data
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def raw_exchange(port: int, head: bytes, chunks=(), *, timeout: float = 20) -> tuple[int, dict[str, str], bytes, int]:
    """Send a request head, then body chunks until the server answers; returns status, headers, body, bytes sent."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, headers, body = parse_response(read_response(sock, deadline))
    return status, headers, body, sent


def chunked(data_size: int, piece: int = 64 * 1024):
    block = b"\x89PNG" + b"\0" * (piece - 4)
    for _ in range(data_size // piece):
        yield f"{piece:x}\r\n".encode() + block + b"\r\n"
        time.sleep(0.001)
    yield b"0\r\n\r\n"


def head(path: str, content_type: str, extra: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{extra}\r\n".encode()


def assert_error(status: int, body: bytes, expected: int, words: str = "") -> str:
    assert status == expected, (status, body)
    message = json.loads(body)["error"]
    assert isinstance(message, str) and "\n" not in message and words in message
    return message


# -- body size ---------------------------------------------------------------------------------

def test_declared_oversize_body_gets_413_before_any_of_it_is_sent(server):
    status, headers, body, _ = raw_exchange(server.port, head("/v1/predict", "image/png", f"Content-Length: {MAX_BODY + 1}\r\n"))
    assert_error(status, body, 413, f"over the limit of {MAX_BODY:,} bytes")
    assert headers.get("connection") == "close"
    response = httpx.post(server.url + "/v1/predict", content=b"\0" * (MAX_BODY + 10), headers={"Content-Type": "image/png"})
    assert response.status_code == 413  # the same through an ordinary client


def test_chunked_body_without_length_is_cut_off_at_the_limit(server):
    planned = 64 * MAX_BODY  # 16 MiB: the server must answer long before all of it is sent
    status, _, body, sent = raw_exchange(server.port, head("/v1/predict", "image/png", "Transfer-Encoding: chunked\r\n"),
                                         chunked(planned))
    assert_error(status, body, 413, "over the limit")
    assert sent < planned / 2, f"sent {sent:,} of {planned:,} bytes before the answer: the body was not cut off"


def test_chunked_upload_under_the_limit_is_served(server):
    data = png_bytes(drawn_digit("1"))
    pieces = [data[i : i + 500] for i in range(0, len(data), 500)]
    chunks = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]
    status, _, body, _ = raw_exchange(server.port, head("/v1/predict", "image/png", "Transfer-Encoding: chunked\r\n"), chunks)
    assert status == 200 and json.loads(body)[0]["class_name"] == "1"


def test_chunked_multipart_over_the_limit_is_cut_off(server):
    boundary = "b0undary"
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
             "Content-Type: image/png\r\n\r\n").encode()
    chunks = [f"{len(first):x}\r\n".encode() + first + b"\r\n", *chunked(8 * MAX_BODY)]
    status, _, body, _ = raw_exchange(
        server.port, head("/v1/predict", f"multipart/form-data; boundary={boundary}", "Transfer-Encoding: chunked\r\n"), chunks)
    assert_error(status, body, 413)


# -- pixels ------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A small file claiming a huge greyscale image: a few compressed rows, as a bomb starts."""
    rows = zlib.compress(b"\0" * ((width + 1) * 16), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b""))


def test_decompression_bomb_gets_413_before_decoding(server):
    bomb = bomb_png(50_000, 50_000)  # 2.5 gigapixels in under a kilobyte
    assert len(bomb) < 1024
    started = time.perf_counter()
    response = httpx.post(server.url + "/v1/predict", content=bomb, headers={"Content-Type": "image/png"})
    assert_error(response.status_code, response.content, 413, f"{MAX_PIXELS:,}")
    assert time.perf_counter() - started < 5
    files = [("image", ("ok.png", png_bytes(drawn_digit("1")), "image/png")), ("image", ("bomb.png", bomb, "image/png"))]
    response = httpx.post(server.url + "/v1/predict", files=files)
    assert_error(response.status_code, response.content, 413, "image 2 (bomb.png)")


def test_real_image_just_over_the_pixel_limit_gets_413_and_one_under_is_served(server):
    side = int(MAX_PIXELS ** 0.5)
    over = Image.new("L", (side + 2, side + 2), 255)
    response = httpx.post(server.url + "/v1/predict", content=png_bytes(over), headers={"Content-Type": "image/png"})
    assert_error(response.status_code, response.content, 413)
    under = drawn_digit("1", side - 2)
    response = httpx.post(server.url + "/v1/predict", content=png_bytes(under), headers={"Content-Type": "image/png"}, timeout=60)
    assert response.status_code == 200 and response.json()[0]["class_name"] == "1"


# -- undecodable and wrong-type bodies ---------------------------------------------------------

def test_truncated_png_gets_400(server):
    data = png_bytes(drawn_digit("0", 300))
    for cut in (len(data) // 2, 40, 8):
        response = httpx.post(server.url + "/v1/predict", content=data[:cut], headers={"Content-Type": "image/png"})
        assert_error(response.status_code, response.content, 400)


def animation(fmt: str) -> bytes:
    frames = [drawn_digit(k).convert("RGB") for k in ("1", "0")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("text/plain", b"a digit, honestly", 415),
    ("application/xml", b"<pixels/>", 415),
    ("", b"\x89PNG", 415),
    ("image/png", b"GIF89a this is not a png", 400),
    ("image/jpeg", b"\xff\xd8\xff\xe0 broken", 400),
    ("image/png", b"", 422),
    ("application/json", b"{\"pixels\": ", 400),
    ("application/json", b"\xff\xfe", 400),
    ("application/json", b"[1, 2, 3]", 422),
    ("application/json", json.dumps({"pixels": [[0] * 28] * 27}).encode(), 422),
    ("application/json", json.dumps({"pixels": [[256] * 28] * 28}).encode(), 422),
    ("application/json", json.dumps({"pixels": [[0] * 28] * 28, "extra": 1}).encode(), 422),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nno headers here", 400),
    ("multipart/form-data", b"no boundary", 400),
])
def test_wrong_type_and_undecodable_bodies_get_4xx_with_json_error(server, content_type, body, status):
    headers = {"Content-Type": content_type} if content_type else {}
    with httpx.Client() as client:
        request = client.build_request("POST", server.url + "/v1/predict", content=body, headers=headers)
        if not content_type:
            request.headers.pop("Content-Type", None)
        response = client.send(request)
    assert_error(response.status_code, response.content, status)


def test_too_many_images_in_one_request_get_413(server):
    tiny = png_bytes(drawn_digit("1", 28))
    files = [("image", (f"{i}.png", tiny, "image/png")) for i in range(server.settings.max_images + 1)]
    response = httpx.post(server.url + "/v1/predict", files=files)
    assert_error(response.status_code, response.content, 413, f"more than {server.settings.max_images} images")
    response = httpx.post(server.url + "/v1/predict", files=files[:-1], timeout=60)
    assert response.status_code == 200 and len(response.json()) == server.settings.max_images


def test_multipart_without_an_image_file_gets_422(server):
    response = httpx.post(server.url + "/v1/predict", data={"picture": "x"}, files={"other": ("a.png", b"x", "image/png")})
    assert_error(response.status_code, response.content, 422, "no 'image' field")
    response = httpx.post(server.url + "/v1/predict", data={"image": "just text"}, files={"x": ("a", b"", "text/plain")})
    assert_error(response.status_code, response.content, 422, "text, not a file")


def test_animated_zero_size_and_blank_images_are_refused(server):
    response = httpx.post(server.url + "/v1/predict", content=animation("PNG"), headers={"Content-Type": "image/png"})
    assert_error(response.status_code, response.content, 400, "frames")
    response = httpx.post(server.url + "/v1/predict", content=animation("GIF"), headers={"Content-Type": "image/gif"})
    assert response.status_code == 200 and response.json()[0]["class_name"] == "1"  # a GIF's first frame, as predict does
    response = httpx.post(server.url + "/v1/predict", content=bomb_png(0, 0), headers={"Content-Type": "image/png"})
    assert_error(response.status_code, response.content, 400)
    blank = png_bytes(Image.new("L", (100, 100), 255))
    response = httpx.post(server.url + "/v1/predict", content=blank, headers={"Content-Type": "image/png"})
    assert_error(response.status_code, response.content, 422, "blank")


# -- concurrency -------------------------------------------------------------------------------

def test_requests_over_max_concurrency_get_503_with_retry_after(digit_run):
    for live in start_server([digit_run], max_concurrency=2):
        stalled = []
        try:
            for _ in range(2):  # two requests whose body never finishes hold both slots
                sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
                sock.sendall(head("/v1/predict", "image/png", "Content-Length: 1000\r\n") + b"\x89PNG")
                stalled.append(sock)
            deadline = time.monotonic() + 10
            while (response := httpx.get(live.url + "/v1/models")).status_code != 503:
                assert time.monotonic() < deadline, "the third request was never refused"
                time.sleep(0.02)
            assert response.headers["retry-after"] == "1"
            assert_error(response.status_code, response.content, 503, "busy")
            assert httpx.get(live.url + "/livez").status_code == 200  # liveness is exempt
        finally:
            for sock in stalled:
                sock.close()
        deadline = time.monotonic() + 10
        while (response := httpx.get(live.url + "/v1/models")).status_code != 200:
            assert time.monotonic() < deadline, "slots were not given back after the clients went away"
            time.sleep(0.02)


def test_binds_loopback_unless_told():
    from mlplab.use.serve import ServeSettings

    assert ServeSettings().host == "127.0.0.1"
    with pytest.raises(ValueError, match="max_body_bytes must be a positive integer, got 0"):
        ServeSettings(max_body_bytes=0)
