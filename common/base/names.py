"""Names that several floors write and read: MLflow tags, the trial statuses, the sweep roles.
A name spelled once here cannot drift between the writer and its readers."""

TRIAL_STATUS = "trial_status"  # a trial run's tag: how the trial ended (one of STATUSES)
STATUSES = ("running", "completed", "stopped", "diverged", "collapsed", "failed", "interrupted")
SWEEP_ROLE = "sweep.role"  # "parent" (one per sweep) or "trial"
DEFAULT_SEED = 42  # TrialConfig.seed's default, and the CLI's
PRESET_TAG = "sweep.preset"  # a space file's ``preset``, on its parent run and every trial run
SELECTED_BY = "selected_by"  # a trial run's, set by the end stage of a search: the search that chose it as its best
CPU_FLAGS = "cpu_flags"  # a trial run's: common.base.device.cpu_flags of each box it trained on
MACHINE_TAG = "machine"  # a trial run's: the box it trained on (describe_machine), each box a restore moved it to
PER_FAMILY = "per family"  # a parent param (metric, max_epochs) that each family's default sets
SLIDES_PRESET = "slides"  # the preset that reproduces the slides' two runs (sweeps/slides.py)
# A trial run's, set with its test metrics: what weights they scored, the loop's one snapshot of the
# selected epoch (a run logged without it scored whatever the live modules held at the last epoch).
TEST_WEIGHTS_TAG, SNAPSHOT = "test.weights", "snapshot"
