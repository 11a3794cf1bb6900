"use strict";
// Hydra's page: every URL is relative, so the page works behind a path prefix.
const $ = (id) => document.getElementById(id);
const state = { models: [], file: null, cloud: null, points: null, camera: null, view: null, depthColours: null, links: [] };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function problemText(resp) {
  try {
    const p = await resp.json();
    return `${resp.status} ${p.title || resp.statusText}: ${p.detail || ""}`;
  } catch (_) {
    return `${resp.status} ${resp.statusText}`;
  }
}

async function loadModels() {
  const resp = await fetch("v1/models");
  if (!resp.ok) throw new Error(await problemText(resp));
  state.models = (await resp.json()).models;
  $("model").replaceChildren(...state.models.map((m) => {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = `${m.name} (${m.preset}${m.trained ? "" : ", untrained"})`;
    return o;
  }));
  legend(null);
}

async function loadDepthColours() {
  const resp = await fetch("static/depth-colours.json");
  if (!resp.ok) throw new Error(await problemText(resp));
  state.depthColours = (await resp.json()).table;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value) || state.models[0];
}

function legend(summary) {
  const m = currentModel();
  if (!m) return;
  const share = new Map((summary ? summary.classes : []).map((c) => [c.id, c]));
  $("legend").replaceChildren(...m.classes.map((c) => {
    const li = document.createElement("li");
    const sw = document.createElement("i");
    sw.style.background = `rgb(${c.colour.join(",")})`;
    const s = share.get(c.id);
    const near = s && s.depth_min_m != null ? `, nearest ${s.depth_min_m.toFixed(1)} m` : "";
    li.append(sw, `${c.name}${s ? ` ${(s.share * 100).toFixed(1)} %` : ""}${near}`);
    return li;
  }));
}

/** Forgets the last frame's results, so nothing stale stays on screen under a new frame or an error. */
function clearResults() {
  for (const id of ["segmentation", "depth"]) {
    const c = $(id);
    c.width = 0;
    c.height = 0;
  }
  $("depth").onmousemove = null;
  $("probe").textContent = "";
  $("scale").hidden = true;
  $("timings").hidden = true;
  $("downloads").hidden = true;
  $("camera").textContent = "";
  state.links.forEach((u) => URL.revokeObjectURL(u));
  state.links = [];
  state.points = null;
  if (state.cloud) {
    const { gl } = state.cloud;
    gl.clearColor(0.04, 0.05, 0.07, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  }
  legend(null);
}

function pick(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg)$/.test(file.type)) {
    showError(`${file.name}: choose a PNG or JPEG image`);
    return;
  }
  state.file = file;
  showError("");
  clearResults();
  $("run").disabled = false;
  $("status").textContent = `${file.name}, ${(file.size / 1024).toFixed(0)} KiB`;
  createImageBitmap(file).then((bmp) => {
    draw($("input"), bmp);
    $("views").classList.toggle("wide", bmp.width > 2 * bmp.height);
  }).catch(() => showError(`${file.name}: the browser cannot decode it`));
}

async function pickSample() {
  const resp = await fetch("static/sample.jpg");
  if (!resp.ok) throw new Error(await problemText(resp));
  pick(new File([await resp.blob()], "sample.jpg", { type: "image/jpeg" }));
}

function draw(canvas, bmp) {
  canvas.width = bmp.width;
  canvas.height = bmp.height;
  canvas.getContext("2d").drawImage(bmp, 0, 0);
}

function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const major = bytes[6];
  const view = new DataView(buffer);
  const len = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + len));
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").map((s) => parseInt(s)).filter((n) => !isNaN(n));
  return { shape, data: new Float32Array(buffer.slice(start + len)) };
}

/** The server's colour map (static/depth-colours.json) on inverse depth, as its colour depth PNG. */
function depthColour(d, near, far) {
  if (!(d > 0) || !isFinite(d)) return [0, 0, 0];
  const t = (1 / Math.max(d, 1e-3) - 1 / far) / (1 / near - 1 / far);
  return state.depthColours[Math.round(Math.min(1, Math.max(0, t)) * 255)];
}

function showDepth(npy, summary) {
  const [h, w] = npy.shape;
  const d = npy.data;
  const [near, far] = summary.depth_colour_range_m;
  const canvas = $("depth");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const c = depthColour(d[i], near, far);
    img.data[4 * i] = c[0];
    img.data[4 * i + 1] = c[1];
    img.data[4 * i + 2] = c[2];
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const bar = $("scalebar").getContext("2d");
  for (let x = 0; x < 256; x++) {
    bar.fillStyle = `rgb(${state.depthColours[255 - x].join(",")})`;
    bar.fillRect(x, 0, 1, 12);
  }
  // The bar runs near (left) to far (right); ticks at the summary's round distances.
  // Labels closer than a tenth of the bar would overlap on a narrow screen: the ends win.
  const all = summary.depth_colour_legend, ends = [all[0], all[all.length - 1]];
  const shown = all.filter((t) => ends.includes(t) || ends.every((e) => Math.abs(e.position - t.position) >= 0.1));
  $("ticks").replaceChildren(...shown.map((t) => {
    const s = document.createElement("span");
    s.style.left = `${(1 - t.position) * 100}%`;
    s.textContent = `${t.metres < 10 ? t.metres.toFixed(1) : t.metres.toFixed(0)} m`;
    return s;
  }));
  $("scale").hidden = false;
  $("probe").textContent = "move over the picture";
  canvas.onmousemove = (e) => {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - r.left) / r.width * w), y = Math.floor((e.clientY - r.top) / r.height * h);
    if (x >= 0 && y >= 0 && x < w && y < h) $("probe").textContent = `(${x}, ${y}): ${d[y * w + x].toFixed(2)} m`;
  };
  canvas.onmouseleave = () => { $("probe").textContent = "move over the picture"; };
}

function parsePly(buffer) {
  const bytes = new Uint8Array(buffer);
  const end = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 4096))).indexOf("end_header\n");
  if (end < 0) throw new Error("point cloud: no PLY header");
  const header = new TextDecoder().decode(bytes.subarray(0, end)).split("\n");
  const count = parseInt(header.find((l) => l.startsWith("element vertex")).split(" ")[2]);
  const props = header.filter((l) => l.startsWith("property")).map((l) => l.split(" "));
  const sizes = { float: 4, uchar: 1 };
  let offset = 0;
  const at = {};
  for (const [, type, name] of props) { at[name] = offset; offset += sizes[type]; }
  const view = new DataView(buffer, end + "end_header\n".length);
  const pos = new Float32Array(count * 3), rgb = new Float32Array(count * 3), label = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const b = i * offset;
    pos[3 * i] = view.getFloat32(b + at.x, true);
    pos[3 * i + 1] = -view.getFloat32(b + at.y, true); // camera y points down; draw with y up
    pos[3 * i + 2] = -view.getFloat32(b + at.z, true); // and z forward: the view looks down -z
    rgb[3 * i] = view.getUint8(b + at.red) / 255;
    rgb[3 * i + 1] = view.getUint8(b + at.green) / 255;
    rgb[3 * i + 2] = view.getUint8(b + at.blue) / 255;
    label[i] = view.getUint8(b + at.label);
  }
  return { count, pos, rgb, label };
}

const VERTEX = `attribute vec3 p; attribute vec3 c; uniform mat4 m; varying vec3 v;
void main() { gl_Position = m * vec4(p, 1.0); gl_PointSize = 2.0; v = c; }`;
const FRAGMENT = "precision mediump float; varying vec3 v; void main() { gl_FragColor = vec4(v, 1.0); }";

function glContext() {
  if (state.cloud) return state.cloud;
  const gl = $("cloud").getContext("webgl", { antialias: false, preserveDrawingBuffer: true });
  if (!gl) return null;
  const shader = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s; };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(prog);
  gl.useProgram(prog);
  const buffer = (name) => ({ b: gl.createBuffer(), loc: gl.getAttribLocation(prog, name) });
  state.cloud = { gl, prog, pos: buffer("p"), image: buffer("c"), class: buffer("c"), count: 0 };
  return state.cloud;
}

/** Uploads the points the sky and distance controls keep. */
function uploadCloud() {
  const cloud = state.points, s = glContext();
  if (!cloud || !s) return;
  const classes = currentModel().classes;
  const sky = $("hide-sky").checked ? classes.findIndex((c) => c.name === "sky") : -1;
  const maxDepth = parseFloat($("max-depth").value) || Infinity;
  const keep = [];
  for (let i = 0; i < cloud.count; i++) if (cloud.label[i] !== sky && -cloud.pos[3 * i + 2] <= maxDepth) keep.push(i);
  const pos = new Float32Array(keep.length * 3), rgb = new Float32Array(keep.length * 3), cls = new Float32Array(keep.length * 3);
  keep.forEach((i, n) => {
    for (let k = 0; k < 3; k++) {
      pos[3 * n + k] = cloud.pos[3 * i + k];
      rgb[3 * n + k] = cloud.rgb[3 * i + k];
      cls[3 * n + k] = classes[cloud.label[i]].colour[k] / 255;
    }
  });
  const { gl } = s;
  for (const [buf, data] of [[s.pos, pos], [s.image, rgb], [s.class, cls]]) {
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.b);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
  }
  s.count = keep.length;
  const depths = keep.filter((_, n) => n % 7 === 0).map((i) => -cloud.pos[3 * i + 2]).sort((a, b) => a - b);
  s.median = depths.length ? depths[Math.floor(depths.length / 2)] : 10;
  s.centre = [0, 1, 2].map((k) => keep.reduce((sum, i) => sum + cloud.pos[3 * i + k], 0) / Math.max(1, keep.length));
  render();
}

/** From above and behind the camera that took the frame, looking at the middle of the kept
 *  points: the scene's layout shows, and the frame's own view is one drag away. */
function resetView() {
  const s = state.cloud;
  const m = s && s.median ? s.median : 10;
  state.view = { target: s && s.centre ? s.centre.slice() : [0, 0, -m], yaw: 0, pitch: 0.4, dist: 1.3 * m };
  render();
}

function setupCloud(cloud) {
  if (!glContext()) { showError("WebGL is not available: the point cloud cannot be shown"); return; }
  state.points = cloud;
  uploadCloud();
  resetView();
}

function render() {
  const s = state.cloud;
  if (!s || !state.points || !state.view) return;
  const { gl } = s;
  const canvas = gl.canvas;
  canvas.width = canvas.clientWidth * devicePixelRatio;
  canvas.height = canvas.clientHeight * devicePixelRatio;
  gl.viewport(0, 0, canvas.width, canvas.height);
  gl.clearColor(0.04, 0.05, 0.07, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST);
  const colour = document.querySelector("input[name=colour]:checked").value;
  for (const buf of [s.pos, s[colour]]) {
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.b);
    gl.enableVertexAttribArray(buf.loc);
    gl.vertexAttribPointer(buf.loc, 3, gl.FLOAT, false, 0, 0);
  }
  gl.uniformMatrix4fv(gl.getUniformLocation(s.prog, "m"), false, matrix(canvas.width / canvas.height));
  gl.drawArrays(gl.POINTS, 0, s.count);
}

/** Orbit camera: the eye sits `dist` from the target, turned by yaw and pitch; column-major. */
function eyeAxes() {
  const v = state.view;
  const cp = Math.cos(v.pitch), sp = Math.sin(v.pitch), cy = Math.cos(v.yaw), sy = Math.sin(v.yaw);
  const back = [sy * cp, sp, cy * cp]; // from the target towards the eye
  const right = [cy, 0, -sy];
  const up = [back[1] * right[2] - back[2] * right[1], back[2] * right[0] - back[0] * right[2], back[0] * right[1] - back[1] * right[0]];
  return { back, right, up };
}

function matrix(aspect) {
  const v = state.view, { back, right, up } = eyeAxes();
  const eye = v.target.map((t, k) => t + v.dist * back[k]);
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const view = [right[0], up[0], back[0], 0, right[1], up[1], back[1], 0, right[2], up[2], back[2], 0,
    -dot(right, eye), -dot(up, eye), -dot(back, eye), 1];
  // The frame's own vertical field of view, but not narrower than 50 degrees (a KITTI frame has 29):
  // from above and behind, a narrow view shows only the middle of the street.
  const cam = state.camera;
  const fovy = Math.max(0.87, cam ? 2 * Math.atan(cam.height / 2 / cam.fy) : 1);
  const f = 1 / Math.tan(fovy / 2), n = 0.05, far = v.dist + 400;
  const proj = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + n) / (n - far), -1, 0, 0, 2 * far * n / (n - far), 0];
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let x = 0;
      for (let k = 0; k < 4; k++) x += proj[k * 4 + r] * view[c * 4 + k];
      out[c * 4 + r] = x;
    }
  }
  return out;
}

function orbitControls() {
  const canvas = $("cloud");
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, pan: e.shiftKey }; canvas.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
  window.addEventListener("mousemove", (e) => {
    if (!drag || !state.view) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y, v = state.view;
    if (drag.pan) {
      const { right, up } = eyeAxes(), k = v.dist * 0.002;
      v.target = v.target.map((t, i) => t - right[i] * dx * k + up[i] * dy * k);
    } else {
      v.yaw -= dx * 0.006;
      v.pitch = Math.max(-1.5, Math.min(1.5, v.pitch + dy * 0.006));
    }
    drag.x = e.clientX;
    drag.y = e.clientY;
    render();
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (!state.view) return;
    state.view.dist = Math.max(0.5, state.view.dist * Math.exp(e.deltaY * 0.001));
    render();
  }, { passive: false });
  document.querySelectorAll("input[name=colour]").forEach((r) => r.addEventListener("change", render));
  $("hide-sky").addEventListener("change", uploadCloud);
  $("max-depth").addEventListener("change", uploadCloud);
  $("reset-view").addEventListener("click", resetView);
}

function downloads(form, stem) {
  const names = { segmentation: "_segmentation.png", depth: "_depth.npy", pointcloud: ".ply", summary: "_summary.json" };
  const items = [];
  for (const [part, suffix] of Object.entries(names)) {
    const blob = form.get(part);
    if (!blob) continue;
    const url = URL.createObjectURL(blob);
    state.links.push(url);
    const a = document.createElement("a");
    a.href = url;
    a.download = stem + suffix;
    a.textContent = `${stem}${suffix} (${(blob.size / 1024).toFixed(0)} KiB)`;
    const li = document.createElement("li");
    li.append(a);
    items.push(li);
  }
  $("download-links").replaceChildren(...items);
  $("downloads").hidden = false;
}

async function run() {
  if (!state.file) return;
  showError("");
  clearResults();
  $("run").disabled = true;
  const outputs = ["segmentation", "depth", "summary"];
  if (document.querySelector("#outputs input[value=pointcloud]").checked) outputs.push("pointcloud");
  const params = { outputs: outputs.join(","), depth_format: "npy", stride: $("stride").value, fast: $("fast").checked ? "true" : "false" };
  if ($("hfov").value) params.hfov = $("hfov").value;
  const body = new FormData();
  body.append("image", state.file, state.file.name);
  $("status").textContent = "running...";
  const t0 = performance.now();
  try {
    const resp = await fetch(`v1/models/${encodeURIComponent(currentModel().name)}/predict?${new URLSearchParams(params)}`,
      { method: "POST", body, headers: { Accept: "multipart/form-data" } });
    if (!resp.ok) throw new Error(await problemText(resp));
    const form = await resp.formData();
    const total = performance.now() - t0;
    const summary = JSON.parse(await form.get("summary").text());
    draw($("segmentation"), await createImageBitmap(form.get("segmentation")));
    showDepth(parseNpy(await form.get("depth").arrayBuffer()), summary);
    legend(summary);
    timings(summary, total);
    state.camera = { ...summary.camera, height: summary.input.height };
    $("camera").textContent = `Camera: fx ${summary.camera.fx.toFixed(1)}, fy ${summary.camera.fy.toFixed(1)} px (${summary.camera.source})`;
    if (form.get("pointcloud")) setupCloud(parsePly(await form.get("pointcloud").arrayBuffer()));
    downloads(form, state.file.name.replace(/\.[^.]*$/, ""));
    $("status").textContent = `done in ${total.toFixed(0)} ms`;
  } catch (e) {
    clearResults();
    showError(e.message || String(e));
    $("status").textContent = "failed";
  } finally {
    $("run").disabled = false;
  }
}

function timings(summary, total) {
  const rows = Object.entries(summary.timings_ms).sort((a, b) => b[1] - a[1]);
  rows.push(["round trip (browser)", total]);
  $("timing-rows").replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td"), value = document.createElement("td");
    name.textContent = k;
    value.textContent = v.toFixed(1);
    tr.append(name, value);
    return tr;
  }));
  $("timings").hidden = false;
}

$("file").addEventListener("change", (e) => pick(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files[0]); });
$("sample").addEventListener("click", () => pickSample().catch((e) => showError(`cannot load the sample frame: ${e.message}`)));
$("run").addEventListener("click", run);
$("opacity").addEventListener("input", (e) => { $("segmentation").style.opacity = e.target.value / 100; });
$("segmentation").style.opacity = 0.6;
$("model").addEventListener("change", () => legend(null));
orbitControls();
Promise.all([loadModels(), loadDepthColours()]).catch((e) => showError(`cannot start the page: ${e.message}`));
