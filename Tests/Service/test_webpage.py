"""The page at GET / in a real headless browser (Debian's chromium + chromedriver via Selenium),
reached directly and through a path prefix, as behind an ingress or KServe route."""
import http.client
import http.server
import os
import pathlib
import shutil
import threading
import time

import pytest

from service import ROOT, Server

ARTIFACTS = ROOT / "out" / "test-artifacts"
FRAME = ROOT / "examples" / "street.png"


def browser():
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("python3-selenium is not installed (make setup installs it)")
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (make setup installs them)")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
              "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


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


def use_page(driver, url, shot):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    legend = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert [t.split(" ")[0] for t in legend] == ["sky", "building", "road", "sidewalk", "vegetation", "car"], legend
    upload = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].style.display = 'block'", upload)
    upload.send_keys(str(FRAME))
    wait.until(lambda d: not d.find_element(By.ID, "run").get_property("disabled"))
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "failed")))
    assert driver.find_element(By.ID, "status").text.startswith("done"), driver.find_element(By.ID, "error").text
    time.sleep(0.3)
    for cid in ["input", "segmentation", "depth", "cloud"]:
        ink = canvas_ink(driver, cid)
        assert ink > 0.05, f"canvas {cid} is blank ({ink:.3f})"
    rows = driver.find_elements(By.CSS_SELECTOR, "#timing-rows tr")
    assert any("network" in r.text for r in rows)
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
        use_page(d, f"http://127.0.0.1:{proxy.server_address[1]}/hydra/", "webpage-prefix.png")
    finally:
        d.quit()
        if proxy:
            proxy.shutdown()
        s.stop()


def test_page_shows_service_errors():
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    s = Server("--max-pixels", "10000")
    d = browser()
    try:
        d.get(f"http://127.0.0.1:{s.port}/")
        WebDriverWait(d, 30).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#model option"))
        upload = d.find_element(By.ID, "file")
        d.execute_script("arguments[0].style.display = 'block'", upload)
        upload.send_keys(str(FRAME))
        d.find_element(By.ID, "run").click()
        WebDriverWait(d, 30).until(lambda x: x.find_element(By.ID, "status").text == "failed")
        err = d.find_element(By.ID, "error")
        assert err.is_displayed() and err.text.startswith("413 Content Too Large: image is 1226x370"), err.text
    finally:
        d.quit()
        s.stop()
