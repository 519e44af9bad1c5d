"""Per-family training tasks: what one epoch, one evaluation and one figure set mean."""
from common.trial.tasks.dcgan import DCGANTask
from common.trial.tasks.vae import VAETask
from common.trial.tasks.vaegan import VAEGANTask

TASKS = {"vae": VAETask, "dcgan": DCGANTask, "vaegan": VAEGANTask}
