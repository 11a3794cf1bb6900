/// The page served at GET /: written for this project, no build step, nothing from a CDN.
/// Every URL in it is relative, so it works behind a path prefix (a KServe or ingress route).
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hydra: segmentation, depth and 3D segmentation</title>
<link rel="stylesheet" href="static/app.css">
</head>
<body>
<header>
  <h1>Hydra</h1>
  <p>Upload a camera frame: semantic segmentation, metric depth and the labelled 3D point cloud from one forward pass.</p>
</header>
<main>
  <section id="controls">
    <label id="drop" tabindex="0">
      <input id="file" type="file" accept="image/png,image/jpeg">
      <span>Choose or drop a PNG or JPEG frame</span>
    </label>
    <label>Model <select id="model"></select></label>
    <fieldset id="outputs">
      <legend>Outputs</legend>
      <label><input type="checkbox" value="segmentation" checked disabled> segmentation</label>
      <label><input type="checkbox" value="depth" checked disabled> depth</label>
      <label><input type="checkbox" value="pointcloud" checked> point cloud</label>
      <label><input type="checkbox" id="fast"> fast upsampling</label>
    </fieldset>
    <label>Point stride <input id="stride" type="number" min="1" max="16" value="2"></label>
    <button id="run" disabled>Run</button>
    <p id="status" role="status"></p>
  </section>
  <p id="error" role="alert" hidden></p>
  <section id="views">
    <figure>
      <figcaption>Input and segmentation <input id="opacity" type="range" min="0" max="100" value="60" aria-label="segmentation opacity"></figcaption>
      <div class="stack"><canvas id="input"></canvas><canvas id="segmentation"></canvas></div>
      <ul id="legend"></ul>
    </figure>
    <figure>
      <figcaption>Depth <span id="probe">move over the image</span></figcaption>
      <canvas id="depth"></canvas>
      <div id="scale"><canvas id="scalebar" width="256" height="12"></canvas><span id="near"></span><span id="far"></span></div>
    </figure>
    <figure>
      <figcaption>3D segmentation
        <label><input type="radio" name="colour" value="image" checked> image colours</label>
        <label><input type="radio" name="colour" value="class"> class colours</label>
      </figcaption>
      <canvas id="cloud" width="640" height="400"></canvas>
      <p class="hint">drag to orbit, wheel to zoom</p>
    </figure>
  </section>
  <section id="timings" hidden><h2>Timings (ms)</h2><table><tbody id="timing-rows"></tbody></table></section>
</main>
<script src="static/app.js"></script>
</body>
</html>
"""#

    static let css = #"""
:root { --bg: #101418; --panel: #1b2128; --text: #e6e9ec; --muted: #9aa4ae; --accent: #5fb3ff; --error: #ff6b6b; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--text); }
header { padding: 14px 22px; border-bottom: 1px solid #2a323b; }
header h1 { margin: 0 0 2px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
main { padding: 16px 22px; }
#controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; background: var(--panel); padding: 12px 14px; border-radius: 8px; }
#drop { border: 2px dashed #3b4652; border-radius: 8px; padding: 10px 16px; cursor: pointer; }
#drop.over { border-color: var(--accent); }
#drop input { display: none; }
fieldset { border: 1px solid #2f3842; border-radius: 6px; padding: 4px 10px; }
select, input[type=number], button { background: #0d1114; color: var(--text); border: 1px solid #3b4652; border-radius: 5px; padding: 5px 8px; }
input[type=number] { width: 4em; }
button { background: var(--accent); color: #08121c; font-weight: 600; border: 0; padding: 7px 18px; cursor: pointer; }
button:disabled { opacity: .45; cursor: default; }
#status { color: var(--muted); margin: 0; min-width: 12em; }
#error { color: var(--error); background: #2a1517; border: 1px solid #5a2a2e; padding: 10px 14px; border-radius: 6px; }
#views { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; margin-top: 16px; }
figure { margin: 0; background: var(--panel); border-radius: 8px; padding: 10px; }
figcaption { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; font-weight: 600; }
figcaption span, figcaption label { font-weight: 400; color: var(--muted); }
canvas { width: 100%; height: auto; display: block; background: #0b0e11; border-radius: 4px; }
.stack { position: relative; }
.stack canvas + canvas { position: absolute; inset: 0; }
#legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
#legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
#scale { display: grid; grid-template-columns: 1fr auto; margin-top: 8px; font-size: 13px; color: var(--muted); }
#scale canvas { grid-column: 1 / 3; height: 12px; }
#far { text-align: right; }
#cloud { cursor: grab; aspect-ratio: 16 / 10; }
.hint { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
#timings { margin-top: 16px; background: var(--panel); border-radius: 8px; padding: 10px 14px; }
#timings h2 { font-size: 15px; margin: 0 0 6px; }
#timings td { padding: 2px 14px 2px 0; font-variant-numeric: tabular-nums; }
"""#

    static let javascript = #"""
"use strict";
// Hydra's page: every URL is relative, so the page works behind a path prefix.
const $ = (id) => document.getElementById(id);
const state = { models: [], file: null, cloud: null, yaw: 0.25, pitch: 0.3, dist: 1 };
const RAMP = [[200, 30, 30], [240, 120, 40], [250, 220, 80], [120, 200, 160], [60, 120, 200], [40, 40, 120]];

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
    li.append(sw, `${c.name}${s ? ` ${(s.share * 100).toFixed(1)} %` : ""}${s && s.depth_min_m != null ? `, nearest ${s.depth_min_m.toFixed(1)} m` : ""}`);
    return li;
  }));
}

function pick(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg)$/.test(file.type)) {
    showError(`${file.name}: choose a PNG or JPEG image`);
    return;
  }
  state.file = file;
  showError("");
  $("run").disabled = false;
  $("status").textContent = `${file.name}, ${(file.size / 1024).toFixed(0)} KiB`;
  createImageBitmap(file).then((bmp) => draw($("input"), bmp));
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

function rampColour(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  return RAMP[i].map((a, k) => a + (RAMP[i + 1][k] - a) * f);
}

function showDepth(npy) {
  const [h, w] = npy.shape;
  const d = npy.data;
  const valid = [];
  for (let i = 0; i < d.length; i += 7) if (d[i] > 0 && isFinite(d[i])) valid.push(d[i]);
  valid.sort((a, b) => a - b);
  const near = valid.length ? valid[Math.floor(valid.length * 0.02)] : 0;
  const far = valid.length ? valid[Math.floor(valid.length * 0.98)] : 1;
  const canvas = $("depth");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const c = d[i] > 0 ? rampColour((d[i] - near) / Math.max(1e-6, far - near)) : [0, 0, 0];
    img.data.set([c[0], c[1], c[2], 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  const bar = $("scalebar").getContext("2d");
  for (let x = 0; x < 256; x++) {
    bar.fillStyle = `rgb(${rampColour(x / 255).map(Math.round).join(",")})`;
    bar.fillRect(x, 0, 1, 12);
  }
  $("near").textContent = `near ${near.toFixed(1)} m`;
  $("far").textContent = `far ${far.toFixed(1)} m`;
  canvas.onmousemove = (e) => {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - r.left) / r.width * w), y = Math.floor((e.clientY - r.top) / r.height * h);
    if (x >= 0 && y >= 0 && x < w && y < h) $("probe").textContent = `(${x}, ${y}): ${d[y * w + x].toFixed(2)} m`;
  };
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
    pos[3 * i + 2] = -view.getFloat32(b + at.z, true);
    rgb[3 * i] = view.getUint8(b + at.red) / 255;
    rgb[3 * i + 1] = view.getUint8(b + at.green) / 255;
    rgb[3 * i + 2] = view.getUint8(b + at.blue) / 255;
    label[i] = view.getUint8(b + at.label);
  }
  return { count, pos, rgb, label };
}

const VERTEX = `attribute vec3 p; attribute vec3 c; uniform mat4 m; varying vec3 v;
void main() { gl_Position = m * vec4(p, 1.0); gl_PointSize = 2.0; v = c; }`;
const FRAGMENT = `precision mediump float; varying vec3 v; void main() { gl_FragColor = vec4(v, 1.0); }`;

function setupCloud(cloud) {
  const canvas = $("cloud");
  const gl = canvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true });
  if (!gl) { showError("WebGL is not available: the point cloud cannot be shown"); return; }
  const shader = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s; };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(prog);
  gl.useProgram(prog);
  let cx = 0, cy = 0, cz = 0, radius = 1;
  for (let i = 0; i < cloud.count; i++) { cx += cloud.pos[3 * i]; cy += cloud.pos[3 * i + 1]; cz += cloud.pos[3 * i + 2]; }
  if (cloud.count) { cx /= cloud.count; cy /= cloud.count; cz /= cloud.count; }
  for (let i = 0; i < cloud.count; i += 17) radius = Math.max(radius, Math.hypot(cloud.pos[3 * i] - cx, cloud.pos[3 * i + 1] - cy, cloud.pos[3 * i + 2] - cz));
  const classColours = new Float32Array(cloud.count * 3);
  const classes = currentModel().classes;
  for (let i = 0; i < cloud.count; i++) classColours.set(classes[cloud.label[i]].colour.map((x) => x / 255), 3 * i);
  const buffer = (data, name) => {
    const b = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, b);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    return { b, loc: gl.getAttribLocation(prog, name) };
  };
  const posBuf = buffer(cloud.pos, "p");
  const colours = { image: buffer(cloud.rgb, "c"), class: buffer(classColours, "c") };
  state.cloud = { gl, prog, posBuf, colours, centre: [cx, cy, cz], radius, count: cloud.count };
  state.dist = radius * 0.9; // start just behind the camera, looking down the scene
  render();
}

function render() {
  const s = state.cloud;
  if (!s) return;
  const { gl } = s;
  const canvas = gl.canvas;
  canvas.width = canvas.clientWidth * devicePixelRatio;
  canvas.height = canvas.clientHeight * devicePixelRatio;
  gl.viewport(0, 0, canvas.width, canvas.height);
  gl.clearColor(0.04, 0.05, 0.07, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST);
  const attach = (buf) => { gl.bindBuffer(gl.ARRAY_BUFFER, buf.b); gl.enableVertexAttribArray(buf.loc); gl.vertexAttribPointer(buf.loc, 3, gl.FLOAT, false, 0, 0); };
  attach(s.posBuf);
  attach(s.colours[document.querySelector("input[name=colour]:checked").value]);
  gl.uniformMatrix4fv(gl.getUniformLocation(s.prog, "m"), false, matrix(canvas.width / canvas.height));
  gl.drawArrays(gl.POINTS, 0, s.count);
}

function matrix(aspect) {
  // perspective * translate(0, 0, -dist) * rotX(pitch) * rotY(yaw) * translate(-centre), column-major
  const s = state.cloud, f = 1 / Math.tan(0.5), n = 0.1, far = s.radius * 20 + state.dist;
  const cy = Math.cos(state.yaw), sy = Math.sin(state.yaw), cp = Math.cos(state.pitch), sp = Math.sin(state.pitch);
  const r = [cy, sp * sy, -cp * sy, 0, 0, cp, sp, 0, sy, -sp * cy, cp * cy, 0];
  const [x, y, z] = s.centre;
  const t = [-(r[0] * x + r[4] * y + r[8] * z), -(r[1] * x + r[5] * y + r[9] * z), -(r[2] * x + r[6] * y + r[10] * z) - state.dist];
  const view = [r[0], r[1], r[2], 0, r[4], r[5], r[6], 0, r[8], r[9], r[10], 0, t[0], t[1], t[2], 1];
  const proj = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + n) / (n - far), -1, 0, 0, 2 * far * n / (n - far), 0];
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let rr = 0; rr < 4; rr++) {
    let v = 0;
    for (let k = 0; k < 4; k++) v += proj[k * 4 + rr] * view[c * 4 + k];
    out[c * 4 + rr] = v;
  }
  return out;
}

function orbitControls() {
  const canvas = $("cloud");
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; canvas.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    state.yaw += (e.clientX - drag[0]) * 0.008;
    state.pitch = Math.max(-1.5, Math.min(1.5, state.pitch + (e.clientY - drag[1]) * 0.008));
    drag = [e.clientX, e.clientY];
    render();
  });
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); state.dist *= Math.exp(e.deltaY * 0.001); render(); }, { passive: false });
  document.querySelectorAll("input[name=colour]").forEach((r) => r.addEventListener("change", render));
}

async function run() {
  if (!state.file) return;
  showError("");
  $("run").disabled = true;
  const outputs = ["segmentation", "depth", "summary"];
  if (document.querySelector("#outputs input[value=pointcloud]").checked) outputs.push("pointcloud");
  const query = new URLSearchParams({ outputs: outputs.join(","), depth_format: "npy", stride: $("stride").value,
                                       fast: $("fast").checked ? "true" : "false" });
  const body = new FormData();
  body.append("image", state.file, state.file.name);
  $("status").textContent = "running...";
  const t0 = performance.now();
  try {
    const resp = await fetch(`v1/models/${encodeURIComponent(currentModel().name)}/predict?${query}`,
                             { method: "POST", body, headers: { Accept: "multipart/form-data" } });
    if (!resp.ok) throw new Error(await problemText(resp));
    const form = await resp.formData();
    const total = performance.now() - t0;
    draw($("segmentation"), await createImageBitmap(form.get("segmentation")));
    showDepth(parseNpy(await form.get("depth").arrayBuffer()));
    const summary = JSON.parse(await form.get("summary").text());
    legend(summary);
    timings(summary, total);
    if (form.get("pointcloud")) setupCloud(parsePly(await form.get("pointcloud").arrayBuffer()));
    $("status").textContent = `done in ${total.toFixed(0)} ms`;
  } catch (e) {
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
    tr.innerHTML = "<td></td><td></td>";
    tr.children[0].textContent = k;
    tr.children[1].textContent = v.toFixed(1);
    return tr;
  }));
  $("timings").hidden = false;
}

$("file").addEventListener("change", (e) => pick(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files[0]); });
$("run").addEventListener("click", run);
$("opacity").addEventListener("input", (e) => { $("segmentation").style.opacity = e.target.value / 100; });
$("segmentation").style.opacity = 0.6;
$("model").addEventListener("change", () => legend(null));
orbitControls();
loadModels().catch((e) => showError(`cannot list models: ${e.message}`));
"""#
}
