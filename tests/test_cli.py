"""The fdjax command: calc, TARGET loading and its one-line errors, check/sweep/report outputs."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from fdjax.cli import main
from tests.subprocess_json import run_json

TINY = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp

    def loss(params, x):
        return jnp.sum(jnp.tanh(x @ params["w"] + params["b"]) ** 2)

    PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.array([0.1, -0.2])}
    ARGS = (jnp.linspace(0.0, 1.0, 12).reshape(4, 3),)

    def problem():
        return loss, PARAMS, *ARGS

    @jax.custom_vjp
    def scaled_tanh(z):
        return jnp.tanh(z)

    def _fwd(z):
        return jnp.tanh(z), z

    def _bwd(z, g):
        return (g * (1 - jnp.tanh(z) ** 2) * 1.1,)  # planted bug: 10% too large

    scaled_tanh.defvjp(_fwd, _bwd)

    def buggy():
        def loss(params, x):
            return jnp.sum(scaled_tanh(x @ params["w"] + params["b"]) ** 2)
        return loss, PARAMS, *ARGS

    def kinked():
        # |a| at a = 0: every measurement of ['a'] is a kink, so the check cannot verify it
        def loss(params, x):
            return jnp.sum(jnp.abs(params["a"])) + jnp.sum(jnp.tanh(x @ params["w"]) ** 2)
        return loss, {"a": jnp.zeros(3), "w": PARAMS["w"]}, *ARGS

    def vector_loss():
        return (lambda p: p * 2.0), jnp.ones(3)

    def needs_args(a):
        return a

    def broken():
        raise RuntimeError("dataset not found")

    def not_a_tuple():
        return 3

    NOT_CALLABLE = 42
    """
)


@pytest.fixture(autouse=True)
def no_compilation_cache(monkeypatch):
    """The command's compilation cache is on by default; here only the tests of the cache turn
    it on (in a temporary folder), so that the suite does not write the user's cache."""
    monkeypatch.setenv("FDJAX_CACHE", "0")


@pytest.fixture
def target_file(tmp_path):
    path = tmp_path / "tiny_model.py"
    path.write_text(TINY)
    return str(path)


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------ calc


def test_calc_first_worked_example(capsys):
    code, out, _ = run(
        [
            "calc",
            "--theta",
            "0.75",
            "--J",
            "0.1875",
            "--eps",
            "0.001",
            "--J-plus",
            "0.188999",
            "--J-minus",
            "0.186001",
        ],
        capsys,
    )
    assert code == 0
    assert "(0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499" in out
    for line in ("θ+ε          0.751", "θ−ε          0.749", "numerator    0.002998", "denominator  0.002"):
        assert line in out


@pytest.mark.parametrize("method, gradient", [("forward", 2.01), ("central", 2.0), ("backward", 1.99)])
def test_calc_second_worked_example_json(method, gradient, capsys):
    code, out, _ = run(
        [
            "calc",
            "--theta",
            "1",
            "--J",
            "1",
            "--eps",
            "0.01",
            "--J-plus",
            "1.0201",
            "--J-minus",
            "0.9801",
            "--method",
            method,
            "--json",
        ],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["gradient"] == gradient and doc["method"] == method
    assert doc["text"]["gradient"] == {"forward": "2.01", "central": "2.00", "backward": "1.99"}[method]


def test_calc_table(capsys):
    code, out, _ = run(["calc", "--theta", "1", "--table"], capsys)
    assert code == 0
    assert "J(θ) = θ² at θ = 1" in out and "1e-07" in out and "central" in out
    code, out, _ = run(["calc", "--theta", "1", "--table", "--json"], capsys)
    assert json.loads(out)["table"]["rows"][0]["epsilon"] == 0.1
    code, default, _ = run(["calc", "--table"], capsys)  # θ defaults to 1
    assert code == 0 and "J(θ) = θ² at θ = 1" in default


def test_calc_warns_on_unused_inputs(capsys):
    argv = ["calc", "--method", "forward", "--theta", "1", "--J", "1", "--eps", "0.01", "--J-plus", "1.0201"]
    code, out, err = run([*argv, "--J-minus", "0.5"], capsys)
    assert code == 0 and "--J-minus = 0.5 is not used by the forward difference" in out
    code, out, err = run([*argv, "--J-minus", "0.5", "--json"], capsys)
    assert json.loads(out)["warnings"] and "--J-minus = 0.5 is not used" in err
    code, out, err = run(argv, capsys)
    assert "warning" not in out and err == ""


def test_calc_refuses_a_step_that_does_not_move_theta(capsys):
    code, out, err = run(
        ["calc", "--theta", "1", "--eps", "1e-300", "--J-plus", "1", "--J-minus", "1"], capsys
    )
    assert code == 2 and "--eps = 1e-300 does not move θ = 1 in float64" in err


def test_calc_plot(tmp_path, capsys):
    path = tmp_path / "calc.png"
    code, out, _ = run(
        [
            "calc",
            "--theta",
            "1",
            "--eps",
            "0.5",
            "--J",
            "1",
            "--J-plus",
            "2.25",
            "--J-minus",
            "0.25",
            "--plot",
            str(path),
        ],
        capsys,
    )
    assert code == 0 and f"wrote {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--theta", "1", "--eps", "0.01", "--J-plus", "1.02"],
            "--method central needs --eps (ε), --J-plus (J(θ+ε)), --J-minus (J(θ−ε)); "
            "missing: --J-minus (J(θ−ε))",
        ),
        (
            ["--theta", "1", "--eps", "0.01", "--method", "forward", "--J-minus", "1"],
            "missing: --J (J(θ)), --J-plus (J(θ+ε))",
        ),
        (
            ["--theta", "1", "--eps", "0.01", "--method", "backward"],
            "missing: --J (J(θ)), --J-minus (J(θ−ε))",
        ),
        (["--theta", "1", "--J-plus", "1", "--J-minus", "1"], "missing: --eps (ε)"),
        (
            ["--eps", "-0.01", "--J-plus", "1", "--J-minus", "1"],
            "--eps must be positive and finite, got '-0.01'",
        ),
        (["--eps", "0", "--J-plus", "1", "--J-minus", "1"], "--eps must be positive and finite, got '0'"),
        (["--eps", "nan", "--J-plus", "1", "--J-minus", "1"], "--eps must be finite, got 'nan'"),
        (["--eps", "1", "--J-plus", "one", "--J-minus", "1"], "--J-plus must be a finite number, got 'one'"),
        (["--eps", "1", "--J-plus", "1", "--J-minus", "1", "--plot", "x.png"], "--plot needs --theta (θ)"),
    ],
)
def test_calc_bad_usage(argv, message, capsys):
    code, out, err = run(["calc", *argv], capsys)
    assert code == 2
    assert err.startswith("fdjax calc: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_calc_unknown_method_is_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["calc", "--eps", "1", "--method", "sideways"])
    assert e.value.code == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- TARGET errors


@pytest.mark.parametrize(
    "argv, message",
    [
        (["no_such_module_xyz:f"], "TARGET 'no_such_module_xyz:f': no module named 'no_such_module_xyz'"),
        (["fdjax.examples:nope"], "TARGET 'fdjax.examples:nope': 'fdjax.examples' has no attribute 'nope'"),
        (
            ["fdjax.examples"],
            "TARGET must be module:function or path/to/file.py:function, got 'fdjax.examples'",
        ),
        (["missing/file.py:f"], "TARGET 'missing/file.py:f': no such file 'missing/file.py'"),
        (["{file}:NOT_CALLABLE"], "TARGET '{file}:NOT_CALLABLE' is not callable (it is a int)"),
        (
            ["{file}:vector_loss"],
            "TARGET '{file}:vector_loss': the loss returns shape (3,); expected a scalar",
        ),
        (["{file}:needs_args"], "TARGET '{file}:needs_args' takes arguments: pass --params module:attribute"),
        (["{file}:broken"], "TARGET '{file}:broken': calling it failed: RuntimeError: dataset not found"),
        (
            ["{file}:not_a_tuple"],
            "TARGET '{file}:not_a_tuple' returned a int; expected (loss_fn, params, *args)",
        ),
        (
            ["{file}:loss", "--params", "{file}:NOPE"],
            "--params '{file}:NOPE': '{file}' has no attribute 'NOPE'",
        ),
        (["{file}:loss", "--args", "{file}:ARGS"], "--args needs --params"),
        (
            ["{file}:loss", "--params", "{file}:PARAMS"],
            "TARGET '{file}:loss': calling loss_fn(params, *args) failed: TypeError:",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "sweep", "report"])
def test_bad_target_is_one_line(command, argv, message, target_file, capsys):
    argv = [a.replace("{file}", target_file) for a in argv]
    code, out, err = run([command, *argv, "-q"], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"fdjax {command}: error: " + message.replace("{file}", target_file))


def test_bad_syntax_in_target_file(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    code, _, err = run(["check", f"{bad}:f", "-q"], capsys)
    assert code == 2 and "importing" in err and "SyntaxError" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "--chunk-size", "0"], "--chunk-size: must be a positive integer, got '0'"),
        (["check", "--step", "-1"], "--step: must be positive and finite, got '-1'"),
        (["check", "--step", "tiny"], "--step: must be a positive number or 'auto', got 'tiny'"),
        (["check", "--mode", "half"], "--mode: invalid choice: 'half'"),
        (["report", "--format", "pdf"], "--format: invalid choice: 'pdf'"),
    ],
)
def test_bad_options_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------- check / report


@pytest.mark.parametrize("form", ["factory", "params"])
def test_check_passes_on_correct_gradient(form, target_file, capsys):
    argv = (
        [f"{target_file}:problem"]
        if form == "factory"
        else [f"{target_file}:loss", "--params", f"{target_file}:PARAMS", "--args", f"{target_file}:ARGS"]
    )
    code, out, err = run(["check", *argv], capsys)
    assert code == 0, err
    assert "PASSED" in out


def test_check_fails_with_exit_1_and_names_the_leaf(target_file, capsys):
    code, out, err = run(["check", f"{target_file}:buggy", "-q", "--format", "json"], capsys)
    assert code == 1, err
    doc = json.loads(out)
    assert doc["verdict"]["passed"] is False and doc["verdict"]["status"] == "failed"
    assert doc["verdict"]["reason"] is None and doc["check"]["status"] == "fail"
    assert doc["verdict"]["failing_leaves"]
    # --allow-inconclusive does not excuse a failure; --exit-zero does.
    assert run(["check", f"{target_file}:buggy", "-q", "--allow-inconclusive"], capsys)[0] == 1
    assert run(["check", f"{target_file}:buggy", "-q", "--exit-zero"], capsys)[0] == 0


def test_inconclusive_check_exits_3_and_says_why(target_file, capsys):
    from fdjax import Reason
    from fdjax.cli.command import EXIT_INCONCLUSIVE

    assert EXIT_INCONCLUSIVE == 3
    code, out, err = run(["check", f"{target_file}:kinked", "-q", "--format", "json"], capsys)
    assert code == 3, err
    doc = json.loads(out)
    v = doc["verdict"]
    assert (v["status"], v["reason"], v["passed"]) == ("inconclusive", "kink", False)
    assert v["remedy"] == Reason.KINK.remedy() and v["inconclusive_leaves"] == [
        {"path": "['a']", "reason": "kink"}
    ]
    assert (doc["check"]["status"], doc["check"]["reason"]) == ("inconclusive", "kink")
    assert doc["options"]["mode"] == "auto" and v["mode"] == doc["check"]["mode"] == "full"
    code, out, err = run(["check", f"{target_file}:kinked"], capsys)
    flat = " ".join(out.split())  # the terminal text wraps long lines
    assert code == 3 and out.startswith("Gradient check INCONCLUSIVE") and Reason.KINK.remedy() in flat
    assert run(["check", f"{target_file}:kinked", "-q", "--allow-inconclusive"], capsys) == (0, "", "")
    assert run(["check", f"{target_file}:kinked", "-q", "--exit-zero"], capsys) == (0, "", "")


def test_inconclusive_report_is_written_and_exits_3(target_file, tmp_path, capsys):
    path = tmp_path / "r.md"
    argv = ["report", f"{target_file}:kinked", "-q", "--no-sweep", "--no-landscape", "-o", str(path)]
    code, out, err = run(argv, capsys)
    assert code == 3, err
    assert "**⚠️ Gradient check INCONCLUSIVE" in path.read_text()
    assert run([*argv, "--allow-inconclusive"], capsys)[0] == 0


def test_check_float32_and_subset(target_file, capsys):
    code, out, err = run(
        [
            "check",
            f"{target_file}:problem",
            "-q",
            "--dtype",
            "float32",
            "--mode",
            "subset",
            "-k",
            "2",
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["problem"]["dtype"] == "float32" and doc["options"]["mode"] == "subset"
    assert doc["verdict"]["mode"] == doc["check"]["mode"] == "subset"


@pytest.mark.parametrize("fmt", ["text", "json", "md"])
def test_sweep_formats(fmt, target_file, capsys):
    code, out, err = run(["sweep", f"{target_file}:problem", "-q", "--format", fmt], capsys)
    assert code == 0, err
    if fmt == "json":
        assert json.loads(out)["sweep"] is not None
    elif fmt == "md":
        assert "## Step sweep" in out
    else:
        assert "Step sweep" in out


def test_report_writes_each_format(target_file, tmp_path, capsys):
    for suffix in ("html", "md", "json"):
        path = tmp_path / f"r.{suffix}"
        code, out, err = run(
            ["report", f"{target_file}:problem", "-q", "--resolution", "5", "-o", str(path)], capsys
        )
        assert code == 0, err
        text = path.read_text()
        assert {"html": "<!DOCTYPE html>", "md": "# fdjax report", "json": '"schema": "fdjax.report/2"'}[
            suffix
        ] in text


def test_report_unwritable_output(target_file, tmp_path, capsys):
    code, _, err = run(
        [
            "report",
            f"{target_file}:problem",
            "-q",
            "--no-sweep",
            "--no-landscape",
            "--resolution",
            "3",
            "-o",
            str(tmp_path / "no" / "dir" / "r.html"),
        ],
        capsys,
    )
    assert code == 2 and "-o" in err and "No such file or directory" in err


def test_python_dash_m_is_the_command(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fdjax",
            "calc",
            "--eps",
            "0.5",
            "--J-plus",
            "2.25",
            "--J-minus",
            "0.25",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["gradient"] == 2.0
    r = subprocess.run(
        [sys.executable, "-m", "fdjax", "check", "no_such_mod:f", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_command_offers_the_library_methods_and_modes():
    import fdjax
    from fdjax import _check
    from fdjax.cli import command as cli_main

    assert sorted(cli_main.METHODS) == sorted(fdjax.METHODS)
    assert cli_main.MODES == _check.MODES
    parser = cli_main.build_parser()
    for command in ("check", "report"):
        ns = parser.parse_args([command])
        assert ns.mode == "auto" and not ns.allow_inconclusive and not ns.exit_zero


# ------------------------------------------------------------------------ dtype and 64-bit JAX


def test_a_float32_model_is_checked_in_float32_and_jax_is_left_as_it_was(target_file):
    """With 64-bit JAX off (a fresh process, as a user runs the command), a float32 model is
    checked in float32; --dtype float64 turns 64-bit mode on for the job only, before TARGET
    is imported (its arrays are created in float64). Not quiet: the progress counter's host
    callbacks, which run in another thread, see 64-bit mode too."""
    code = textwrap.dedent(
        f"""
        import contextlib, io, json
        import jax
        from fdjax.cli import main

        def check(*extra):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = main(["check", {target_file + ":problem"!r}, "--format", "json", *extra])
            doc = json.loads(out.getvalue())
            return [status, doc["problem"]["dtype"], doc["check"]["dtype"], doc["meta"]["x64"],
                    bool(jax.config.jax_enable_x64)]

        print(json.dumps([check(), check("--dtype", "float64"), check("--precision", "float64")]))
        """
    )
    got = run_json(code, env={"JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu", "FDJAX_CACHE": "0"}, timeout=300)
    assert got == [
        [0, "float32", "float32", False, False],
        [0, "float64", "float64", True, False],
        [0, "float64", "float64", True, False],
    ]


@pytest.mark.parametrize(
    "argv, x64",
    [
        (["check", "m.py:f"], False),
        (["check", "m.py:f", "--dtype", "float32"], False),
        (["check", "m.py:f", "--dtype", "float64"], True),
        (["report", "m.py:f", "--precision", "float64"], True),
        (["sweep", "m.py:f", "--dtype", "float64"], True),
        (["report"], True),  # the built-in CNN is a float64 model
        (["check", "fdjax.examples:mlp"], True),
        (["check", "fdjax.examples:mlp", "--dtype", "float32"], False),
    ],
)
def test_64_bit_jax_only_when_float64_is_asked_for_or_built_in(argv, x64):
    from fdjax.cli.command import _wants_x64, build_parser

    assert _wants_x64(build_parser().parse_args(argv)) is x64


# ------------------------------------------------------------------------ compilation cache


def test_the_cache_is_on_by_default_off_with_no_cache_or_fdjax_cache_0(monkeypatch, tmp_path):
    from fdjax.cli.command import _cache_folder, build_parser

    parse = build_parser().parse_args
    monkeypatch.delenv("FDJAX_CACHE")
    monkeypatch.delenv("FDJAX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache_folder(parse(["check"])) == str(tmp_path / "xdg" / "fdjax" / "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _cache_folder(parse(["sweep"])) == str(tmp_path / ".cache" / "fdjax" / "jax")
    monkeypatch.setenv("FDJAX_CACHE_DIR", str(tmp_path / "moved"))
    assert _cache_folder(parse(["report"])) == str(tmp_path / "moved")
    assert _cache_folder(parse(["check", "--no-cache"])) is None
    for off in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("FDJAX_CACHE", off)
        assert _cache_folder(parse(["check"])) is None
    monkeypatch.setenv("FDJAX_CACHE", "1")
    assert _cache_folder(parse(["check"])) == str(tmp_path / "moved")


def test_bad_fdjax_cache_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("FDJAX_CACHE", "sometimes")
    code, out, err = run(["check", "fdjax.examples:mlp", "-q"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("fdjax check: error: the environment variable FDJAX_CACHE must be one of ['0', ")
    assert "got 'sometimes'" in err


def test_the_job_writes_the_cache_and_restores_jax(target_file, tmp_path, monkeypatch, capsys):
    where = tmp_path / "cache"
    monkeypatch.setenv("FDJAX_CACHE", "1")
    monkeypatch.setenv("FDJAX_CACHE_DIR", str(where))
    before = jax.config.jax_compilation_cache_dir
    code, out, err = run(["check", f"{target_file}:problem", "-q", "--mode", "directional"], capsys)
    assert code == 0, err
    assert any(p.name.endswith("-cache") for p in where.iterdir())
    assert jax.config.jax_compilation_cache_dir == before


def test_an_unusable_cache_folder_is_a_note_not_an_error(target_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("FDJAX_CACHE", "1")
    monkeypatch.setenv("FDJAX_CACHE_DIR", str(tmp_path / "file"))
    monkeypatch.setattr("fdjax.report._progress.default_style", lambda stream, quiet: "lines")
    before = jax.config.jax_compilation_cache_dir
    code, out, err = run(["check", f"{target_file}:problem", "--mode", "directional"], capsys)
    assert code == 0 and "PASSED" in out
    assert "fdjax: compilation cache off: the compilation cache folder must be a folder that can be " in err
    assert jax.config.jax_compilation_cache_dir == before


@pytest.mark.slow
def test_a_second_process_compiles_nothing_new(target_file, tmp_path):
    """The second `fdjax check` of the same model finds every program in the cache: it writes
    no new entry (a program it compiled again would be written)."""
    env = {"FDJAX_CACHE_DIR": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu", "JAX_ENABLE_X64": "0"}
    env.pop("FDJAX_CACHE", None)
    full = {k: v for k, v in os.environ.items() if k not in ("FDJAX_CACHE", "XLA_FLAGS")}
    entries = []
    for _ in range(2):
        r = subprocess.run(
            [sys.executable, "-m", "fdjax", "check", f"{target_file}:problem", "-q"],
            capture_output=True,
            text=True,
            env={**full, **env},
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        entries.append(sorted(p.name for p in (tmp_path / "cache").iterdir()))
    assert entries[0] and entries[1] == entries[0]
