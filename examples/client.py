#!/usr/bin/env python3
"""Minimal Hydra client (standard library only): POST a frame, save each part of the answer.

    python3 examples/client.py frame.png --outputs segmentation,depth,pointcloud,summary --out out/

Files are named after the frame (frame_segmentation.png, frame_depth.npy, ...), as `hydra predict`
names them; an existing file is kept unless --overwrite. A refused request prints the service's
problem (status, title, detail) and exits 1.
"""
import argparse
import email.parser
import email.policy
import json
import pathlib
import sys
import urllib.error
import urllib.request

SUFFIXES = {"segmentation": "_segmentation", "depth": "_depth", "pointcloud": "", "overlay": "_overlay",
            "normals": "_normals", "summary": "_summary"}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "application/x-npy": ".npy", "model/x-ply": ".ply",
              "application/json": ".json", "application/octet-stream": ".f32"}


class Refused(Exception):
    """The service answered with an error status and a problem document."""


def predict(url, image_path, outputs):
    data = pathlib.Path(image_path).read_bytes()
    ctype = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    req = urllib.request.Request(f"{url}/v1/predict?outputs={outputs}", data=data, method="POST",
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req) as r:
            body, content_type = r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            p = json.loads(raw)
            raise Refused(f"{e.code} {p.get('title', e.reason)}: {p.get('detail', '')}") from None
        except ValueError:
            raise Refused(f"{e.code} {e.reason}: {raw[:200].decode(errors='replace')}") from None
    if not content_type.startswith("multipart/"):
        return {outputs: (content_type, body)}
    # The response is a MIME multipart document: let the email parser split it.
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    return {part.get_param("name", header="content-disposition"): (part.get_content_type(), part.get_payload(decode=True))
            for part in msg.iter_parts()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--outputs", default="segmentation,depth,summary")
    ap.add_argument("--out", default=".")
    ap.add_argument("--overwrite", action="store_true", help="replace files that exist")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    stem = pathlib.Path(a.image).stem
    try:
        parts = predict(a.url, a.image, a.outputs)
    except Refused as e:
        sys.exit(f"error: {a.image}: {e}")
    except (OSError, urllib.error.URLError) as e:
        sys.exit(f"error: {e}")
    out.mkdir(parents=True, exist_ok=True)
    for name, (ctype, payload) in parts.items():
        path = out / (stem + SUFFIXES.get(name, "_" + name) + EXTENSIONS.get(ctype, ".bin"))
        if path.exists() and not a.overwrite:
            print(f"{path} exists: kept (--overwrite replaces it)", file=sys.stderr)
            continue
        path.write_bytes(payload)
        print(f"{path} ({ctype}, {len(payload)} bytes)")


if __name__ == "__main__":
    main()
