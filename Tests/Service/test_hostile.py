"""A catalogue of hostile and odd requests, each with the status it must get, sent over real
sockets while a well-behaved client is served beside them."""
import io
import json
import socket
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from service import Server, parse_responses


def png(w, h, mode="RGB", bits=8, seed=0):
    rng = np.random.default_rng(seed)
    if bits == 16:
        a = rng.integers(0, 65535, (h, w), dtype=np.uint16)
        return cv2.imencode(".png", a)[1].tobytes()
    img = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def jpeg(w, h, **kw):
    b = io.BytesIO()
    img = Image.fromarray((np.random.default_rng(1).random((h, w, 3)) * 255).astype(np.uint8))
    if kw.pop("cmyk", False):
        img = img.convert("CMYK")
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png_header_only(w, h):
    """A tiny PNG whose header claims w x h (a decompression bomb's shape)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def jpeg_with_size(w, h):
    """A valid small JPEG with its SOF0 dimensions rewritten to w x h."""
    data = bytearray(jpeg(64, 64))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


GOOD = png(96, 64)
BIG_OK = png(320, 96)


def post(target, body, ctype="image/png", extra=b""):
    head = (f"POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n"
    return head + body


def form(parts, boundary="XyZ"):
    out = b""
    for name, data, filename in parts:
        fn = f'; filename="{filename}"' if filename else ""
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{fn}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def chunked(target, chunks, ctype="image/png"):
    return (f"POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks


P = "/v1/predict?outputs=segmentation"
CASES = [
    # --- request line and method
    ("get-health", b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
    ("unknown-method", b"BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 405),
    ("lowercase-method", b"get /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 405),
    ("put-on-predict", b"PUT /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405),
    ("delete-health", b"DELETE /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405),
    ("options-star", b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400),
    ("absolute-form-target", b"GET http://evil/healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400),
    ("no-host-1.1", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("http-1.0-no-host", b"GET /healthz HTTP/1.0\r\n\r\n", 200),
    ("bad-version", b"GET /healthz HTTP/7.1\r\nHost: t\r\n\r\n", 505),
    ("control-char-in-target", b"GET /heal\x01thz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("space-in-target", b"GET /heal thz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 405),
    ("tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 405),
    ("binary-garbage", bytes(range(256)) * 4, 405),
    ("empty-line-then-request", b"\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
    ("very-long-target", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431),
    # --- headers
    ("header-flood-count", b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", 431),
    ("header-flood-bytes", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 30000 + b"\r\n\r\n", 431),
    ("header-without-colon", b"GET /healthz HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", 400),
    ("header-space-before-colon", b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    ("nul-in-header", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
    # RFC 9112 5.2: obs-fold is rejected (a proxy that unfolds would see other headers than we do).
    ("obsolete-line-folding", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n", 400),
    ("obs-folded-transfer-encoding", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    ("bare-lf-head", b"GET /healthz HTTP/1.1\nHost: t\nConnection: close\n\n", 400),
    ("bare-lf-one-header", b"GET /healthz HTTP/1.1\r\nHost: t\nConnection: close\r\n\r\n", 400),
    ("cr-without-lf", b"GET /healthz HTTP/1.1\r\nHost: t\rX: y\r\nConnection: close\r\n\r\n", 400),
    ("host-userinfo", b"GET /healthz HTTP/1.1\r\nHost: a@b:c\r\nConnection: close\r\n\r\n", 400),
    ("host-bad-port", b"GET /healthz HTTP/1.1\r\nHost: a:8x\r\nConnection: close\r\n\r\n", 400),
    ("host-space", b"GET /healthz HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", 400),
    ("host-ipv6", b"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n", 200),
    ("host-empty", b"GET /healthz HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", 200),
    ("bad-expect", post(P, GOOD, extra=b"Expect: 200-ok\r\n"), 417),
    ("request-id-injection", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: a\"b<c>\r\nConnection: close\r\n\r\n", 200),
    # --- body framing
    ("no-length-post", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n\r\n", 411),
    ("zero-length", post(P, b""), 400),
    ("length-too-large", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ("length-overflow", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 999999999999999999999999\r\n\r\n", 400),
    ("negative-length", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: -5\r\n\r\n", 400),
    ("non-numeric-length", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: ten\r\n\r\n", 400),
    ("duplicate-length", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("length-and-chunked", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", 400),
    # Half the PNG by Content-Length (the rest arrives as garbage): its image data is cut short.
    # (A PNG cut only in its IEND decodes: decoding stops at the last row.)
    ("length-shorter-than-body", post(P, GOOD).replace(b"Content-Length: %d" % len(GOOD), b"Content-Length: %d" % (len(GOOD) // 2)), 422),
    ("bad-chunk-size", chunked(P, b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    ("huge-chunk-size", chunked(P, b"ffffffffffffffffff\r\nabc"), 400),
    ("chunk-over-limit", chunked(P, b"7fffffff\r\n" + b"a" * 1000), 413),
    ("chunked-valid-png", chunked(P, b"%x\r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 200),
    ("chunked-with-extension", chunked(P, b"%x;name=v\r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 200),
    ("chunked-trailers", chunked(P, b"%x\r\n" % len(GOOD) + GOOD + b"\r\n0\r\nX-T: 1\r\n\r\n"), 200),
    ("chunked-empty", chunked(P, b"0\r\n\r\n"), 415),
    ("chunk-size-then-garbage", chunked(P, b"%x zz\r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 400),
    ("chunk-size-trailing-space", chunked(P, b"%x \r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 400),
    ("chunk-ext-quoted", chunked(P, b'%x;a="b c";d\r\n' % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 200),
    ("chunk-ext-bad-value", chunked(P, b"%x;a=@\r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 400),
    ("chunk-data-no-crlf", chunked(P, b"%x\r\n" % len(GOOD) + GOOD + b"XY0\r\n\r\n"), 400),
    ("chunk-data-bare-lf", chunked(P, b"%x\r\n" % len(GOOD) + GOOD + b"\n0\r\n\r\n"), 400),
    ("chunk-line-bare-lf", chunked(P, b"%x\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"), 400),
    ("chunk-smuggled-request", chunked("/healthz", b"1\r\naXYGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n0\r\n\r\n"), 400),
    ("chunk-size-0x", chunked(P, b"0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"), 400),
    ("trailer-obs-fold", chunked(P, b"%x\r\n" % len(GOOD) + GOOD + b"\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"), 400),
    ("expect-malformed-chunk", chunked(P, b"zz\r\nabc\r\n0\r\n\r\n").replace(b"chunked\r\n", b"chunked\r\nExpect: 100-continue\r\n"), 400),
    ("te-gzip", b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    # --- routes and model names
    ("unknown-path", b"GET /admin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
    ("traversal-model", post("/v1/models/../../etc/passwd/predict", GOOD), 404),
    ("encoded-traversal-model", post("/v1/models/..%2F..%2Fetc%2Fpasswd/predict", GOOD), 404),
    ("dot-model", post("/v1/models/./predict", GOOD), 404),
    ("dotdot-model", post("/v1/models/../predict", GOOD), 404),
    ("nul-model", post("/v1/models/a%00b/predict", GOOD), 404),
    ("long-model", post("/v1/models/" + "m" * 3000 + "/predict", GOOD), 404),
    # Routing works on raw segments: an encoded "/" is part of a segment, never a separator.
    ("encoded-slash-predict", post("/v1%2Fpredict", GOOD), 404),
    ("encoded-slash-model-predict", post("/v1/models/default%2Fpredict", GOOD), 404),
    ("encoded-slash-v2-ready", b"GET /v2/models/default%2Fready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
    ("encoded-letters-route", b"GET /health%7A HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
    ("bad-percent-path", b"GET /healthz%zz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400),
    ("v2-traversal", b"GET /v2/models/..%2f..%2fsecret HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
    ("double-slash", b"GET //healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
    ("trailing-slash", b"GET /healthz/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
    ("query-on-health", b"GET /healthz?x=%zz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
    # --- content types
    ("text-plain", post(P, GOOD, "text/plain"), 415),
    ("json", post(P, b"{}", "application/json"), 415),
    ("no-content-type", b"POST " + P.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(GOOD) + GOOD, 415),
    ("gif-type", post(P, GOOD, "image/gif"), 415),
    ("png-type-gif-bytes", post(P, b"GIF89a" + b"\0" * 200), 415),
    ("png-type-text-bytes", post(P, b"hello world, not an image"), 415),
    ("jpeg-type-png-bytes", post(P, GOOD, "image/jpeg"), 200),
    ("content-type-params", post(P, GOOD, "image/png; charset=binary"), 200),
    ("content-type-case", post(P, GOOD, "IMAGE/PNG"), 200),
    # --- images
    ("png-bomb", post(P, png_header_only(100000, 100000)), 413),
    ("png-wide-bomb", post(P, png_header_only(2**31 - 1, 1)), 413),
    ("jpeg-bomb", post(P, jpeg_with_size(65000, 65000), "image/jpeg"), 413),
    ("png-1x1", post(P, png(1, 1)), 422),
    ("png-20000x1", post(P, png(20000, 1)), 422),
    ("png-1x20000", post(P, png(1, 20000)), 422),
    ("png-31x64", post(P, png(31, 64)), 422),
    ("png-32x32", post(P, png(32, 32)), 200),
    ("png-16bit", post(P, png(64, 48, bits=16)), 200),
    ("png-grey", post(P, png(64, 48, "L")), 200),
    ("png-palette", post(P, png(64, 48, "P")), 200),
    ("png-alpha", post(P, png(64, 48, "RGBA")), 200),
    ("png-grey-alpha", post(P, png(64, 48, "LA")), 200),
    ("png-1bit", post(P, png(64, 48, "1")), 200),
    ("png-truncated", post(P, BIG_OK[: len(BIG_OK) // 2]), 422),
    ("png-signature-only", post(P, b"\x89PNG\r\n\x1a\n"), 422),
    ("png-bad-crc", post(P, BIG_OK[:40] + bytes([BIG_OK[40] ^ 0xFF]) + BIG_OK[41:]), 422),
    ("png-zero-size", post(P, png_header_only(0, 10)), 422),
    ("jpeg-baseline", post(P, jpeg(64, 48), "image/jpeg"), 200),
    ("jpeg-progressive", post(P, jpeg(64, 48, progressive=True), "image/jpeg"), 200),
    ("jpeg-cmyk", post(P, jpeg(64, 48, cmyk=True), "image/jpeg"), 200),
    ("jpeg-grey", post(P, cv2.imencode(".jpg", np.full((48, 64), 120, np.uint8))[1].tobytes(), "image/jpeg"), 200),
    ("jpeg-truncated", post(P, jpeg(128, 96)[:300], "image/jpeg"), 422),
    ("jpeg-soi-only", post(P, b"\xff\xd8\xff", "image/jpeg"), 422),
    ("jpeg-tiny", post(P, jpeg(8, 8), "image/jpeg"), 422),
    # --- multipart
    ("form-ok", post(P, form([("image", GOOD, "f.png")]), "multipart/form-data; boundary=XyZ"), 200),
    ("form-quoted-boundary", post(P, form([("image", GOOD, "f.png")]), 'multipart/form-data; boundary="XyZ"'), 200),
    ("form-no-image", post(P, form([("file", GOOD, "f.png")]), "multipart/form-data; boundary=XyZ"), 422),
    ("form-two-images", post(P, form([("image", GOOD, "a.png"), ("image", GOOD, "b.png")]), "multipart/form-data; boundary=XyZ"), 422),
    ("form-empty-image", post(P, form([("image", b"", "a.png")]), "multipart/form-data; boundary=XyZ"), 422),
    ("form-no-boundary", post(P, form([("image", GOOD, "f.png")]), "multipart/form-data"), 400),
    ("form-wrong-boundary", post(P, form([("image", GOOD, "f.png")]), "multipart/form-data; boundary=Other"), 400),
    ("form-garbage", post(P, b"this is not multipart at all", "multipart/form-data; boundary=XyZ"), 400),
    ("form-unterminated", post(P, form([("image", GOOD, "f.png")])[:-20], "multipart/form-data; boundary=XyZ"), 400),
    ("form-image-not-png", post(P, form([("image", b"plain text", "f.txt")]), "multipart/form-data; boundary=XyZ"), 415),
    ("form-huge-boundary", post(P, b"--" + b"B" * 500, "multipart/form-data; boundary=" + "B" * 500), 400),
    # Found by the http fuzz target: MultipartKit (replaced by FormData) trapped on a non-ASCII byte in a part header name.
    ("form-non-ascii-header-name", post(P, b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\nX-\xc3\xa9: v\r\n\r\n"
                                       + GOOD + b"\r\n--XyZ--\r\n", "multipart/form-data; boundary=XyZ"), 400),
    ("form-utf8-filename", post(P, form([("image", GOOD, "caf\u00e9.png")]), "multipart/form-data; boundary=XyZ"), 200),
    ("form-quadratic-boundary", post(P, b"-" * 2_000_000, "multipart/form-data; boundary=" + "-" * 190), 400),
    ("form-extra-fields", post(P, form([("note", b"hi", None), ("image", GOOD, "f.png")]), "multipart/form-data; boundary=XyZ"), 200),
    # --- parameters
    ("fx-nan", post("/v1/predict?fx=nan", GOOD), 400),
    ("fx-inf", post("/v1/predict?fx=inf", GOOD), 400),
    ("fx-negative", post("/v1/predict?fx=-700", GOOD), 400),
    ("fx-zero", post("/v1/predict?fx=0", GOOD), 400),
    ("fx-huge", post("/v1/predict?fx=1e300", GOOD), 400),
    ("fx-text", post("/v1/predict?fx=seven", GOOD), 400),
    ("cy-nan", post("/v1/predict?cy=NaN", GOOD), 400),
    ("stride-zero", post("/v1/predict?stride=0", GOOD), 400),
    ("stride-huge", post("/v1/predict?stride=100000", GOOD), 400),
    ("stride-float", post("/v1/predict?stride=1.5", GOOD), 400),
    ("timeout-zero", post("/v1/predict?timeout_ms=0", GOOD), 400),
    ("timeout-negative", post("/v1/predict?timeout_ms=-1", GOOD), 400),
    ("max-below-min", post("/v1/predict?min_depth=10&max_depth=5", GOOD), 400),
    ("min-depth-negative", post("/v1/predict?min_depth=-1", GOOD), 400),
    ("depth-scale-zero", post("/v1/predict?depth_scale=0", GOOD), 400),
    ("bad-depth-format", post("/v1/predict?depth_format=tiff", GOOD), 400),
    ("empty-outputs", post("/v1/predict?outputs=", GOOD), 400),
    ("bogus-output", post("/v1/predict?outputs=segmentation,xray", GOOD), 400),
    ("normals-on-two-heads", post("/v1/predict?outputs=normals", GOOD), 400),
    ("unknown-param", post("/v1/predict?debug=1", GOOD), 400),
    ("duplicate-param", post("/v1/predict?stride=2&stride=3", GOOD), 400),
    ("bad-percent", post("/v1/predict?outputs=%zz", GOOD), 400),
    ("nul-in-number", post("/v1/predict?fx=7%00garbage", GOOD), 400),
    ("control-in-value", post("/v1/predict?outputs=segmentation%0A", GOOD), 400),
    ("alias-given-twice", post("/v1/predict?colour_by=image&color_by=class", GOOD), 400),
    ("unknown-class", post("/v1/predict?drop_classes=unicorn", GOOD), 400),
    ("bad-colour-by", post("/v1/predict?colour_by=rainbow", GOOD), 400),
    ("bad-fast", post("/v1/predict?fast=maybe", GOOD), 400),
    ("bad-overlay-format", post("/v1/predict?overlay_format=bmp", GOOD), 400),
    ("valid-everything", post("/v1/predict?outputs=segmentation,depth,pointcloud,overlay,summary&depth_format=png16"
                              "&depth_scale=800&fx=700&fy=700&cx=48&cy=32&stride=2&min_depth=1&max_depth=50"
                              "&drop_classes=sky,0&colour_by=class&ply_format=ascii&overlay_format=jpeg&fast=1&timeout_ms=5000", GOOD), 200),
    ("accept-unmatched", post(P + ",depth", GOOD, extra=b"Accept: text/html\r\n"), 406),
]


@pytest.fixture(scope="module")
def hostile_server():
    s = Server("--workers", "1", "--threads-per-worker", "2", "--queue-size", "16", "--max-pixels", "2000000",
               "--max-body-mb", "8", "--request-timeout", "3")
    yield s
    assert s.stop() == 0


def complete(data):
    """Whether `data` holds a whole final response (interim 100s skipped)."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return False
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        if status == 100:
            data = rest
            continue
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                return len(rest) >= int(v)
        return False


def send(port, data, timeout=20):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        sock.sendall(data)
        while not complete(out):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    finally:
        sock.close()
    return out


def test_catalogue_is_large_enough():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,data,status", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(hostile_server, name, data, status):
    out = send(hostile_server.port, data)
    assert out, f"{name}: no response at all"
    responses = [r for r in parse_responses(out) if r[0] != 100]
    got, headers, body = responses[0]
    assert got == status, f"{name}: expected {status}, got {got}: {body[:300]}"
    if status >= 400 and data.split(b" ", 2)[1:2] and data.split(b" ", 2)[1].startswith(b"/v2"):
        # The open inference protocol's error shape on every /v2 path.
        assert headers["content-type"] == "application/json", name
        assert list(json.loads(body)) == ["error"] and json.loads(body)["error"], name
    elif status >= 400:
        assert headers["content-type"] == "application/problem+json", name
        p = json.loads(body)
        assert p["status"] == status and p["detail"], name
    if status == 405:
        assert "allow" in headers


def test_well_behaved_client_is_unaffected_by_the_catalogue(hostile_server):
    port = hostile_server.port
    failures, served = [], [0]
    stop = threading.Event()

    def good_client():
        while not stop.is_set():
            out = send(port, post(P, GOOD))
            r = parse_responses(out)
            if not r or r[0][0] != 200:
                failures.append(r[0][0] if r else None)
            served[0] += 1
    t = threading.Thread(target=good_client)
    t.start()
    try:
        for name, data, status in CASES:
            send(port, data)
    finally:
        stop.set()
        t.join(60)
    assert served[0] >= 5 and not failures, (served, failures)
