"""The slides' published numbers that the code checks against (../shared/seed/vae_vs_dcgan_slides.md).

Parameter counts are keyed by the metric a trial logs for each net (``n_params_<model>``, the
task's ``models`` key): the Conv-VAE 1.38M, the DCGAN's generator 1.24M and discriminator 2.76M.
"""

PARAMS = {"n_params_vae": 1.38e6, "n_params_g": 1.24e6, "n_params_d": 2.76e6}
PARAMS_TOLERANCE = 0.10  # a net 'within the slides' budget' is within ±10% of its published count
TRAIN_SUBSET = 10_000  # the slides' training images: a seeded subset of CIFAR-10's train split
VAE_EPOCHS, GAN_EPOCHS = 20, 40  # the slides' training length of each model
NEG_ELBO, RECON, KL, PROBE_ACC = 200.82, 139.56, 61.25, 0.3769  # the Conv-VAE's test numbers (MSE-sum + KL; probe on μ)
G_LOSS, D_LOSS, LOSS_RATIO = 3.866, 0.159, 24.4  # the DCGAN's final losses and their ratio
