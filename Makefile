# Two commands set up a fresh machine: `make sweep` (the main job) and `make test`.
# Both create or refresh .venv when setup.cfg / pyproject.toml change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=
# The main job on its embedded defaults: a VAE sweep and a DCGAN sweep into one experiment,
# then the comparison report (report/index.html). Add e.g. ARGS="--data PATH" to use local data.
EXPERIMENT ?= vae_vs_dcgan

.PHONY: venv lint sweep test test-cluster test-faults test-slow bench smoke clean

$(STAMP): setup.cfg pyproject.toml
	# System packages (Debian's, as root via apt-get): PostgreSQL and headless Chromium for the
	# tracking-server and UI tests.
	@missing=""; ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  test -x /usr/bin/chromium || missing="$$missing chromium chromium-driver"; \
	  if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	    || echo "note: could not install$$missing; the tests that need them will skip"; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned: pip takes these two from the local disk here.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

sweep: $(STAMP)
	$(PY) run_sweep.py --space sweeps/vae_beta.py --experiment $(EXPERIMENT) --no-report $(ARGS)
	$(PY) run_sweep.py --space sweeps/gan_ttur.py --experiment $(EXPERIMENT) --no-report $(ARGS)
	$(PY) run_sweep.py --report $(EXPERIMENT) $(ARGS)

smoke: $(STAMP)
	$(PY) run_sweep.py --space sweeps/gan_ttur.py --smoke-test $(ARGS)

# ruff (pyproject.toml, [tool.ruff]): the formatter's check and the linter, on the whole tree;
# import-linter ([tool.importlinter]): no floor imports a floor above it, sweeps/ and mlflow_server/
# import nothing of the tool, nothing imports run_sweep.py, the report's sections are independent.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not cluster and not faults" -q --durations=30 $(ARGS)

# Simulated multi-node cluster (ray.cluster_utils) and docs/cluster.md's commands: their own
# pytest process, because they start and stop whole Ray clusters (.ci/run runs it after make test).
test-cluster: $(STAMP)
	$(PY) -m pytest -m cluster -q $(ARGS)

# Whole sweeps with faults injected (drivers and workers killed, servers dying, PostgreSQL
# restarted, chaos) or under load (8 trials logging at once): a minute or more each, so outside
# make test's budget; .ci/run runs them.
test-faults: $(STAMP)
	$(PY) -m pytest -m faults -q --durations=10 $(ARGS)

# Checks past make test's budget (real CIFAR-10 from ../shared, the GPU bench's rehearsal, PBT sweeps, the UI,
# the plugin example end to end, a three-family search, the default console of a whole sweep): minutes;
# .ci/run runs them.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q $(ARGS)

bench: $(STAMP)
	$(PY) bench/throughput.py $(ARGS)

clean:
	rm -rf report ray_results single_trial mlflow.db mlflow.db.lock mlartifacts optuna.db
