"""The README's two pictures, made from real runs, never by hand.

Run (from the repository root)::

    .venv/bin/python bench/pictures.py samples --out docs/img/samples.png \\
        --run sqlite:///$HOME/experiments/NAME/mlflow.db RUN_ID "VAE winners, seed 45" \\
        --run sqlite:///$HOME/experiments/OTHER/mlflow.db RUN_ID "DCGAN winners, seed 45"
    .venv/bin/python bench/pictures.py glance report/index.html --out docs/img/glance.png

``samples``: each run's sample grid at its selected epoch (the MLflow artifact ``figures/samples.png``
its trial logged with best.pt), side by side, each under its label and the run id. ``glance``: the
report's "At a glance" section as headless Chromium (Debian's, via Playwright) renders it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.base.figures import GAP, LABEL_H, side_by_side  # noqa: E402, F401  (tests read GAP, LABEL_H)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def samples(runs: list[tuple[str, str, str]], out: Path, scale: int = 2) -> Path:
    """runs: (tracking URI, run id, label) each; their ``figures/samples.png`` grids, side by side."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        grids = [
            (
                MlflowClient(uri).download_artifacts(run_id, "figures/samples.png", f"{tmp}/{i}"),
                f"{label} (run {run_id[:8]})",
            )
            for i, (uri, run_id, label) in enumerate(runs)
        ]
        out.parent.mkdir(parents=True, exist_ok=True)
        side_by_side(grids, scale).save(out)
    return out


def glance(report: Path, out: Path, width: int = 1100) -> Path:
    """The report's 'At a glance' section (from its h2 to the next h2) as a PNG."""
    from playwright.sync_api import sync_playwright

    keep_section = """() => {
        const body = document.body; let inside = false;
        for (const el of Array.from(body.children)) {
            if (el.tagName === 'H2') inside = el.textContent.trim().startsWith('At a glance');
            if (!inside && el.tagName !== 'H1') el.style.display = 'none';
        }
    }"""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 100})
        page.goto(report.resolve().as_uri(), wait_until="load")
        page.evaluate(keep_section)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("samples", help="runs' best-epoch sample grids side by side")
    s.add_argument("--run", nargs=3, action="append", required=True, metavar=("URI", "RUN_ID", "LABEL"))
    s.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("glance", help="the report's 'At a glance' section, rendered")
    g.add_argument("report", type=Path, help="a report's index.html")
    g.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.what == "glance" and not args.report.is_file():
        print(f"error: no report at {args.report}; build one with run_sweep.py --report EXPERIMENT", file=sys.stderr)
        raise SystemExit(2)
    made = samples([tuple(r) for r in args.run], args.out) if args.what == "samples" else glance(args.report, args.out)
    print(made)


if __name__ == "__main__":
    main()
