"""The HTML report in a real browser: headless Chromium renders it, every plot decodes and paints.

Skipped when no Chromium is installed (Debian: ``apt-get install chromium``; ``.ci/run``
installs it when missing).
"""

import json
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdjax import report
from fdjax.report import plots

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed"),
    # Run next to each other, on one xdist worker (tests/conftest.py): the three module-scoped
    # reports are diagnosed once.
    pytest.mark.xdist_group("browser"),
]

WIDTH = 1280

# Appended to a copy of the page: after load, list every image's decoded size and box.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => {
    const r = i.getBoundingClientRect();
    return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete,
            x: r.left + scrollX, y: r.top + scrollY, bw: r.width, bh: r.height};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({imgs, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


# After load: where each table's status column is, and whether the page itself scrolls sideways.
TABLE_PROBE = """<script>
window.addEventListener("load", () => {
  const heads = [...document.querySelectorAll("table")].map(t => {
    const th = t.querySelector("thead th");
    const r = th.getBoundingClientRect();
    return {section: t.closest("section").id, text: th.textContent, cls: th.className,
            left: r.left, right: r.right, width: r.width};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({heads, viewport: document.documentElement.clientWidth,
                                    scroll: document.documentElement.scrollWidth});
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args, timeout=120):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--force-device-scale-factor=1",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """Console messages and uncaught errors of the page (Chromium logs them as CONSOLE lines)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    def loss(params, x):
        h = jnp.maximum(x @ params["w1"], 0.0)
        return jnp.mean((h @ params["w2"] - 1.0) ** 2)

    params = {"w1": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "w2": jnp.linspace(0.5, -0.5, 4)}
    x = jnp.linspace(-1.0, 2.0, 15).reshape(5, 3)
    doc = report.diagnose(loss, params, x, job=report.Job(resolution=9, num_steps=12), target="browser-test")
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(report.render(doc, "html"))
    return path


@pytest.fixture(scope="module")
def failing_page(tmp_path_factory):
    """A check that fails: a tanh whose custom VJP is 1 % too large (every table is filled)."""

    @jax.custom_vjp
    def tanh(x):
        return jnp.tanh(x)

    tanh.defvjp(lambda x: (jnp.tanh(x), jnp.tanh(x)), lambda y, g: (g * (1 - y**2) * 1.01,))

    def loss(params, x):
        return jnp.mean((tanh(x @ params["w1"]) @ params["w2"] - 1.0) ** 2)

    params = {"w1": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "w2": jnp.linspace(0.5, -0.5, 4)}
    x = jnp.linspace(-1.0, 2.0, 15).reshape(5, 3)
    # num_steps as in ``page`` (the same shapes): the sweep's ladder analysis compiles once.
    doc = report.diagnose(loss, params, x, job=report.Job(resolution=5, num_steps=12), target="failing")
    assert doc["verdict"]["passed"] is False
    path = tmp_path_factory.mktemp("browser") / "failing.html"
    path.write_text(report.render(doc, "html"))
    return path


@pytest.fixture(scope="module")
def inconclusive_page(tmp_path_factory):
    """A check that is inconclusive: |a| at a = 0 (kinks) beside a smooth layer."""

    def loss(params, x):
        return jnp.sum(jnp.abs(params["a"])) + jnp.mean((jnp.tanh(x @ params["w1"]) - 1.0) ** 2)

    params = {"a": jnp.zeros(3), "w1": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    x = jnp.linspace(-1.0, 2.0, 15).reshape(5, 3)
    doc = report.diagnose(loss, params, x, job=report.Job(resolution=5, num_steps=10), target="inconclusive")
    assert doc["verdict"]["status"] == "inconclusive"
    path = tmp_path_factory.mktemp("browser") / "inconclusive.html"
    path.write_text(report.render(doc, "html"))
    return path


def probe(page, tmp_path, script, width):
    probe_page = tmp_path / f"probe-{width}.html"
    probe_page.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = chromium(
        "--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1000", probe_page.as_uri()
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the page did not finish loading"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<"))


@pytest.mark.parametrize("width", [760, 1280])
@pytest.mark.parametrize("which", ["failing_page", "inconclusive_page"])
def test_status_column_is_visible_without_scrolling(which, tmp_path, width, request):
    info = probe(request.getfixturevalue(which), tmp_path, TABLE_PROBE, width)
    assert info["viewport"] <= width
    assert info["scroll"] <= info["viewport"], "the page scrolls sideways; a wide table should scroll inside"
    sections = {h["section"] for h in info["heads"]}
    assert {"leaves", "worst", "directions", "sweep", "norms"} <= sections
    for h in info["heads"]:
        assert h["text"] in ("status", "flag") and "status" in h["cls"], h
        assert 0 <= h["left"] and h["right"] <= info["viewport"], (
            f"{h['section']}: status column off-screen {h}"
        )


@pytest.mark.parametrize("width", [760, 1280])
def test_plot_fonts_are_readable_as_shown(failing_page, tmp_path, width):
    """Every figure uses fonts of at least FONT["min"] points at its natural size; as shown it
    is scaled by its box width / natural width, so the smallest text is at least 10.5 px."""
    imgs = probe(failing_page, tmp_path, PROBE, width)["imgs"]
    assert len(imgs) >= 5
    for img in imgs:
        px = plots.FONT["min"] * 96 / 72 * img["bw"] / img["w"]
        assert px >= 10.5, f"plot {img['alt']} shown at {img['bw']:.0f} of {img['w']} px: {px:.1f} px text"


def test_report_renders_its_plots(page, tmp_path):
    from PIL import Image

    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(
        "--dump-dom", "--virtual-time-budget=5000", f"--window-size={WIDTH},1000", probe_page.as_uri()
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the page did not finish loading"
    info = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    imgs = info["imgs"]
    assert len(imgs) >= 5
    for img in imgs:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, (
            f"plot {img['alt']} did not decode: {img}"
        )

    # Screenshot the original page (no probe script) tall enough for everything.
    height = int(info["height"]) + 20
    shot = tmp_path / "report.png"
    r = chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{height}", page.as_uri())
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    assert console_errors(r.stderr) == []
    assert console_errors(dom.stderr) == []

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[1] == WIDTH
    for img in imgs:
        x0, y0 = int(img["x"]) + 2, int(img["y"]) + 2
        x1, y1 = int(img["x"] + img["bw"]) - 2, int(img["y"] + img["bh"]) - 2
        region = pixels[y0:y1, x0:x1]
        assert region.size, f"plot {img['alt']} is outside the screenshot"
        # A painted plot has ink: many non-white pixels and several distinct colours.
        ink = np.mean(np.any(region < 200, axis=-1))
        colours = len(np.unique((region[::3, ::3] // 32).reshape(-1, 3), axis=0))
        assert ink > 0.005 and colours >= 6, (
            f"plot {img['alt']} looks blank (ink {ink:.3f}, colours {colours})"
        )


def test_page_has_no_console_errors_and_no_requests(page):
    """A page that requests anything (a font, a script) would fail to load offline."""
    html = page.read_text()
    assert "<link" not in html and "@import" not in html and "url(" not in html
    r = chromium("--dump-dom", f"--window-size={WIDTH},800", page.as_uri())
    assert r.returncode == 0
    assert console_errors(r.stderr) == []
    assert "Per-leaf results" in r.stdout
