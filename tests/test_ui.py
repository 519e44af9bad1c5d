"""The MLflow UI and the report, as a user sees them: headless Chromium (Debian's, driven by
Playwright) against a real tracking server that a tiny sweep logged to. Screenshots go to
test-output/ui/."""

import shutil
from pathlib import Path

import pytest

from mlflow_server import MlflowServer, ServerConfig, free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = REPO / "test-output" / "ui"
COMMAND = "run_sweep.py --space sweeps/vae_beta.py --experiment ui"  # the Source column shows its program
WAIT_MS = 60_000  # the UI is a big single-page app; a busy 2-core machine renders it slowly


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (the Makefile installs it)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _loaded_images(page) -> list[tuple[str, int]]:
    return page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src') || '', e.naturalWidth])")


def _image_at_step(page, charts_url: str, key: str, step: int) -> None:
    """Open a run's charts filtered to image ``key``, move its slider to ``step`` (the card opens
    at step 0, before the first epoch) and wait for that step's image to load."""
    page.goto(charts_url, wait_until="load")
    page.get_by_placeholder("Search metric charts").fill(key)
    card = page.locator("div").filter(has=page.get_by_text(key, exact=True)).filter(has=page.get_by_role("slider"))
    slider = card.last.get_by_role("slider").last
    slider.wait_for(timeout=WAIT_MS)
    assert int(slider.get_attribute("aria-valuemax")) > int(slider.get_attribute("aria-valuemin"))  # >= 2 epochs
    while int(slider.get_attribute("aria-valuenow") or 0) < step:
        slider.press("ArrowRight")
    page.wait_for_function(
        f"() => [...document.images].some(i => i.src.includes('{key}%2Bstep%2B{step}%2B') && i.naturalWidth > 0)",
        timeout=WAIT_MS,
    )


@pytest.mark.slow  # a sweep, a server and a browser: over a minute, so make test-slow
def test_mlflow_ui_lists_the_sweep_its_trials_metrics_figures_and_best_model(ray_session, browser, tmp_path):
    from mlflow.tracking import MlflowClient

    from common.sweep.driver import SweepOptions
    from trainables.sweep import run

    SHOTS.mkdir(parents=True, exist_ok=True)
    cfg = ServerConfig(
        backend_store_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_dir=str(tmp_path / "art"),
        port=free_port(),
        workers=1,
    )
    with MlflowServer(cfg, log_file=tmp_path / "server.log") as server:
        summary = run(
            SweepOptions(
                space=str(REPO / "sweeps" / "vae_beta.py"),
                data="synthetic",
                tracking_uri=server.url,
                num_samples=2,
                max_epochs=2,  # two steps on the image slider
                eval_n=0,
                storage=str(tmp_path / "ray_results"),
                out=str(tmp_path / "report"),
                experiment="ui",
                command=COMMAND,
                optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                overrides=(
                    ("eval_samples", "32"),
                    ("batch_size", "64"),
                    ("base_channels", "8"),
                    ("hidden_dim", "32"),
                    ("val_size", "128"),
                ),
            )
        )
        client = MlflowClient(server.url)
        exp = client.get_experiment_by_name("ui").experiment_id
        parent = client.get_run(summary.parent_run_id)
        children = client.search_runs([exp], "tags.`sweep.role` = 'trial'")
        best = summary.best["vae"].mlflow_run_id
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        # The link the sweep prints opens the model-training view on its runs (MLflow 3's UI
        # otherwise opens GenAI's traces): the parent run, expanded to its trials and their datasets.
        assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
        assert summary.mlflow_ui == f"{server.url}/#/experiments/{exp}?workflowType=machine_learning"
        page.goto(summary.mlflow_ui, wait_until="load")
        row = page.get_by_role("row").filter(has_text=parent.info.run_name)
        row.wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Traces", exact=True).count() <= 1  # the side nav's link, not GenAI's Overview
        row.get_by_role("button").first.click()  # the expander of a parent run
        for child in children:
            page.get_by_text(child.info.run_name, exact=True).first.wait_for(timeout=WAIT_MS)
        page.get_by_text("synthetic:train").first.wait_for(timeout=WAIT_MS)  # the Dataset column
        page.get_by_text("run_sweep.py", exact=True).first.wait_for(timeout=WAIT_MS)  # the Source column
        page.screenshot(path=str(SHOTS / "1-experiment-runs.png"))
        import getpass

        page.goto(f"{server.url}/#/experiments/{exp}/runs/{best}", wait_until="load")  # who ran it
        page.get_by_text("Created by").first.wait_for(timeout=WAIT_MS)
        assert page.get_by_text(getpass.getuser(), exact=True).count() >= 1

        # A trial: its metrics, then its figures through the server's artifact store.
        page.goto(f"{server.url}/#/experiments/{exp}/runs/{best}", wait_until="load")
        page.get_by_text("val_mse_kl").first.wait_for(timeout=WAIT_MS)
        page.get_by_text("val_classifier_fd").first.wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(SHOTS / "2-trial-metrics.png"))
        page.goto(f"{server.url}/#/experiments/{exp}/runs/{best}/artifacts", wait_until="load")
        page.get_by_text("figures", exact=True).first.wait_for(timeout=WAIT_MS)
        page.get_by_text("figures", exact=True).first.click()
        page.get_by_text("samples.png").first.click(timeout=WAIT_MS)
        page.wait_for_function(
            "() => [...document.images].some(i => i.src.startsWith('blob:') && i.naturalWidth > 0)", timeout=WAIT_MS
        )
        page.screenshot(path=str(SHOTS / "3-trial-figure.png"))

        # Its system metrics, charted; its sample and reconstruction grids with a slider over the epochs.
        page.goto(f"{server.url}/#/experiments/{exp}/runs/{best}/system-metrics", wait_until="load")
        page.get_by_text("cpu_utilization_percentage").first.wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(SHOTS / "3b-system-metrics.png"))
        _image_at_step(page, f"{server.url}/#/experiments/{exp}/runs/{best}/model-metrics", "samples", 1)
        page.screenshot(path=str(SHOTS / "3c-sample-grids-by-epoch.png"))

        # The parent: its search space, its trials side by side (best epochs; and epoch by epoch on
        # the slider), and the report's HTML with its images, served from the artifact store.
        page.goto(f"{server.url}/#/experiments/{exp}/runs/{parent.info.run_id}/artifacts", wait_until="load")
        page.get_by_text("space", exact=True).first.click(timeout=WAIT_MS)
        page.get_by_text("search_space.md").first.click(timeout=WAIT_MS)
        page.get_by_text("one of 16, 32, 64, 128, 256").first.wait_for(timeout=WAIT_MS)  # latent_dim's row
        page.screenshot(path=str(SHOTS / "3d-parent-search-space.png"))
        page.get_by_text("report", exact=True).first.click(timeout=WAIT_MS)
        page.get_by_text("index.html").first.click(timeout=WAIT_MS)
        report_frame = page.frame_locator("iframe").first
        report_frame.get_by_text("At a glance").first.wait_for(timeout=WAIT_MS)
        framed = report_frame.locator("img")
        framed.first.wait_for(timeout=WAIT_MS)
        widths = framed.evaluate_all("els => els.map(e => e.naturalWidth)")
        assert len(widths) >= 3 and all(w > 0 for w in widths), widths
        page.screenshot(path=str(SHOTS / "3e-report-in-mlflow.png"))
        parent_charts = f"{server.url}/#/experiments/{exp}/runs/{parent.info.run_id}/model-metrics"
        _image_at_step(page, parent_charts, "vae_trials", 1)
        assert page.locator("img[src*='vae_trials_best']").evaluate("e => e.naturalWidth") > 0
        page.screenshot(path=str(SHOTS / "3f-trials-side-by-side.png"))

        # The experiment's Models tab: the best model, logged from its trial, with that trial's metrics.
        model_id = summary.best["vae"].model_id
        page.goto(f"{server.url}/#/experiments/{exp}/models", wait_until="load")
        page.get_by_text("best_vae", exact=True).first.wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(SHOTS / "4a-models-tab.png"))
        page.goto(f"{server.url}/#/experiments/{exp}/models/{model_id}", wait_until="load")
        page.get_by_text("val_bpd", exact=True).first.wait_for(timeout=WAIT_MS)  # the metric it was chosen on
        assert page.get_by_text("system/", exact=False).count() == 0  # model metrics only, not the node's
        page.screenshot(path=str(SHOTS / "4b-logged-model.png"), full_page=True)

        # The registered best model, with its alias.
        page.goto(f"{server.url}/#/models/ui-vae", wait_until="load")
        page.get_by_text("@ best").or_(page.get_by_text("best", exact=True)).first.wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(SHOTS / "4-registered-model.png"))

    # The report the sweep wrote opens with 'At a glance' and its trade-off scatter; every image loads.
    report = tmp_path / "report" / "index.html"
    page.goto(report.as_uri(), wait_until="load")
    headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
    assert headings[0] == "At a glance" and headings[-1] == "Appendix: run metadata", headings
    scatter = page.locator("img[alt='glance_tradeoff']")
    assert scatter.evaluate("e => e.naturalWidth") > 300
    scatter.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "5-report-at-a-glance.png"))
    images = _loaded_images(page)
    assert len(images) >= 3 and all(width > 0 for _, width in images), images
    page.screenshot(path=str(SHOTS / "6-report.png"), full_page=True)
    shutil.copy(tmp_path / "server.log", SHOTS / "server.log")
