#!/usr/bin/env bash
# The slides experiment (Conv-VAE 20 epochs, DCGAN 40 epochs, seed 42, 10k train subset) and its
# report in one command. Extra arguments go to run_sweep.py, e.g. --data path/to/cifar10.tar.gz
set -euo pipefail
cd "$(dirname "$0")"
make venv
.venv/bin/python run_sweep.py --space sweeps/slides.py --experiment slides "$@"
