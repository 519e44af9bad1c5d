"""Per-family training tasks: what one epoch, one evaluation and one figure set mean."""
from common.tasks.dcgan import DCGANTask
from common.tasks.vae import VAETask
from common.tasks.vaegan import VAEGANTask

TASKS = {"vae": VAETask, "dcgan": DCGANTask, "vaegan": VAEGANTask}
