"""The DCGAN's layout study: which G and D layouts within the slides' counts train best.

The slides give the DCGAN's layer lists and counts (G 1.24M, D 2.76M), not the widths, the kernel
size or whether a hidden FC sits before G's 4x4 map and D's logit. Each run below is one G x D
pair within ±10% of both counts (``param_budget``), all with ``sweeps/winners.py``'s DCGAN
training (``_DCGAN_FC``: hinge, spectral norm, TTUR 3.9, G's EMA, batch 128) and seed, so a
difference is the layout's. The runs without a hidden FC cost more per epoch than their counts
say: their convs work on wider maps (a forward pass per image: G 59.6 and 65.0 MFLOP against
28.4, D 137.4 against 39.3, by ``torch.utils.flop_counter``), so a CPU screen runs them for fewer
epochs (``--max-epochs``) against the same epoch of the winners' own run, and the best goes on to
40 (``sweeps/winners.py``'s ``_DCGAN_B128``, and ``_DCGAN_NOFC_B32`` at batch 32).
"""

from sweeps.winners import _DCGAN_FC

# name: G's (g_channels, g_hidden, g_kernel_size) and D's (d_channels, d_hidden); counts in the comments
_LAYOUTS = {
    "g192-nofc": ((192, 0, 4), (64, 512)),  # G 1.20M: 192-192-96, no FC; D the winners' (2.76M)
    "g160-k5-nofc": ((160, 0, 5), (64, 512)),  # G 1.22M: 5x5 kernels, no FC
    "d128-nofc": ((128, 384, 4), (128, 0)),  # D 2.64M: 128-256-512, no FC; G the winners' (1.22M)
    "g192-d128-nofc": ((192, 0, 4), (128, 0)),  # neither net has a hidden FC
}

runs = [
    {**_DCGAN_FC, "g_channels": gc, "g_hidden": gh, "g_kernel_size": gk, "d_channels": dc, "d_hidden": dh, "seed": 42}
    for (gc, gh, gk), (dc, dh) in _LAYOUTS.values()
]
metric = "val_classifier_fd"
mode = "min"
resources = {"cpu": 2, "gpu": "auto"}  # fixed runs go one at a time
scheduler = None
