"""User mistakes on the absl commands (training and absl-based evaluation) end in one line.

`--help` exits 0; a config key typo, a missing config file, an unknown variant, a bad flag
value, a `--workdir` that is a file or cannot be written, a missing run for `eval.ps_benchmark`
or `eval.aflw2000_nme` give one line naming the problem and exit 2, before any work.
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys

import pytest
from absl import app

from eval import aflw2000_nme, ps_benchmark
from train import absl_app, launch

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "train" / "configs" / "biofacenet.py")


def _command(*args, cwd=ROOT):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("BIOFACE_TRACEBACK", None)
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=120)


@pytest.mark.parametrize("module", ["train.biofacenet", "eval.ps_benchmark",
                                    "eval.aflw2000_nme"])
def test_help_exits_0(module):
  proc = _command(module, "--help")
  assert proc.returncode == 0, proc.stderr
  assert "--workdir" in proc.stdout or "--runs" in proc.stdout


@pytest.mark.parametrize("module", ["eval.bench_vae", "eval.profile_step", "eval.bench_sdps",
                                    "eval.bench_convs", "eval.bench_prnet"])
def test_benchmark_help_lists_the_shared_huge_pages_flag(module):
  """`absl_app.define_huge_pages_flag` puts --huge_pages under the command's own flags."""
  proc = _command(module, "--help")
  assert proc.returncode == 0, proc.stderr
  own = proc.stdout.split(f"{module.replace('.', '/')}.py:", 1)[-1]
  assert "--[no]huge_pages" in own and "glibc.malloc.hugetlb=1" in own, proc.stdout


def test_profile_step_profiles_the_face_vae_inference_call():
  """`--inference` profiles `face_vae.reconstruct` (tiny size here) and prints the op table."""
  proc = _command("eval.profile_step", "--model", "face_vae", "--inference", "--size", "16",
                  "--batch", "2", "--steps", "1", "--top", "3", "--nohuge_pages")
  assert proc.returncode == 0, proc.stderr
  assert "one step without the tracer" in proc.stdout and "| ms | share |" in proc.stdout
  proc = _command("eval.profile_step", "--model", "face_vae", "--vae_preset", "cpu", "--size",
                  "16", "--batch", "2", "--steps", "1", "--top", "3", "--nohuge_pages")
  assert proc.returncode == 0, proc.stderr  # the train step of the CPU training preset's network
  assert "| ms | share |" in proc.stdout
  proc = _command("eval.profile_step", "--model", "nenet", "--inference")
  assert proc.returncode == 2 and "face_vae only" in proc.stderr, proc.stderr


def test_config_typo_is_one_line_from_any_directory(tmp_path):
  proc = _command("train.biofacenet", "--config.num_train_step=5", cwd=tmp_path)
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
  assert "no field 'num_train_step'" in proc.stderr and "config.num_train_steps?" in proc.stderr


def test_bad_flag_value_is_one_line():
  proc = _command("train.biofacenet", f"--config={CONFIG}:smoke", "--config.batch_size=many")
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
  assert "--config.batch_size=many" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--config.model.typo=1"],
     "config.model has no field 'typo' in train/configs/biofacenet.py; did you mean "
     "config.model.dtype? its fields are base_filters,"),
    (["--config", "train/configs/nope.py"],
     "config file 'train/configs/nope.py' not found; the project's configs are "
     "train/configs/biofacenet.py, train/configs/face_vae.py"),
    ([f"--config={CONFIG}:nope"], "unknown variant 'nope'; choose one of smoke, default"),
    ([f"--config={CONFIG}:smoke", "--config.model.base_filters.x=1"],
     "config.model.base_filters is a value (int), not a group of fields"),
    (["--config"], "--config needs a value"),
])
def test_config_problems_are_named(argv, message, monkeypatch):
  monkeypatch.chdir(ROOT)
  problem = launch.check_config_args(["prog", *argv], ROOT / "train/configs/biofacenet.py")
  assert problem is not None and message in problem, problem


def test_valid_config_arguments_pass():
  good = ["prog", f"--config={CONFIG}:smoke", "--config.num_train_steps=3",
          "--noconfig.async_checkpointing", "--config.model.base_filters", "2"]
  assert launch.check_config_args(good, pathlib.Path(CONFIG)) is None


def test_workdir_that_is_a_file_or_cannot_be_created(tmp_path):
  (tmp_path / "file").write_text("x")
  assert "is a file, not a directory" in launch.check_workdir(str(tmp_path / "file"))
  assert "cannot be written" in launch.check_workdir(str(tmp_path / "file" / "run"))
  assert launch.check_workdir(str(tmp_path / "new" / "run")) is None
  assert (tmp_path / "new" / "run").is_dir() and not list((tmp_path / "new" / "run").iterdir())


def test_training_refuses_a_file_workdir_before_any_work(tmp_path):
  (tmp_path / "run").write_text("not a directory")
  proc = _command("train.biofacenet", f"--config={CONFIG}:smoke", f"--workdir={tmp_path}/run")
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
  assert "is a file, not a directory" in proc.stderr


def test_boundary_turns_user_errors_into_one_line(capsys, monkeypatch):
  monkeypatch.delenv("BIOFACE_TRACEBACK", raising=False)

  def missing(argv):
    raise FileNotFoundError("no checkpoint in /x/checkpoints;\n  train first")

  assert absl_app.guarded(missing)(["prog"]) == 2
  assert capsys.readouterr().err == "error: no checkpoint in /x/checkpoints; train first\n"
  assert absl_app.guarded(lambda argv: None)(["prog"]) == 0

  def bug(argv):
    raise KeyError("a programming error keeps its traceback")

  with pytest.raises(KeyError):
    absl_app.guarded(bug)(["prog"])
  monkeypatch.setenv("BIOFACE_TRACEBACK", "1")
  with pytest.raises(FileNotFoundError):
    absl_app.guarded(missing)(["prog"])


def test_output_file_checked_before_work(tmp_path):
  absl_app.check_output_file(tmp_path / "sub" / "table.md")
  assert (tmp_path / "sub").is_dir() and not list((tmp_path / "sub").iterdir())
  with pytest.raises(ValueError, match="is a directory"):
    absl_app.check_output_file(tmp_path)
  (tmp_path / "f").write_text("x")
  with pytest.raises(ValueError, match="is a file, not a directory"):
    absl_app.check_output_file(tmp_path / "f" / "table.md")


def test_aflw2000_workdirs_are_separate_values(tmp_path):
  spaced = tmp_path / "run with spaces"
  spaced.mkdir()  # An existing directory is never split.
  note = io.StringIO()
  assert aflw2000_nme.run_directories(["a", "b", str(spaced)], note) == [
      pathlib.Path("a"), pathlib.Path("b"), spaced]
  assert note.getvalue() == ""
  assert aflw2000_nme.run_directories(["W1 W2"], note) == [pathlib.Path("W1"),
                                                          pathlib.Path("W2")]
  assert "deprecated; give them as separate values: --workdir W1 W2" in note.getvalue()


def test_aflw2000_and_ps_benchmark_name_every_missing_run_first(tmp_path):
  (tmp_path / "good" / "checkpoints").mkdir(parents=True)
  good, bad1, bad2 = (str(tmp_path / n) for n in ("good", "bad1", "bad2"))
  with pytest.raises(FileNotFoundError, match=f"in {bad1}, {bad2}; train one"):
    aflw2000_nme.check_inputs([pathlib.Path(p) for p in (good, bad1, bad2)], None, None)
  with pytest.raises(app.UsageError, match="give at least one --workdir"):
    aflw2000_nme.check_inputs([], None, None)
  with pytest.raises(FileNotFoundError, match="--aflw2000 .* is not a directory"):
    aflw2000_nme.check_inputs([pathlib.Path(good)], str(tmp_path / "nope"), None)
  with pytest.raises(FileNotFoundError, match=f"no train.sdps run .* in {bad1}, {bad2}"):
    ps_benchmark.parse_runs([f"a={good}", f"b={bad1}", f"c={good}+{bad2}"])
  with pytest.raises(app.UsageError, match="label=WORKDIR"):
    ps_benchmark.parse_runs(["justapath"])
  assert ps_benchmark.parse_runs([f"a={good}+true"]) == [("a", good, "true")]


def test_ps_benchmark_missing_run_is_one_line(tmp_path):
  proc = _command("eval.ps_benchmark", f"--runs=sdps={tmp_path}/missing")
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
  assert f"no train.sdps run (checkpoints/) or export in {tmp_path}/missing" in proc.stderr


def test_evaluations_of_the_shipped_model_are_written_outside_the_package(tmp_path, monkeypatch):
  from eval import iset_table1, outputs  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(tmp_path)
  shipped = outputs.PACKAGE / "pretrained" / "shipped" / "biofacenet"
  assert iset_table1.DEFAULT_CHECKPOINT == shipped and shipped.is_dir()
  assert outputs.evaluation_dir(shipped) == tmp_path / "eval_biofacenet"
  assert outputs.evaluation_dir(tmp_path / "run") == tmp_path / "run" / "eval"


def test_a_run_of_another_model_is_named(tmp_path):
  """Read from the newest checkpoint's metadata file (a damaged newer one is skipped)."""
  import json  # pylint: disable=g-import-not-at-top
  for step, meta in ((3, {"step": 3, "config": {"model": {"mask_branch": True}}}),
                     (5, None)):
    folder = tmp_path / "run" / "checkpoints" / str(step) / "meta"
    folder.mkdir(parents=True)
    (folder / "metadata").write_text("{truncated" if meta is None else json.dumps(meta))
  assert launch.stored_system(tmp_path / "run") == ("face_vae", 3)
  assert launch.check_run_model(str(tmp_path / "run"), "face_vae") is None
  problem = launch.check_run_model(str(tmp_path / "run"), "biofacenet")
  assert "holds a face_vae run (checkpoint 3), not a biofacenet run" in problem
  assert "python -m train.face_vae" in problem
  assert launch.stored_system(tmp_path / "empty") is None
