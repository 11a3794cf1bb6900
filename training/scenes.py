#!/usr/bin/python3
"""Street scenes rendered by ray casting through a pinhole camera, with exact labels and depth.

Camera frame: x right, y down, z forward (metres); the camera looks down the street from
height h with a small random pitch, roll and yaw. Scene: road and sidewalk planes, facades with
windows and gaps, parked and moving cars (boxes with glass and wheels), trees (trunk + crown) and
bushes, sky with clouds. Sun lighting with cast shadows, ambient light, haze, exposure and sensor
noise. Labels follow the KITTI preset: 0 sky, 1 building, 2 road, 3 sidewalk, 4 vegetation, 5 car.
Depth is the z coordinate of the hit point in metres (0 for sky). Deterministic from the seed.

    python3 training/scenes.py --out DIR --count N [--start S] [--width 1242 --height 375]
"""
import argparse
import pathlib

import numpy as np

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR = range(6)
KITTI_COLOURS = np.array([[128, 128, 128], [128, 0, 0], [128, 64, 128], [0, 0, 192], [128, 128, 0], [64, 0, 128]], np.uint8)
# KITTI raw camera 2, at 1242 x 375.
FX, CX, CY, REF_W, REF_H = 721.5377, 609.5593, 172.854, 1242, 375
FAR = 1e9


class Hits:
    """Nearest hit per ray: distance t, label, normal, albedo and which object (for texture)."""

    def __init__(self, n):
        self.t = np.full(n, FAR)
        self.label = np.zeros(n, np.uint8)
        self.normal = np.zeros((n, 3))
        self.albedo = np.zeros((n, 3))
        self.kind = np.zeros(n, np.int16)  # texture: 1 road, 2 paving, 3 facade, 4 car, 5 bark, 6 leaves

    def take(self, t, mask, label, normal, albedo, kind):
        closer = mask & (t > 1e-3) & (t < self.t)
        self.t[closer] = t[closer]
        self.label[closer] = label
        self.normal[closer] = normal[closer] if np.ndim(normal) == 2 else normal
        self.albedo[closer] = albedo[closer] if np.ndim(albedo) == 2 else albedo
        self.kind[closer] = kind
        return closer


def value_noise(x, y, scale, rng_seed):
    """Smooth 2D value noise in [0, 1] at world coordinates (x, y)."""
    r = np.random.default_rng(rng_seed)
    grid = r.random((64, 64))
    gx, gy = x / scale, y / scale
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = gx - x0, gy - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    def g(i, j):
        return grid[(y0 + j) % 64, (x0 + i) % 64]
    return (g(0, 0) * (1 - fx) + g(1, 0) * fx) * (1 - fy) + (g(0, 1) * (1 - fx) + g(1, 1) * fx) * fy


def rays(w, h, rng):
    """Unit ray directions in the camera frame for every pixel centre, and the camera height."""
    s = w / REF_W
    fx, cx, cy = FX * s, (CX + 0.5) * s - 0.5, (CY + 0.5) * (h / REF_H) - 0.5
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.stack([(u - cx) / fx, (v - cy) / fx, np.ones_like(u)], -1).reshape(-1, 3)
    pitch, roll, yaw = rng.normal(0, 0.02), rng.normal(0, 0.01), rng.normal(0, 0.04)
    cp, sp, cr, sr, cyw, syw = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cyw, 0, syw], [0, 1, 0], [-syw, 0, cyw]])
    world = d @ (ry @ rx @ rz).T  # camera ray -> world direction
    return d, world / np.linalg.norm(world, axis=1, keepdims=True), (ry @ rx @ rz)


def box_hit(o, d, lo, hi):
    """Ray-AABB slab test for rays from o (3,) along d (N,3): t and the hit normal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1, t2 = (lo - o) * inv, (hi - o) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tn, tf = tmin.max(1), tmax.min(1)
    hit = (tn <= tf) & (tf > 0)
    axis = tmin.argmax(1)
    normal = np.zeros_like(d)
    normal[np.arange(len(d)), axis] = -np.sign(d[np.arange(len(d)), axis])
    return np.where(hit, tn, FAR), normal


def sphere_hit(o, d, c, r, squash=1.0):
    """Ray-ellipsoid (sphere squashed in y) intersection."""
    sc = np.array([1.0, 1.0 / squash, 1.0])
    oc, dd = (o - c) * sc, d * sc
    a = (dd * dd).sum(1)
    b = 2 * (dd * oc).sum(1)
    cc = (oc * oc).sum() - r * r
    disc = b * b - 4 * a * cc
    ok = disc > 0
    t = np.where(ok, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), FAR)
    p = o + d * t[:, None]
    n = (p - c) * sc * sc
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    return t, n


def cylinder_hit(o, d, cx, cz, r, y0, y1):
    """Vertical cylinder between heights y0 < y1 (y down)."""
    ox, oz = o[0] - cx, o[2] - cz
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    y = o[1] + d[:, 1] * t
    ok = (disc > 0) & (y > y0) & (y < y1)
    n = np.stack([o[0] + d[:, 0] * t - cx, np.zeros_like(t), o[2] + d[:, 2] * t - cz], -1) / r
    return np.where(ok, t, FAR), n


def scene(rng, h_cam):
    """A random street layout (world frame: camera at origin, ground at y = h_cam)."""
    s = {"road_half": rng.uniform(3.0, 6.5), "sidewalk": rng.uniform(1.5, 3.5), "kerb": rng.uniform(0.08, 0.16)}
    s["facade"] = [s["road_half"] + s["sidewalk"] + rng.uniform(0, 3) for _ in range(2)]
    buildings = []
    for side in (-1, 1):
        z = rng.uniform(-5, 8)
        while z < 140:
            length = rng.uniform(8, 30)
            if rng.random() < 0.8:
                x = side * (s["facade"][int(side > 0)] + rng.uniform(0, 1.5))
                colour = rng.uniform(0.25, 0.85, 3) * np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.6, 0.95)])
                buildings.append({"x": x, "z0": z, "z1": z + length, "height": rng.uniform(5, 22), "colour": colour,
                                  "win": rng.uniform(2.5, 4.0), "seed": int(rng.integers(1 << 30)), "side": side})
            z += length + (rng.uniform(2, 12) if rng.random() < 0.35 else 0)
    if rng.random() < 0.4:  # a building closing the street far ahead
        buildings.append({"x": None, "zf": rng.uniform(70, 160), "height": rng.uniform(8, 25),
                          "colour": rng.uniform(0.3, 0.8, 3), "win": 3.0, "seed": int(rng.integers(1 << 30)), "side": 0})
    s["buildings"] = buildings
    cars = []
    for side in (-1, 1):  # parked along the kerb
        z = rng.uniform(2, 8)
        while z < 90:
            if rng.random() < 0.65:
                w, l, hgt = rng.uniform(1.6, 1.95), rng.uniform(3.7, 4.9), rng.uniform(1.35, 1.9)
                x = side * (s["road_half"] - w / 2 - rng.uniform(0.1, 0.5))
                cars.append({"lo": np.array([x - w / 2, h_cam - hgt, z]), "hi": np.array([x + w / 2, h_cam, z + l]),
                             "colour": car_colour(rng)})
            z += rng.uniform(4.5, 9)
    for _ in range(rng.integers(0, 4)):  # in the lanes
        w, l, hgt = rng.uniform(1.6, 1.9), rng.uniform(3.8, 4.8), rng.uniform(1.35, 1.7)
        x, z = rng.uniform(-s["road_half"] + 2.5, s["road_half"] - 2.5), rng.uniform(7, 70)
        cars.append({"lo": np.array([x - w / 2, h_cam - hgt, z]), "hi": np.array([x + w / 2, h_cam, z + l]), "colour": car_colour(rng)})
    s["cars"] = cars
    trees = []
    for side in (-1, 1):
        if rng.random() < 0.7:
            z = rng.uniform(3, 15)
            while z < 100:
                x = side * (s["road_half"] + s["sidewalk"] * rng.uniform(0.6, 0.95))
                r = rng.uniform(1.3, 3.2)
                trees.append({"x": x, "z": z, "r": r, "trunk": rng.uniform(1.8, 3.5), "squash": rng.uniform(0.8, 1.3),
                              "colour": rng.uniform([0.12, 0.25, 0.05], [0.35, 0.5, 0.2])})
                z += rng.uniform(6, 20)
    bushes = []
    for _ in range(rng.integers(0, 7)):
        side = rng.choice([-1, 1])
        x = side * (s["facade"][int(side > 0)] - rng.uniform(0.4, 1.2))
        bushes.append({"c": np.array([x, h_cam - 0.4, rng.uniform(5, 60)]), "r": rng.uniform(0.5, 1.2),
                       "colour": rng.uniform([0.1, 0.25, 0.05], [0.3, 0.5, 0.2])})
    s["trees"], s["bushes"] = trees, bushes
    return s


def car_colour(rng):
    palette = [[0.8, 0.1, 0.1], [0.9, 0.85, 0.2], [0.1, 0.2, 0.6], [0.85, 0.85, 0.85], [0.1, 0.1, 0.1], [0.5, 0.5, 0.55],
               [0.6, 0.05, 0.05], [0.2, 0.45, 0.25], [0.95, 0.95, 0.95]]
    return np.clip(np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.1), 0, 1)


def intersect(o, d, s, h_cam, hits, want_detail=True):
    """Nearest hit of every ray against the scene; fills `hits` (or just t for shadow rays)."""
    n = len(d)
    up = np.array([0.0, -1.0, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        # Ground: road at h_cam, sidewalks raised by the kerb height.
        t_road = np.where(d[:, 1] > 1e-6, (h_cam - o[1]) / d[:, 1], FAR)
        x_road = o[0] + d[:, 0] * t_road
        hits.take(t_road, np.abs(x_road) <= s["road_half"], ROAD, up, np.array([0.3, 0.3, 0.32]), 1)
        t_side = np.where(d[:, 1] > 1e-6, (h_cam - s["kerb"] - o[1]) / d[:, 1], FAR)
        x_side = o[0] + d[:, 0] * t_side
        hits.take(t_side, np.abs(x_side) > s["road_half"], SIDEWALK, up, np.array([0.55, 0.53, 0.5]), 2)
        for b in s["buildings"]:
            if b["x"] is None:
                t = np.where(d[:, 2] > 1e-6, (b["zf"] - o[2]) / d[:, 2], FAR)
                y = o[1] + d[:, 1] * t
                m = (y > h_cam - b["height"]) & (y < h_cam)
                hits.take(t, m, BUILDING, np.array([0, 0, -1.0]), b["colour"], 3)
                continue
            t = np.where(np.abs(d[:, 0]) > 1e-6, (b["x"] - o[0]) / d[:, 0], FAR)
            y, z = o[1] + d[:, 1] * t, o[2] + d[:, 2] * t
            m = (y > h_cam - b["height"]) & (y < h_cam + 0.01) & (z > b["z0"]) & (z < b["z1"])
            hits.take(t, m, BUILDING, np.array([-np.sign(b["x"]), 0, 0]), b["colour"], 3)
    for c in s["cars"]:
        t, nrm = box_hit(o, d, c["lo"], c["hi"])
        hits.take(t, t < FAR, CAR, nrm, c["colour"], 4)
    for tr in s["trees"]:
        t, nrm = cylinder_hit(o, d, tr["x"], tr["z"], 0.18, h_cam - tr["trunk"] - tr["r"] * 0.5, h_cam)
        hits.take(t, t < FAR, VEGETATION, nrm, np.array([0.25, 0.18, 0.1]), 5)
        t, nrm = sphere_hit(o, d, np.array([tr["x"], h_cam - tr["trunk"] - tr["r"] * tr["squash"], tr["z"]]), tr["r"], tr["squash"])
        hits.take(t, t < FAR, VEGETATION, nrm, tr["colour"], 6)
    for bu in s["bushes"]:
        t, nrm = sphere_hit(o, d, bu["c"], bu["r"], 0.7)
        hits.take(t, t < FAR, VEGETATION, nrm, bu["colour"], 6)
    return hits


def texture(hits, p, s, rng_seed):
    """Albedo detail by surface kind: asphalt, lane marks, paving, windows, glass, leaves."""
    a = hits.albedo.copy()
    k = hits.kind
    m = k == 1  # road
    if m.any():
        nz = value_noise(p[m, 0] * 3, p[m, 2] * 3, 1.0, rng_seed)
        a[m] *= (0.8 + 0.4 * nz)[:, None]
        lane = (np.abs(p[m, 0]) < 0.08) & ((p[m, 2] % 9) < 4.5)
        a[np.flatnonzero(m)[lane]] = [0.85, 0.85, 0.8]
    m = k == 2  # sidewalk paving
    if m.any():
        tile = ((np.floor(p[m, 0] * 3) + np.floor(p[m, 2] * 3)) % 2) * 0.06
        a[m] *= (0.9 + tile + 0.1 * value_noise(p[m, 0] * 5, p[m, 2] * 5, 1.0, rng_seed + 1))[:, None]
    m = k == 3  # facades with windows
    if m.any():
        along = np.where(np.abs(hits.normal[m, 0]) > 0.5, p[m, 2], p[m, 0])
        hy = -p[m, 1]
        win = ((along % 3.1) > 0.9) & ((along % 3.1) < 2.3) & ((hy % 3.0) > 0.6) & ((hy % 3.0) < 2.2) & (hy > -0.5)
        a[m] *= (0.85 + 0.3 * value_noise(along * 4, hy * 4, 1.0, rng_seed + 2))[:, None]
        idx = np.flatnonzero(m)[win]
        a[idx] = np.array([0.15, 0.18, 0.24]) * (0.7 + 0.6 * value_noise(along[win], hy[win], 2.0, rng_seed + 3))[:, None]
    m = k == 6  # foliage
    if m.any():
        a[m] *= (0.6 + 0.8 * value_noise(p[m, 0] * 8 + p[m, 1] * 3, p[m, 2] * 8 - p[m, 1] * 3, 1.0, rng_seed + 4))[:, None]
    return a


def render(seed, width=REF_W, height=REF_H):
    """Returns (rgb uint8 HxWx3, labels uint8 HxW, depth float32 HxW metres, 0 = sky)."""
    rng = np.random.default_rng(seed)
    h_cam = rng.uniform(1.45, 1.85)
    cam_dirs, d, _ = rays(width, height, rng)
    s = scene(rng, h_cam)
    o = np.zeros(3)
    hits = intersect(o, d, s, h_cam, Hits(len(d)))
    sky = hits.t >= FAR
    p = d * np.where(sky, 0, hits.t)[:, None]
    albedo = texture(hits, p, s, int(rng.integers(1 << 30)))
    # Cars: windows in the upper third, dark tyres at the bottom.
    for c in s["cars"]:
        inside = (hits.kind == 4) & np.all((p >= c["lo"] - 1e-3) & (p <= c["hi"] + 1e-3), axis=1)
        rel = (p[:, 1] - c["lo"][1]) / (c["hi"][1] - c["lo"][1])
        albedo[inside & (rel < 0.38) & (rel > 0.05)] = [0.12, 0.15, 0.2]
        albedo[inside & (rel > 0.82)] = [0.04, 0.04, 0.04]
    # Sun light with cast shadows.
    elev, azim = rng.uniform(0.3, 1.1), rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elev) * np.sin(azim), -np.sin(elev), np.cos(elev) * np.cos(azim)])
    lit = ~sky
    shade = np.zeros(len(d))
    if lit.any():
        pts = p[lit] + hits.normal[lit] * 0.02
        in_shadow = np.concatenate([occluded(pts[i:i + 20000], sun, s, h_cam) for i in range(0, len(pts), 20000)])
        direct = np.clip(-(hits.normal[lit] @ sun), 0, 1) * ~in_shadow
        shade[lit] = 0.45 + 0.75 * direct
    ambient_tint = rng.uniform([0.9, 0.9, 0.95], [1.05, 1.0, 1.1])
    colour = albedo * shade[:, None] * ambient_tint
    # Sky gradient with clouds.
    if sky.any():
        elevation = np.clip(-d[sky, 1], -0.2, 1)
        base = np.array([0.35, 0.55, 0.9]) * rng.uniform(0.8, 1.1)
        horizon = np.array([0.85, 0.9, 0.95])
        skyc = horizon + (base - horizon) * np.clip(elevation * 3, 0, 1)[:, None]
        cl = value_noise(d[sky, 0] / np.maximum(d[sky, 2], 0.1) * 6, elevation * 20, 1.0, seed) * rng.uniform(0, 1)
        colour[sky] = skyc * (1 - cl[:, None] * 0.5) + cl[:, None] * 0.5
    # Haze with distance.
    dist = np.where(sky, 0, hits.t)
    haze = 1 - np.exp(-dist / rng.uniform(150, 400))
    colour = colour * (1 - haze[:, None]) + np.array([0.8, 0.85, 0.9]) * haze[:, None]
    # Exposure, gamma, noise.
    colour = np.clip(colour * rng.uniform(0.75, 1.25), 0, 1) ** rng.uniform(0.8, 1.2)
    img = colour.reshape(height, width, 3) * 255 + rng.normal(0, rng.uniform(1, 5), (height, width, 1))
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    labels = hits.label.reshape(height, width)
    labels[sky.reshape(height, width)] = SKY
    # Depth is along the camera's optical axis: project the hit onto the (rotated) camera z axis.
    depth = (np.where(sky, 0, hits.t) * cam_dirs[:, 2] / np.linalg.norm(cam_dirs, axis=1)).reshape(height, width)
    return rgb, labels, depth.astype(np.float32)


def occluded(pts, sun, s, h_cam):
    """Whether the way from each point towards the sun is blocked by a car, building or tree."""
    d = np.broadcast_to(-sun, pts.shape)
    blocked = np.zeros(len(pts), bool)
    for c in s["cars"]:
        lo, hi = c["lo"], c["hi"]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lo - pts) / d, (hi - pts) / d
        tn, tf = np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)
        blocked |= (tn <= tf) & (tf > 1e-3)
    for b in s["buildings"]:
        if b["x"] is None:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (b["x"] - pts[:, 0]) / d[:, 0]
        y, z = pts[:, 1] + d[:, 1] * t, pts[:, 2] + d[:, 2] * t
        blocked |= (t > 1e-3) & (y > h_cam - b["height"]) & (z > b["z0"]) & (z < b["z1"])
    for tr in s["trees"]:
        c = np.array([tr["x"], h_cam - tr["trunk"] - tr["r"] * tr["squash"], tr["z"]])
        oc = pts - c
        b2 = (oc * d).sum(1)
        cc = (oc * oc).sum(1) - tr["r"] ** 2
        blocked |= (b2 * b2 - cc > 0) & (-b2 > 0)
    return blocked


def save(out, index, rgb, labels, depth):
    from PIL import Image
    Image.fromarray(rgb).save(out / f"scene_{index:06d}.png")
    Image.fromarray(KITTI_COLOURS[labels]).save(out / f"scene_segm_gt_{index:06d}.png")
    Image.fromarray(np.clip(np.round(depth * 256), 0, 65535).astype(np.uint16)).save(out / f"scene_depth_gt_{index:06d}.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--width", type=int, default=REF_W)
    ap.add_argument("--height", type=int, default=REF_H)
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(a.start, a.start + a.count):
        save(out, i, *render(i, a.width, a.height))
