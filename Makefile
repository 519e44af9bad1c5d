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

.PHONY: venv sweep test test-slow bench smoke clean

$(STAMP): setup.cfg pyproject.toml
	# System packages: PostgreSQL for the tracking-server tests (Debian's, as root via apt-get).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { command -v apt-get >/dev/null && \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } || \
	  echo "note: PostgreSQL not installed; its tests will skip"
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

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q $(ARGS)

bench: $(STAMP)
	$(PY) bench/throughput.py $(ARGS)

clean:
	rm -rf report ray_results single_trial mlflow.db mlartifacts
