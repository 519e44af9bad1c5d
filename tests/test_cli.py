"""Bad input through the real CLI (a subprocess): exit 2, one ``error:`` line, nothing started or written.

Each case runs ``run_sweep.py`` once (cached: the two tests below share the run) with ``cwd`` an
empty tmp folder, so a sweep that wrongly got going would leave ``ray_results``, ``mlflow.db`` or
``mlartifacts`` behind. Inputs (space files, data folders) live in a sibling folder.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "run_sweep.py"
GAN = str(REPO / "sweeps" / "gan_ttur.py")
VAE = str(REPO / "sweeps" / "vae_beta.py")
SLIDES = str(REPO / "sweeps" / "slides.py")
HEADER = 'family = "vae"\nmetric = "val_mse_kl"\nmode = "min"\n'
FORBIDDEN = ("ray_results", "mlflow.db", "mlartifacts", "optuna.db")  # what a sweep that got going leaves in cwd


@dataclass
class Case:
    args: Callable[[Path], list[str]]  # inputs folder -> argv after run_sweep.py
    expect: str = ""  # a substring of the error line
    env: dict | None = None  # extra environment variables


def space_file(body: str) -> Callable[[Path], str]:
    def make(inp: Path) -> str:
        path = inp / "space.py"
        path.write_text(body)
        return str(path)

    return make


def folder(*files: str) -> Callable[[Path], str]:
    def make(inp: Path) -> str:
        root = inp / "data"
        root.mkdir()
        for f in files:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_bytes(b"\x89PNG not really")
        return str(root)

    return make


def image_tree(bad: str, payload: Callable[[], bytes]) -> Callable[[Path], str]:
    """A valid train/test tree of 32x32 PNGs plus one bad file ``bad`` (relative path)."""

    def make(inp: Path) -> str:
        import io

        from PIL import Image

        root = inp / "data"
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, format="PNG")
        for split in ("train", "test"):
            for i in range(2):
                (root / split / "cat").mkdir(parents=True, exist_ok=True)
                (root / split / "cat" / f"{i}.png").write_bytes(buf.getvalue())
        (root / bad).write_bytes(payload())
        return str(root)

    return make


def class_tree(per_class: dict[str, int]) -> Callable[[Path], str]:
    """A valid tree of 32x32 PNGs with ``n`` train images per class (and 2 test images each)."""

    def make(inp: Path) -> str:
        root = inp / "data"
        for cls, n in per_class.items():
            for split, count in (("train", n), ("test", 2)):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    (root / split / cls / f"{i}.png").write_bytes(png(32))
        return str(root)

    return make


def png(size: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size)).save(buf, format="PNG")
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((32, 32), 64).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()[:200]


def not_gzip(inp: Path) -> str:
    path = inp / "data.tar.gz"
    path.write_bytes(b"plain text, not gzip\n" * 10)
    return str(path)


SYN = ["--data", "synthetic", "--set", "val_size=128"]
CASES = {
    # ---- space files
    "space-missing": Case(lambda i: ["--space", str(i / "nope.py")] + SYN, "does not exist"),
    "space-syntax-error": Case(lambda i: ["--space", space_file(HEADER + "x = (\n")(i)] + SYN, "syntax error"),
    "space-missing-names": Case(lambda i: ["--space", space_file("num_samples = 2\n")(i)] + SYN, "must define"),
    "space-distribution-low-gt-high": Case(
        lambda i: (
            [
                "--space",
                space_file(
                    HEADER + "from optuna.distributions import FloatDistribution\n"
                    'space = {"beta": FloatDistribution(low=5, high=1)}\n'
                )(i),
            ]
            + SYN
        ),
        "space.py",
    ),
    "space-distribution-wrong-type": Case(
        lambda i: ["--space", space_file(HEADER + 'space = {"beta": "high"}\n')(i)] + SYN, "optuna.distributions"
    ),
    "space-float-distribution-for-int": Case(
        lambda i: (
            [
                "--space",
                space_file(
                    HEADER + "from optuna.distributions import FloatDistribution\n"
                    'space = {"latent_dim": FloatDistribution(8, 64)}\n'
                )(i),
            ]
            + SYN
        ),
        "latent_dim",
    ),
    "plugin-missing-file": Case(
        lambda i: ["--space", space_file(HEADER + 'plugins = ["nope.py"]\n')(i)] + SYN, "there is no file"
    ),
    "plugin-registers-nothing": Case(
        lambda i: ["--space", GAN, "--plugin", "json"] + SYN, "registered no model family"
    ),
    "space-defaults-a-list": Case(lambda i: ["--space", space_file(HEADER + "defaults = [1]\n")(i)] + SYN, "defaults"),
    # ---- --set
    "set-unknown-key": Case(lambda i: ["--space", GAN, "--set", "bogus=1"] + SYN, "bogus"),
    "set-lr-abc": Case(lambda i: ["--space", VAE, "--set", "lr=abc"] + SYN, "lr"),
    "set-lr-negative": Case(lambda i: ["--space", GAN, "--set", "lr_g=-1"] + SYN, "lr_g"),
    "set-latent-dim-zero": Case(lambda i: ["--space", GAN, "--set", "latent_dim=0"] + SYN, "latent_dim"),
    "set-beta-negative": Case(lambda i: ["--space", VAE, "--set", "beta=-1"] + SYN, "beta"),
    "set-lr-ratio-zero": Case(lambda i: ["--space", GAN, "--set", "lr_ratio=0"] + SYN, "lr_ratio"),
    "set-without-equals": Case(lambda i: ["--space", GAN, "--set", "lr_ratio"] + SYN, "KEY=VALUE"),
    "set-seed-abc": Case(lambda i: ["--space", SLIDES, "--set", "seed=abc"] + SYN, "seed"),
    "set-val-size-too-big": Case(lambda i: ["--space", VAE] + SYN + ["--set", "val_size=100000"], "val_size"),
    "objective-on-the-test-split": Case(
        lambda i: ["--space", space_file(HEADER.replace("val_mse_kl", "test_kl"))(i)] + SYN, "test-split metric"
    ),
    # ---- flags
    "no-space": Case(lambda i: SYN, "--space"),
    "num-samples-zero": Case(lambda i: ["--space", GAN, "--num-samples", "0"] + SYN, "--num-samples"),
    "max-epochs-zero": Case(lambda i: ["--space", GAN, "--max-epochs", "0"] + SYN, "--max-epochs"),
    "gpus-per-trial-negative": Case(lambda i: ["--space", GAN, "--gpus-per-trial", "-1"] + SYN, "--gpus-per-trial"),
    "single-trial-with-address": Case(
        lambda i: ["--space", GAN, "--single-trial", "--address", "127.0.0.1:6379"] + SYN, "--address"
    ),
    "address-nothing-listening": Case(
        lambda i: ["--space", GAN, "--address", "127.0.0.1:9"] + SYN, "no Ray head answers at 127.0.0.1:9"
    ),
    "address-not-host-port": Case(lambda i: ["--space", GAN, "--address", "head-node"] + SYN, "not HOST:PORT"),
    "single-trial-with-resume": Case(lambda i: ["--space", GAN, "--single-trial", "--resume"] + SYN, "--resume"),
    "resume-without-sweep": Case(lambda i: ["--space", GAN, "--resume"] + SYN, "--resume"),
    "single-trial-with-export": Case(
        lambda i: ["--space", GAN, "--single-trial", "--export", str(i)] + SYN, "--export"
    ),
    "warm-start-no-run-files": Case(lambda i: ["--space", GAN, "--warm-start", str(i)] + SYN, "--warm-start"),
    "warm-start-fixed-runs": Case(lambda i: ["--space", SLIDES, "--warm-start", str(i)] + SYN, "fixed runs only"),
    "export-onto-a-file": Case(lambda i: ["--space", GAN, "--export", not_gzip(i)] + SYN, "--export"),
    "eval-n-one": Case(lambda i: ["--space", GAN, "--eval-n", "1"] + SYN, "--eval-n"),
    "fid-weights-missing": Case(lambda i: ["--space", GAN, "--fid-weights", str(i / "nope.pt")] + SYN, "--fid-weights"),
    # ---- --data
    "data-missing-path": Case(lambda i: ["--space", GAN, "--data", str(i / "nope")], "does not exist"),
    "data-empty-folder": Case(lambda i: ["--space", GAN, "--data", folder()(i)], "empty"),
    "data-wrong-layout": Case(lambda i: ["--space", GAN, "--data", folder("images/a.png", "images/b.png")(i)], "train"),
    "data-not-gzip": Case(lambda i: ["--space", GAN, "--data", not_gzip(i)], "gzip"),
    "data-non-image-file": Case(
        lambda i: ["--space", GAN, "--data", image_tree("train/cat/notes.txt", lambda: b"hello")(i)], "not an image"
    ),
    "data-wrong-image-size": Case(
        lambda i: ["--space", GAN, "--data", image_tree("train/cat/big.png", lambda: png(64))(i)], "expected 32x32"
    ),
    "data-corrupt-png": Case(
        lambda i: [
            "--space",
            GAN,
            "--data",
            image_tree("test/cat/bad.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 40)(i),
        ],
        "corrupt",
    ),
    "data-truncated-jpeg": Case(
        lambda i: ["--space", GAN, "--data", image_tree("train/cat/cut.jpg", truncated_jpeg)(i)], "corrupt"
    ),
    "data-too-few-images-for-the-classifier": Case(
        lambda i: ["--space", GAN, "--data", class_tree({"cat": 40, "dog": 5})(i), "--set", "val_size=16"],
        "domain classifier",
    ),
    # ---- resources no node has (checked once Ray is up, before MLflow is touched)
    "memory-per-trial-too-big": Case(
        lambda i: ["--space", VAE, "--memory-per-trial", "10000000"] + SYN, "--memory-per-trial"
    ),
    "gpus-per-trial-no-gpu": Case(lambda i: ["--space", VAE, "--gpus-per-trial", "64"] + SYN, "--gpus-per-trial"),
    "memory-per-trial-negative": Case(lambda i: ["--space", VAE, "--memory-per-trial", "-1"] + SYN, ">= 0"),
    # ---- --storage on object storage nobody answers for
    "storage-s3-unreachable": Case(
        lambda i: ["--space", VAE, "--storage", "s3://sweeps/x"] + SYN,
        "--storage",
        env={
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    ),
    "storage-unknown-scheme": Case(lambda i: ["--space", VAE, "--storage", "nosuch://bucket/x"] + SYN, "--storage"),
    # ---- --tracking-uri / --report
    "tracking-unreachable": Case(
        lambda i: ["--space", GAN, "--tracking-uri", "http://127.0.0.1:9"] + SYN, "unreachable"
    ),
    "tracking-unroutable": Case(
        lambda i: ["--space", GAN, "--tracking-uri", "http://10.255.255.1:5000"] + SYN, "unreachable"
    ),  # packets dropped: the 5 s connect timeout
    "tracking-malformed": Case(lambda i: ["--space", GAN, "--tracking-uri", "ftp://x"] + SYN, "not supported"),
    "tracking-sqlite-missing-folder": Case(
        lambda i: ["--space", GAN, "--tracking-uri", f"sqlite:///{i}/no/such/dir/mlflow.db"] + SYN, "mlflow.db"
    ),
    "report-missing-store": Case(
        lambda i: ["--report", "no_such_experiment", "--tracking-uri", f"sqlite:///{i}/other.db"], "no MLflow database"
    ),  # reported, never created
    "check-missing-store": Case(
        lambda i: ["--check", "no_such_experiment", "--tracking-uri", f"sqlite:///{i}/other.db"], "no MLflow database"
    ),  # audited, never created
    "sample-missing-store": Case(
        lambda i: ["--sample", "models:/x@best", "--tracking-uri", f"sqlite:///{i}/other.db"], "no MLflow database"
    ),
    "sample-zero-images": Case(lambda i: ["--sample", "models:/x@best", "-n", "0"], "-n"),
}


@dataclass
class Result:
    rc: int
    stderr: str
    created: set  # paths (relative to cwd) that the run left behind
    base: Path  # the case's folder: cwd/, in/ (its inputs), out/ (stdout.txt, stderr.txt)


_RESULTS: dict[str, Result] = {}


@pytest.fixture(scope="module", autouse=True)
def prefetch(request, tmp_path_factory):
    """Run the selected cases at once through tests/cli_forks.py; the tests read the results."""
    selected = {
        item.callspec.params["case_id"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    }
    run_cases(sorted(selected - set(_RESULTS)), tmp_path_factory)


def snapshot(root: Path) -> set:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def clean_env() -> dict:
    """This process's environment less what would steer a case (tracking URIs, warning filters)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONWARNINGS"))}
    return {**env, "PYTHONPATH": str(REPO)}


def case_env(base: Path, case_id: str) -> dict:
    return {**clean_env(), "VAEGAN_CACHE": str(base / "cache"), **(CASES[case_id].env or {})}


def run_cases(case_ids: list[str], tmp_path_factory) -> None:
    """Run each case once per session, each ``run_sweep.py`` in its own empty cwd: forked from one
    warm interpreter (tests/cli_forks.py), which is what a fresh one reaches after its imports."""
    jobs, bases = [], {}
    for cid in case_ids:
        base = tmp_path_factory.mktemp(cid)
        for sub in ("cwd", "in", "out"):
            (base / sub).mkdir()
        args = CASES[cid].args(base / "in")
        jobs.append(
            {"id": cid, "argv": args, "cwd": str(base / "cwd"), "env": case_env(base, cid), "out": str(base / "out")}
        )
        bases[cid] = base
    if not jobs:
        return
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "cli_forks.py"), "-j", "4"],
        input="".join(json.dumps(j) + "\n" for j in jobs),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and not re.search(r"\w+Warning: ", proc.stderr), proc.stderr[-3000:]
    for line in proc.stdout.splitlines():
        done = json.loads(line)
        base = bases[done["id"]]  # its cwd was created empty: whatever is there now, the run wrote
        stderr = (base / "out" / "stderr.txt").read_text()
        _RESULTS[done["id"]] = Result(done["rc"], stderr, snapshot(base / "cwd"), base)


def run_case(case_id: str, tmp_path_factory) -> Result:
    if case_id not in _RESULTS:
        run_cases([case_id], tmp_path_factory)
    return _RESULTS[case_id]


def params(flag: str):
    out = []
    for cid in CASES:
        out.append(pytest.param(cid, id=cid))
    return out


@pytest.mark.parametrize("case_id", params("exit"))
def test_bad_input_exits_2_and_starts_nothing(case_id, tmp_path_factory):
    res = run_case(case_id, tmp_path_factory)
    assert res.rc == 2, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr[-3000:]
    assert CASES[case_id].expect in lines[-1]
    assert "Traceback" not in res.stderr
    assert not re.search(r"\w+Warning: ", res.stderr), "a Python warning reached the user"
    assert not {p.split("/")[0] for p in res.created} & set(FORBIDDEN), "bad input started a sweep"
    assert not res.created, f"bad input wrote {sorted(res.created)}"


@pytest.mark.parametrize("case_id", params("one_line"))
def test_bad_input_prints_exactly_one_error_line(case_id, tmp_path_factory):
    res = run_case(case_id, tmp_path_factory)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]


@pytest.mark.parametrize("case_id", ["space-missing", "space-syntax-error", "set-unknown-key", "num-samples-zero"])
def test_a_bad_space_or_flag_is_answered_before_ray_mlflow_and_the_trial_loop_load(case_id, tmp_path):
    # Importing them is most of a bad-input answer's time: run_sweep.py validates first.
    code = (
        "import sys, run_sweep\n"
        f"try: run_sweep.main({CASES[case_id].args(tmp_path)!r})\n"
        "except SystemExit as e: print('exit', e.code)\n"
        "print(sorted(m for m in ('ray', 'mlflow', 'common.trial.loop', 'common.sweep.driver') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[-2:] == ["exit 2", "[]"], proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("case_id", ["space-missing", "set-unknown-key"])
def test_a_fresh_interpreter_answers_as_the_forked_one_does(case_id, tmp_path, tmp_path_factory):
    """The forks stand for `python run_sweep.py ...`: the real entry point gives the same exit and line."""
    forked = run_case(case_id, tmp_path_factory)
    (tmp_path / "in").mkdir()
    argv = [sys.executable, str(SCRIPT), *CASES[case_id].args(tmp_path / "in")]
    proc = subprocess.run(argv, cwd=tmp_path, env=case_env(tmp_path, case_id), capture_output=True, text=True)
    assert (proc.returncode, proc.stderr.replace(str(tmp_path), "T")) == (
        forked.rc,
        forked.stderr.replace(str(forked.base), "T"),
    )
