"""Build the report site from results stores and save a screenshot of its leaderboard (docs/img/leaderboard.png).

    python benchmarks/report_screenshot.py --store runs/results.sqlite [--store ...] --out /tmp/site \
        --png docs/img/leaderboard.png

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (./setup.sh installs both).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from blurbkit.experiments.site.build import build_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True, help="where the site is written")
    parser.add_argument("--png", type=Path, default=Path("docs/img/leaderboard.png"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--data", help="the runs' test data, if not where they recorded it")
    args = parser.parse_args()
    build_site(args.store, args.out, data=args.data)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": 800}, device_scale_factor=1)
        page.goto((args.out / "index.html").resolve().as_uri())
        # As wide as the whole table (no part of it scrolled out of the picture).
        wide = page.evaluate("document.querySelector('#leaderboard').scrollWidth") + 60
        if wide > args.width:
            args.width = wide
            page.set_viewport_size({"width": wide, "height": 800})
        page.locator("#leaderboard thead th", has_text="BLURB").click()  # best first, as a reader sorts it
        args.png.parent.mkdir(parents=True, exist_ok=True)
        # The title, the table and its legend: what the README shows.
        legend = page.locator("#leaderboard").locator("xpath=ancestor::div[1]/following-sibling::p[1]").bounding_box()
        page.screenshot(path=str(args.png), clip={"x": 0, "y": 0, "width": args.width,
                                                  "height": legend["y"] + legend["height"] + 12})
        browser.close()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
