#!/usr/bin/env python3
"""Minimal Hydra client (standard library only): POST a frame, save each part of the answer.

    python3 examples/client.py frame.png --outputs segmentation,depth,pointcloud,summary --out out/
"""
import argparse
import email.parser
import email.policy
import pathlib
import urllib.request


def predict(url, image_path, outputs):
    data = pathlib.Path(image_path).read_bytes()
    ctype = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    req = urllib.request.Request(f"{url}/v1/predict?outputs={outputs}", data=data, method="POST",
                                 headers={"Content-Type": ctype})
    with urllib.request.urlopen(req) as r:
        body, content_type = r.read(), r.headers["Content-Type"]
    if not content_type.startswith("multipart/"):
        return {outputs: (content_type, body)}
    # The response is a MIME multipart document: let the email parser split it.
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    return {part.get_param("name", header="content-disposition"): (part.get_content_type(), part.get_payload(decode=True))
            for part in msg.iter_parts()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--outputs", default="segmentation,depth,summary")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "application/x-npy": ".npy", "model/x-ply": ".ply",
           "application/json": ".json", "application/octet-stream": ".f32"}
    for name, (ctype, payload) in predict(a.url, a.image, a.outputs).items():
        path = out / (name + ext.get(ctype, ".bin"))
        path.write_bytes(payload)
        print(f"{path} ({ctype}, {len(payload)} bytes)")
