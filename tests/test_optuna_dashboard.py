"""The optuna-dashboard this project installs reads the Optuna studies its sweeps write (Optuna 5):
docs/browsing.md's (and the README's) ``optuna-dashboard sqlite:///optuna.db``, served in-process through its WSGI app."""

from __future__ import annotations

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # no access log in the test output
        pass


def test_the_dashboard_serves_a_study_and_its_trials(tmp_path):
    from optuna_dashboard import wsgi

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=url, study_name="gan_ttur/dcgan", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("lr_g", 1e-4, 1e-3, log=True), n_trials=3)
    server = make_server("127.0.0.1", 0, wsgi(url), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/api/studies"
        studies = json.loads(urllib.request.urlopen(base, timeout=30).read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["gan_ttur/dcgan"]
        detail = json.loads(urllib.request.urlopen(f"{base}/{studies[0]['study_id']}?after=0", timeout=30).read())
    finally:
        server.shutdown()
    assert [t["state"] for t in detail["trials"]] == ["Complete"] * 3
    assert [p["name"] for p in detail["trials"][0]["params"]] == ["lr_g"]
