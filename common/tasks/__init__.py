"""Per-family training tasks: what one epoch, one evaluation and one figure set mean."""
from common.tasks.dcgan import DCGANTask
from common.tasks.vae import VAETask

TASKS = {"vae": VAETask, "dcgan": DCGANTask}
