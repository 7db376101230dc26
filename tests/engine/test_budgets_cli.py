"""`gflops=` / `latency=` budgets and `route=` from the command line, through to the routing core."""

import json

import pytest

from dydet.cli import entrypoint, parse_args


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        entrypoint(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_budgets_are_arguments_of_val_predict_export():
    for mode in ("val", "predict", "export"):
        assert parse_args([mode, "model=a.pt", "gflops=5.5", "--latency", "12"])[1] == {
            "model": "a.pt",
            "gflops": 5.5,
            "latency": 12.0,
        }


def test_out_of_range_budget_is_one_line_with_the_reachable_range(capsys, full_run):
    ckpt = full_run[0].ckpt_path
    code, err = run_cli(capsys, "val", f"model={ckpt}", "gflops=100000")
    assert code == 1 and err.count("\n") == 1
    assert "gflops=100000.0 is out of reach: routing this model costs" in err and "(all hard)" in err


def test_export_route_from_the_command_line(capsys, full_run, tmp_path):
    ckpt = full_run[0].ckpt_path
    code, _ = run_cli(capsys, "export", f"model={ckpt}", "route=easy", f"project={tmp_path}", "name=e")
    assert code == 0
    assert json.loads((tmp_path / "e" / "metadata.json").read_text())["route"] == "easy"


@pytest.mark.parametrize("args", [["threshold=0.3", "route=easy"], ["gflops=5", "hard_ratio=0.5"]])
def test_conflicting_routing_arguments_are_one_line_errors(capsys, full_run, args):
    code, err = run_cli(capsys, "val", f"model={full_run[0].ckpt_path}", *args)
    assert code == 1 and err.count("\n") == 1 and "not" in err
