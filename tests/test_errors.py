"""depo.errors: what a command prints and returns when the user's input is wrong or Ctrl-C comes."""

from __future__ import annotations

from depo.errors import DepoError, run_command


def test_a_depo_error_is_one_line_and_exit_code_2(capsys):
    def bad():
        raise DepoError("--texts: nope is neither 'math', 'gym' nor a file")

    assert run_command(bad, "python -m depo.bench.speed") == 2
    assert capsys.readouterr().err == "python -m depo.bench.speed: error: --texts: nope is neither 'math', 'gym' nor a file\n"


def test_ctrl_c_exits_130_and_success_0(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert run_command(interrupted) == 130 and "depo: interrupted" in capsys.readouterr().err
    assert run_command(lambda: None) == 0 and run_command(lambda: 3) == 3
