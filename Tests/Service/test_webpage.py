"""The page at GET / in a real headless browser (Debian's chromium + chromedriver via Selenium),
reached directly and through a path prefix, as behind an ingress or KServe route."""
import http.client
import http.server
import shutil
import sys
import threading

import cv2
import pytest

from service import ROOT, Server

ARTIFACTS = ROOT / "out" / "test-artifacts"
SAMPLE = ROOT / "Sources" / "HydraServer" / "Resources" / "web" / "sample.jpg"  # what the sample button loads


def browser(width=1400):
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (make setup installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (make setup installs it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},1100",
              "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]:
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    # Headless Chrome keeps windows at least 500 px wide: a phone's width needs the device metrics.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": 1100, "deviceScaleFactor": 1, "mobile": False})
    return d


class PrefixProxy(http.server.ThreadingHTTPServer):
    """Forwards /hydra/... to the service's /..., as an ingress with a path prefix would."""

    def __init__(self, upstream):
        self.upstream = upstream

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                if not self.path.startswith("/hydra/"):
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                c.request(self.command, self.path[len("/hydra"):], body=body or None, headers=headers)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass
        super().__init__(("127.0.0.1", 0), Handler)


def canvas_ink(driver, cid):
    """Fraction of non-black pixels of a canvas (2D or WebGL), read through toDataURL."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const src = document.getElementById(arguments[0]);
        if (!src.width || !src.height) { done(0); return; }
        const img = new Image();
        img.onload = () => {
          const c = document.createElement('canvas'); c.width = src.width; c.height = src.height;
          const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
          const d = ctx.getImageData(0, 0, c.width, c.height).data;
          let ink = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 40) ink++;
          done(ink / (d.length / 4));
        };
        img.src = src.toDataURL();
    """, cid)


def wait(driver, condition, seconds=60):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, seconds).until(condition)


def status(driver):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, "status").text


def open_page(driver, url):
    from selenium.webdriver.common.by import By
    driver.get(url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))


def run_frame(driver, path=None):
    """Uploads `path` (or presses the sample button) and runs it; returns the final status text."""
    from selenium.webdriver.common.by import By
    if path is None:
        driver.find_element(By.ID, "sample").click()
    else:
        upload = driver.find_element(By.ID, "file")
        driver.execute_script("arguments[0].style.display = 'block'", upload)
        upload.send_keys(str(path))
    wait(driver, lambda d: not d.find_element(By.ID, "run").get_property("disabled"))
    driver.find_element(By.ID, "run").click()
    wait(driver, lambda d: status(d).startswith(("done", "failed")))
    return status(driver)


def overflow(driver):
    """How far the page is wider than the window (0 when nothing overflows)."""
    return driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")


def use_page(driver, url, shot, path=None):
    from selenium.webdriver.common.by import By
    open_page(driver, url)
    legend = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert [t.split(" ")[0] for t in legend] == ["sky", "building", "road", "sidewalk", "vegetation", "car"], legend
    done = run_frame(driver, path)
    assert done.startswith("done"), driver.find_element(By.ID, "error").text
    wait(driver, lambda d: canvas_ink(d, "cloud") > 0.05, 10)
    for cid in ["input", "segmentation", "depth", "cloud"]:
        ink = canvas_ink(driver, cid)
        assert ink > 0.05, f"canvas {cid} is blank ({ink:.3f})"
    rows = driver.find_elements(By.CSS_SELECTOR, "#timing-rows tr")
    assert any("network" in r.text for r in rows)
    links = [a.get_attribute("download") for a in driver.find_elements(By.CSS_SELECTOR, "#download-links a")]
    assert any(n.endswith("_segmentation.png") for n in links) and any(n.endswith(".ply") for n in links), links
    ticks = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#ticks span")]
    assert len(ticks) >= 2 and all(t.endswith(" m") for t in ticks), ticks
    assert overflow(driver) <= 0, "the page is wider than the window"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / shot))


def test_page_shows_segmentation_depth_and_point_cloud():
    s = Server("--workers", "1", "--threads-per-worker", "2")
    proxy = None
    d = browser()
    try:
        use_page(d, f"http://127.0.0.1:{s.port}/", "webpage.png")
        proxy = PrefixProxy(s.port)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        use_page(d, f"http://127.0.0.1:{proxy.server_address[1]}/hydra/", "webpage-prefix.png", path=SAMPLE)
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.request("GET", "/favicon.ico")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "image/x-icon" and r.read()[:4] == b"\0\0\1\0"
    finally:
        d.quit()
        if proxy:
            proxy.shutdown()
        s.stop()


def scene(path, w, h, seed):
    """A frame of the project's scene generator (what the built-in model was trained on)."""
    sys.path.insert(0, str(ROOT / "training"))
    from scenes import render
    cv2.imwrite(str(path), cv2.cvtColor(render(seed, w, h)[0], cv2.COLOR_RGB2BGR))
    return path


def test_page_fits_a_phone_and_shows_a_4_3_frame(tmp_path):
    s = Server("--workers", "1", "--threads-per-worker", "2")
    d = browser(width=420)
    try:
        path = scene(tmp_path / "four-three.png", 640, 480, seed=4243)
        use_page(d, f"http://127.0.0.1:{s.port}/", "webpage-420.png", path=path)
        assert cv2.imread(str(ARTIFACTS / "webpage-420.png")) is not None
    finally:
        d.quit()
        s.stop()


def test_page_shows_service_errors_and_drops_the_last_results(tmp_path):
    from selenium.webdriver.common.by import By
    s = Server("--max-pixels", "200000")
    d = browser()
    try:
        open_page(d, f"http://127.0.0.1:{s.port}/")
        small = scene(tmp_path / "small.png", 320, 240, seed=4244)
        assert run_frame(d, small).startswith("done")
        assert canvas_ink(d, "depth") > 0.05
        assert run_frame(d) == "failed"  # the 1226x370 sample is over the limit
        err = d.find_element(By.ID, "error")
        assert err.is_displayed() and err.text.startswith("413 Content Too Large: image is 1226x370"), err.text
        for cid in ["segmentation", "depth"]:
            assert d.find_element(By.ID, cid).get_property("width") == 0, f"{cid} still shows the last frame"
        assert not d.find_element(By.ID, "downloads").is_displayed()
        assert d.find_element(By.ID, "probe").text == ""
    finally:
        d.quit()
        s.stop()
