"""Screenshots of each section of an experiment's report.html, taken in headless Chromium.

    python scripts/report_screenshots.py ~/ray_results/mnist-mxnet-random docs/report

writes ``<section>.png`` (summary, history, parallel, importance, slice, contour, intermediate,
timeline, trials) into the output folder. Needs the ``playwright`` package and the system
Chromium (/usr/bin/chromium); Playwright's own browser download is not used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def screenshots(report: Path, out: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.add_style_tag(content="nav{position:static}")  # the sticky bar would cover each shot
            for section in page.query_selector_all("section"):
                key = section.get_attribute("id")
                if key == "trials":
                    page.evaluate("document.querySelector('.scroll').style.maxHeight = '420px'")
                if key == "summary":
                    page.evaluate("document.querySelector('#summary details').open = true")
                path = out / f"{key}.png"
                section.screenshot(path=str(path))
                paths.append(path)
        finally:
            browser.close()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment_dir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for path in screenshots(args.experiment_dir / "report.html", args.out):
        print(path)


if __name__ == "__main__":
    main()
