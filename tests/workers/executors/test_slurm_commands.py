"""What colabot writes to Slurm and reads back, on the texts Slurm 22.05 really prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workers.executors.base import Launch
from workers.executors.settings import SlurmSettings
from workers.executors.slurm_commands import (
    batch_script,
    capacity_of,
    default_partition,
    exit_of,
    extra_arg_problem,
    job_name,
    parse_job_id,
    parse_sacct,
    parse_scontrol,
    parse_sinfo_nodes,
    parse_squeue,
    parse_time_limit,
    placement_of,
    sbatch_argv,
)

SCONTROL_CANCELLED = (
    "JobId=1 JobName=sbatch UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 "
    "Nice=0 Account=(null) QOS=(null) JobState=CANCELLED Reason=None Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:00 "
    "TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-12-01T19:18:28 "
    "StartTime=2026-12-01T19:18:29 EndTime=2026-12-01T19:18:29 Partition=debug "
    "NodeList=node1 BatchHost=node1 NumNodes=1 NumCPUs=1 TresPerNode=gres:gpu:1\n"
)


def launch(tmp_path: Path, *argv: str, gpu: bool = True) -> Launch:
    return Launch(12, 2, "train", argv, {}, tmp_path, wants_gpu=gpu, attempt=3)


@pytest.mark.parametrize(
    ("arg", "why"),
    [
        ("--output=x.log", "may not be given: colabot sets the step's log file itself"),
        ("--error=e", "may not be given: colabot keeps stdout and stderr together"),
        ("--parsable", "may not be given: colabot adds it to read the job id"),
        ("--wrap=echo hi", "may not be given: colabot writes the batch script itself"),
        ("--export=ALL,TOKEN=x", "may not be given: colabot hands each step its cleaned"),
        ("--chdir=/tmp", "may not be given: colabot starts each step in its own folder"),
        ("--mem=64G", "may not be given: set slurm.mem instead"),
        # sbatch takes any unambiguous prefix of a long option, and bundled short options.
        ("--ou=x", "it is not one of the sbatch options colabot passes on"),
        ("--er=x", "it is not one of the sbatch options colabot passes on"),
        ("--wr=touch /tmp/x", "it is not one of the sbatch options colabot passes on"),
        ("--out=x", "it is not one of the sbatch options colabot passes on"),
        ("-o", "must be an sbatch option in its --name=value form"),
        ("-ox.log", "must be an sbatch option in its --name=value form"),
        ("-e", "must be an sbatch option in its --name=value form"),
        ("-N1", "must be an sbatch option in its --name=value form"),
        ("-vo/tmp/x", "must be an sbatch option in its --name=value form"),
        ("qos=high", "must be an sbatch option in its --name=value form"),
        ("--", "must be an sbatch option in its --name=value form"),
        ("--qos", "needs its value in the same item, as --qos=VALUE"),
        ("--qos=", "has an empty value"),
        ("--comment=a\nb", "holds control characters"),
    ],
)
def test_extra_args_outside_the_allow_list_are_refused(arg: str, why: str) -> None:
    problem = extra_arg_problem(arg)
    assert problem is not None and why in problem, problem


def test_a_refused_option_is_told_the_allowed_ones() -> None:
    problem = extra_arg_problem("--ou=x")
    assert problem is not None
    assert "--constraint, " in problem and "--qos, " in problem and "--mail-user, " in problem


@pytest.mark.parametrize(
    "arg",
    [
        "--qos=short",
        "--constraint=a100",
        "--exclusive",
        "--exclusive=user",
        "--nodes=1",
        "--mail-type=END,FAIL",
        "--mail-user=lab@example.org",
        "--gpus-per-node=a100:2",
        "--signal=B:USR1@60",
        "--time-min=30",
    ],
)
def test_allowed_extra_args_pass(arg: str) -> None:
    assert extra_arg_problem(arg) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("5:30", 330),
        ("12:00:00", 43200),
        ("1-12", 129600),
        ("2-00:30", 174600),
        ("1-00:00:05", 86405),
    ],
)
def test_slurm_time_limits_are_read_in_every_form_sbatch_accepts(text: str, seconds: int) -> None:
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "12h", "1:2:3:4", "-5", "abc"])
def test_bad_time_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_limit(text)


def test_the_batch_script_execs_the_argv_with_no_word_left_to_the_shell(tmp_path: Path) -> None:
    hostile = "a b; touch pwned $(touch pwned2) `touch pwned3` 'q\" \n"
    folder = tmp_path / "in\nput $(touch pwned4)"
    folder.mkdir()
    step = Launch(12, 2, "train\ntouch pwned5", ("printf", "%s|", hostile, "--flag"), {}, folder)
    script = tmp_path / "step.sh"
    text = batch_script(step)
    script.write_text(text)
    # Nothing of the step is in the script but its label, escaped on one comment line.
    assert text.splitlines() == [
        "#!/bin/sh",
        "# job 12 step 3 (train\\x0atouch pwned5), written by colabot",
        "# The step's folder and command come as this script's arguments, never in its text.",
        'cd "$1" || exit 1',
        "shift",
        'exec "$@"',
    ]
    argv = sbatch_argv(SlurmSettings(), step, name="n", script=script, output=tmp_path / "o")
    arguments = argv[argv.index(str(script)) + 1 :]
    assert arguments == [str(folder), "printf", "%s|", hostile, "--flag"]
    out = subprocess.run(
        ["sh", str(script), *arguments], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout == f"{hostile}|--flag|"
    assert not list(tmp_path.glob("pwned*")) and not list(folder.glob("pwned*"))


def test_sbatch_gets_the_settings_and_asks_for_a_gpu_only_for_steps_that_want_one(
    tmp_path: Path,
) -> None:
    settings = SlurmSettings(
        partition="gpu", account="lab", extra_args=("--qos=short",), time_limit="2:00:00"
    )
    common = {"name": "n", "script": tmp_path / "s.sh", "output": tmp_path / "s.out"}
    argv = sbatch_argv(settings, launch(tmp_path), **common)  # type: ignore[arg-type]
    assert argv[:2] == ["sbatch", "--parsable"]
    for option in (
        f"--output={tmp_path / 's.out'}",
        "--gres=gpu:1",
        "--cpus-per-task=2",
        "--mem=16G",
        "--time=2:00:00",
        "--partition=gpu",
        "--account=lab",
        "--no-requeue",
    ):
        assert option in argv
    assert argv[-3:] == ["--qos=short", str(tmp_path / "s.sh"), str(tmp_path)]
    assert "--export=ALL" in argv
    cpu_only = sbatch_argv(settings, launch(tmp_path, gpu=False), **common)  # type: ignore[arg-type]
    assert not any(a.startswith("--gres") for a in cpu_only)


def test_job_names_name_the_job_attempt_and_step_in_one_word(tmp_path: Path) -> None:
    step = Launch(12, 2, "selftest train", (), {}, tmp_path, attempt=3)
    assert job_name("ab12", step) == "colabot-ab12-job12-a3-s3-selftest-train"
    odd = Launch(12, 2, "project command a\nb $(x) é", (), {}, tmp_path, attempt=3)
    assert job_name("ab12", odd) == "colabot-ab12-job12-a3-s3-project-command-a-b-x"


def test_job_ids_from_sbatch(tmp_path: Path) -> None:
    assert parse_job_id("4242\n") == "4242"
    assert parse_job_id("4242;hpc\n") == "4242"
    with pytest.raises(ValueError):
        parse_job_id("sbatch: error: Batch job submission failed\n")


def test_squeue_lines_give_state_reason_node_and_end() -> None:
    pending = parse_squeue("PENDING|Resources||N/A\n")
    assert pending is not None and pending.active
    assert placement_of(pending).waiting == "waiting: Resources"
    running = parse_squeue("RUNNING|None|node1|2026-12-01T19:23:29\n")
    assert running is not None and running.node == "node1" and running.ends_at is not None
    where = placement_of(running)
    assert where.node == "node1" and where.waiting is None and where.ends_at == running.ends_at
    assert parse_squeue("") is None


def test_scontrol_gives_the_end_state_and_exit_code() -> None:
    record = parse_scontrol(SCONTROL_CANCELLED)
    assert record is not None and not record.active
    assert (record.state, record.exit_code, record.signal, record.node) == (
        "CANCELLED",
        0,
        15,
        "node1",
    )
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified\n") is None


def test_sacct_lines() -> None:
    record = parse_sacct("FAILED|2:0|gpu07\n")
    assert record is not None and (record.state, record.exit_code, record.node) == (
        "FAILED",
        2,
        "gpu07",
    )
    cancelled = parse_sacct("CANCELLED by 1000|0:15|None assigned\n")
    assert cancelled is not None and cancelled.state == "CANCELLED" and cancelled.node == ""


@pytest.mark.parametrize(
    ("line", "words", "resumable", "code"),
    [
        ("COMPLETED|0:0|n1", None, False, 0),
        ("FAILED|3:0|n1", None, False, 3),
        ("FAILED|0:9|n1", None, False, -9),
        ("TIMEOUT|0:0|n1", "Slurm time limit (slurm.time_limit = 12:00:00)", False, None),
        ("OUT_OF_MEMORY|0:125|n1", "ran out of memory", False, None),
        ("NODE_FAIL|0:0|n1", "the node it ran on (n1) failed", True, None),
        ("PREEMPTED|0:0|n1", "preempted", True, None),
        ("CANCELLED|0:15|n1", "cancelled on the cluster", False, None),
    ],
)
def test_end_states_become_clear_reasons(
    line: str, words: str | None, resumable: bool, code: int | None
) -> None:
    record = parse_sacct(line)
    assert record is not None
    end = exit_of(record, SlurmSettings())
    assert end.returncode == code and end.resumable is resumable
    if words is None:
        assert end.reason is None
    else:
        assert end.reason is not None and words in end.reason


SINFO = (
    "node1|debug*|gpu:2|gpu:1|1/1/0/2|mixed|\n"
    "node2|debug*|gpu:a100:2(S:0-1)|gpu:a100:0(IDX:N/A)|0/4/0/4|idle|\n"
    "node3|debug*|gpu:2|gpu:0|0/0/4/4|drained|\n"
    "cpu1|cpu|(null)|gpu:0|2/6/0/8|mixed|\n"
)


def test_sinfo_gives_each_partition_its_nodes_and_free_gpus() -> None:
    nodes = parse_sinfo_nodes(SINFO)
    assert default_partition(SINFO) == "debug"
    debug = capacity_of(nodes, "debug")
    assert (debug.nodes, debug.gpus, debug.free_gpus, debug.largest_node_gpus) == (3, 6, 3, 2)
    assert debug.details == ("1 node down or drained",)
    cpu = capacity_of(nodes, "cpu")
    assert (cpu.nodes, cpu.gpus, cpu.free_cpus) == (1, 0, 6)
