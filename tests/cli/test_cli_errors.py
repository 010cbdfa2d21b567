"""Bad command lines get one line naming the field and the limit, never a traceback (issue 14, items 8 and 10).

Every case runs the installed ``rcs`` entry point as a subprocess, as a user does. Checks that must not wait for
heavy imports are asserted on what was imported (deterministic), not on wall time (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RCS = str(Path(sys.executable).with_name("rcs"))
ARM_ENV = "rcs/PandaPickCube-v0"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([RCS, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _one_line_error(out: subprocess.CompletedProcess, *needles: str, code: int | None = None) -> str:
    """The process failed (with ``code`` if given) and said why in exactly one stderr line holding ``needles``."""
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.returncode != 0, out
    if code is not None:
        assert out.returncode == code, out
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", ["eval", "record"])
def test_unknown_env_id_is_one_line_listing_the_known_ids(command: str, tmp_path: Path) -> None:
    extra = ["--policy", str(tmp_path)] if command == "eval" else ["--root", str(tmp_path / "ds")]
    out = _run(command, "--env", "rcs/Nope-v0", *extra)
    _one_line_error(out, "--env", "rcs/Nope-v0", "unknown env id", ARM_ENV, "rcs/QuadrotorHover-v0")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("command", ["eval", "record"])
def test_a_quadrotor_env_is_refused_naming_the_arm_envs(command: str, tmp_path: Path) -> None:
    extra = ["--policy", str(tmp_path)] if command == "eval" else ["--root", str(tmp_path / "ds")]
    out = _run(command, "--env", "rcs/QuadrotorHover-v0", *extra)
    line = _one_line_error(out, "--env", "rcs/QuadrotorHover-v0", "arm envs", ARM_ENV)
    assert "rcs/QuadrotorTrack-v0" not in line  # the list is of the envs that work
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--steps", "0"], ["--steps", ">= 1"]),
        (["--steps", "-5"], ["--steps", ">= 1"]),
        (["--max-minutes", "-1"], ["--max-minutes", "> 0"]),
        (["--max-minutes", "0"], ["--max-minutes", "> 0"]),
        (["--batch-size", "0"], ["--batch-size", ">= 1"]),
        (["--save-every", "0"], ["--save-every", ">= 1"]),
    ],
)
def test_train_refuses_bad_numbers_at_parse_time(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    out = _run("train", "--dataset", str(tmp_path / "ds"), "--output", str(tmp_path / "run"), *args)
    _one_line_error(out, *needles, code=2)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_record_root_that_is_a_file_is_refused_before_anything_is_created(tmp_path: Path, below: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a dataset")
    root = afile / below if below else afile
    out = _run("record", "--root", str(root), "--episodes", "1")
    _one_line_error(out, "--root", "not a directory", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no stray .afile.rcs/ work area
    assert afile.read_text() == "not a dataset"


@pytest.mark.parametrize("action", ["info", "repair"])
def test_dataset_root_that_is_a_file_says_so_without_suggesting_a_repair(tmp_path: Path, action: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = _one_line_error(_run("dataset", action, "--root", str(afile)), "--root", "not a directory")
    assert "repair --root" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_dataset_info_of_a_plain_folder_is_not_a_dataset(tmp_path: Path) -> None:
    line = _one_line_error(_run("dataset", "info", "--root", str(tmp_path)), "--root", "not a LeRobot dataset")
    assert "repair" not in line  # nothing was interrupted here: no work area next to it


_HEAVY_PROBE = """
import json, sys
from rcs.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # as the interpreter does: a message goes to stderr, with exit code 1
    code = e.code
    if isinstance(code, str):
        sys.stderr.write(code + "\\n")
heavy = sorted(m for m in ("torch", "lerobot", "mujoco") if m in sys.modules)
print(json.dumps({"code": code if isinstance(code, int) else 1, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["dataset", "info", "--root", "{file}"],
        ["dataset", "info", "--root", "{missing}"],
        ["dataset", "info", "--root", "{dir}"],
        ["replay", "--root", "{file}"],
        ["replay", "--root", "{missing}"],
        ["replay", "--root", "{dir}"],
        ["train", "--dataset", "{missing}", "--output", "{missing}/run"],
        ["train", "--dataset", "{file}", "--output", "{missing}/run"],
    ],
)
def test_bad_paths_are_refused_before_heavy_imports(tmp_path: Path, args: list[str]) -> None:
    """These errors took about 7 s to appear (lerobot and torch were imported first): now they are checked first."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    paths = {"file": str(afile), "missing": str(tmp_path / "missing"), "dir": str(tmp_path)}
    argv = [a.format(**paths) for a in args]
    out = subprocess.run([sys.executable, "-c", _HEAVY_PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] != 0 and result["heavy"] == [], (result, out.stderr)
    assert len([line for line in out.stderr.splitlines() if line.strip()]) == 1, out.stderr


def test_train_prints_strict_json_when_the_loss_is_nan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """A resumed run already at --steps trains nothing: its loss is NaN, printed as null (NaN is not JSON)."""
    from policies.training import cli as train_cli
    from policies.training import train as training

    (tmp_path / "ds" / "meta").mkdir(parents=True)
    (tmp_path / "ds" / "meta" / "info.json").write_text("{}")
    (tmp_path / "run" / "checkpoints" / "last").mkdir(parents=True)
    monkeypatch.setattr(
        training,
        "train",
        lambda cfg, progress: training.TrainResult(
            4, tmp_path / "run" / "checkpoints" / "last", float("nan"), 0.1, False
        ),
    )
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--dataset",
            str(tmp_path / "ds"),
            "--output",
            str(tmp_path / "run"),
            "--steps",
            "4",
            "--resume",
            "--no-progress",
        ]
    )
    assert train_cli.run(args) == 0

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert printed["loss"] is None and printed["step"] == 4


def test_train_config_refuses_bad_numbers_for_library_callers() -> None:
    from policies.training.train import TrainConfig, check_config
    from rcs.errors import ConfigError

    for field, value in (
        ("steps", 0),
        ("steps", -5),
        ("max_minutes", -1.0),
        ("max_minutes", 0.0),
        ("batch_size", 0),
        ("save_every", 0),
        ("stop_at", 0),
    ):
        with pytest.raises(ConfigError, match=f"{field}="):
            check_config(TrainConfig(dataset="d", output="o", **{field: value}))
    check_config(TrainConfig(dataset="d", output="o", steps=1, max_minutes=0.5))


def test_json_line_turns_nan_and_inf_into_null() -> None:
    from rcs.cli.main import json_line

    text = json_line(
        {"a": float("nan"), "b": [1.0, float("inf")], "c": (2, -float("inf")), "d": Path("x")}, default=str
    )
    assert text.endswith("\n") and json.loads(text) == {"a": None, "b": [1.0, None], "c": [2, None], "d": "x"}


def test_every_option_of_every_command_has_help() -> None:
    from rcs.cli.main import build_parser, command_module, command_names

    parsers = {"rcs": build_parser()}
    for name in command_names():
        parser = argparse.ArgumentParser(prog=f"rcs {name}")
        command_module(name).add_arguments(parser)
        parsers[f"rcs {name}"] = parser
    missing = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"
        for prog, parser in parsers.items()
        for a in parser._actions
        if not a.help
    ]
    assert missing == []


def test_a_plugin_command_that_reuses_a_core_name_is_one_line(capsys: pytest.CaptureFixture) -> None:
    from rcs.cli.main import main
    from rcs.registry import commands

    commands.register("eval", sys)
    try:
        assert main(["eval", "--help"]) == 2
    finally:
        commands.unregister("eval")
    assert capsys.readouterr().err == "rcs: entry-point group 'rcs.commands' redefines core commands ['eval']\n"


def test_the_outer_packages_commands_are_entry_points() -> None:
    """``rcs train``, ``train-flight``, ``train-residual`` and ``sysid`` live beside their code, outside the core."""
    from rcs.cli.main import command_module, command_summary
    from rcs.registry import commands

    assert {"train", "train-flight", "train-residual", "sysid"} <= set(commands.names())
    assert command_module("train-residual").__name__ == "policies.residual.cli"
    assert command_summary("sysid").startswith("calibrate a simulated robot")
    listing = " ".join(_run("--help").stdout.split())
    assert "train-residual learn a residual on a frozen served base" in listing  # whitespace collapsed


def test_help_shows_the_defaults_that_were_hidden() -> None:
    assert "outputs/eval" in " ".join(_run("eval", "--help").stdout.split())
    record = " ".join(_run("record", "--help").stdout.split())
    assert "--control-mode {cartesian,joint}" in record and "(default cartesian)" in record
    train = " ".join(_run("train", "--help").stdout.split())
    assert "samples per optimizer step (default 64)" in train and "torch seed" in train


def test_up_dry_run_prints_commands_that_run_without_the_venv_on_path() -> None:
    out = _run("up", str(REPO / "launch" / "sim_robot.yaml"), "--dry-run")
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        _, _, command = line.partition(": ")
        program = command.split()[0]
        assert Path(program).is_absolute() and os.access(program, os.X_OK), line


def test_data_folder_is_ignored_by_git() -> None:
    out = subprocess.run(["git", "check-ignore", "-q", "data/pick_cube/meta/info.json"], cwd=REPO, timeout=30)
    assert out.returncode == 0, "data/ (where the docs record datasets) must be in .gitignore"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["emulate", "hw/nope"], ["rcs emulate", "unknown emulator 'hw/nope'", "hw/so101"]),
        (["emulate", "hw/so101", "--option", "seed"], ["--option 'seed'", "KEY=VALUE"]),
        (["robot", "--robot", "sim/so101", "--robot-option", "port"], ["--robot-option 'port'", "KEY=VALUE"]),
        (["robot", "--robot", "sim/so101", "--robot-option", "colour=red"], ["unknown option(s) colour"]),
        (["robot", "--robot", "hw/so101"], ["hw/so101", "port"]),
    ],
)
def test_physical_robot_options_are_one_line_errors(args: list[str], needles: list[str]) -> None:
    _one_line_error(_run(*args), *needles)
