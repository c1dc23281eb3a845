"""bench.py's analytic FLOP counts against the layers the networks really run.

The independent count hooks every convolution and linear layer of a narrow StyledGenerator and
Discriminator, reads the shapes of its weight, input and output during a forward pass, and adds
2 x multiply-adds; bench.py counts from the channel tables alone. They must agree exactly.

The --json results and the --compare table are tested on fabricated results, with the benchmark
itself replaced: a bad REF or --json path must fail before anything is timed.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jittor as jt

from networks import shapes
from tools import bench
import model
from model import Discriminator, StyledGenerator, size_for_step

CODE = 8
WIDTH = 8
BATCH = 2


def counted_flops(network, run):
    """2 x multiply-adds of every conv / linear layer that ``run()`` executes in ``network``."""
    total = []

    def conv(module, inputs, output):
        weight = module.weight_orig
        out_channels, in_channels, k, _ = weight.shape
        n, _, h, w = output.shape
        total.append(2 * n * out_channels * in_channels * k * k * h * w)

    def linear(module, inputs, output):
        out_dim, in_dim = module.weight_orig.shape
        total.append(2 * output.shape[0] * out_dim * in_dim)

    def fused_up(module, inputs, output):
        # transposed conv: every input pixel meets the whole (k+1) x (k+1) box-filtered kernel
        in_channels, out_channels, k, _ = module.weight.shape
        n, _, h, w = inputs[0].shape
        total.append(2 * n * in_channels * out_channels * (k + 1) ** 2 * h * w)

    def fused_down(module, inputs, output):
        out_channels, in_channels, k, _ = module.weight.shape
        n, _, h, w = output.shape
        total.append(2 * n * out_channels * in_channels * (k + 1) ** 2 * h * w)

    hooks = {model.ScaledWeightConv2d: conv, model.ScaledWeightLinear: linear,
             model.FusedUpsample: fused_up, model.FusedDownsample: fused_down}
    hooked = []
    for module in network.modules():
        for kind, hook in hooks.items():
            if type(module) is kind:
                module.register_forward_hook(hook)
                hooked.append(module)
    with jt.no_grad():
        run()
    for module in hooked:
        module.remove_forward_hook()
    return sum(total)


@pytest.mark.parametrize("step", [0, 1, 3, 5])
def test_generator_flops_match_the_layers_it_runs(step):
    generator = StyledGenerator(code_dim=CODE, width=WIDTH)
    latents = [jt.randn(BATCH, CODE), jt.randn(BATCH, CODE)]
    counted = counted_flops(generator, lambda: generator(latents, step=step, alpha=1).sync())
    assert counted == BATCH * shapes.generator_flops(step, WIDTH, CODE, latents=2)
    assert counted > 0


@pytest.mark.parametrize("step", [0, 1, 3, 5])
def test_discriminator_flops_match_the_layers_it_runs(step):
    discriminator = Discriminator(width=WIDTH)
    size = size_for_step(step)
    images = jt.randn(BATCH, 3, size, size)
    counted = counted_flops(discriminator,
                            lambda: discriminator(images, step=step, alpha=1).sync())
    assert counted == BATCH * shapes.discriminator_flops(step, WIDTH)


def test_flop_formulas_by_hand():
    assert shapes.conv_flops(3, 4, 3, 5) == 2 * 3 * 4 * 9 * 25
    assert shapes.linear_flops(7, 5) == 70
    # 4 px generator, width 512: mapping 8 x 512^2, two AdaIN linears 512 -> 1024, the 3x3 conv
    # 512 -> 512 on 4x4 (the constant input needs no conv1), the 1x1 to-RGB 512 -> 3.
    expected = 2 * (8 * 512 * 512 + 2 * 512 * 1024 + 512 * 512 * 9 * 16 + 512 * 3 * 16)
    assert shapes.generator_flops(0) == expected
    # A training iteration is 4 generator and 11 discriminator forwards per image.
    assert shapes.training_flops(0, 3) == 3 * (
        4 * shapes.generator_flops(0, latents=2) + 11 * shapes.discriminator_flops(0))


def test_compile_log_is_parsed_and_other_lines_pass_through(capfd):
    with bench.jittor_compile_log() as compiled:
        os.write(2, b"\rCompiling Operators(3/3) used: 1.5s eta: 0s \n")
        os.write(2, b"\rCompiling Operators(2/2) used: 0.25s eta: 0s \n")
    assert compiled == dict(ops=5, seconds=1.75)
    with bench.jittor_compile_log() as compiled:
        os.write(2, b"a real warning\n")
    assert compiled == dict(ops=0, seconds=0.0)
    assert "a real warning" in capfd.readouterr().err


def test_table_row_arithmetic():
    timing = (4.0, dict(ops=7, seconds=3.0), [0.5, 0.25, 1.0])
    r = bench.row("x", 8, 16, timing, flops=2e9, peak=10.0)
    assert r["median"] == 0.5 and r["images"] == 32
    assert np.isclose(r["gflops"], 4.0) and np.isclose(r["peak"], 40.0)
    assert r["compile"] == 3.0 and r["compiled_ops"] == 7


# ------------------------------------------------------------------------------------------------
# --json and --compare (no benchmark runs: the results are fabricated)
# ------------------------------------------------------------------------------------------------

def record(label, px, batch, seconds, gflops, peak_percent):
    return dict(label=label, px=px, batch=batch, s_per_call=seconds, images_per_s=batch / seconds,
                gflop_per_call=gflops * seconds, gflops=gflops, peak_percent=peak_percent,
                first_call_s=1.0, compiled_ops=0, compile_s=0.0)


def results(rows, width=8, code_dim=8, iters=1, cpu="Test CPU", peak=100.0):
    machine = dict(cpu=cpu, cores=2, device="CPU", jittor="1.3.0", onednn=True,
                   omp_num_threads="1")
    return dict(format=bench.RESULTS_FORMAT, version=bench.RESULTS_VERSION,
                date="2025-01-01T00:00:00+00:00", machine=machine, peak_gflops=peak,
                peak_how="fabricated", options=dict(width=width, code_dim=code_dim, iters=iters,
                                                    quick=True),
                load_average=dict(before=0.5, after=None), rows=rows)


BEFORE = results([record("generator inference", 32, 16, 2.0, 50.0, 50.0),
                  record("training iteration", 8, 32, 3.0, 40.0, 40.0),
                  record("training iteration", 32, 8, 1.0, 30.0, 30.0)])
AFTER = results([record("generator inference", 32, 16, 0.5, 200.0, 190.0),
                 record("training iteration", 8, 32, 4.0, 30.0, 29.0),
                 record("training iteration", 8, 16, 1.0, 20.0, 19.0),
                 record("training iteration", 16, 16, 1.0, 20.0, 19.0)], iters=3, cpu="Other CPU")


def test_rows_are_compared_by_label_px_and_batch():
    comparison = bench.compare_results(BEFORE, AFTER)
    assert [(c["label"], c["px"], c["batch"], c["speedup"]) for c in comparison] == [
        ("generator inference", 32, 16, 4.0),          # 2.0 s -> 0.5 s: 4x faster now
        ("training iteration", 8, 32, 0.75),           # 3.0 s -> 4.0 s: slower now
        ("training iteration", 32, 8, None),           # only before
        ("training iteration", 8, 16, None),           # only after (same px, other batch)
        ("training iteration", 16, 16, None)]          # only after
    assert comparison[0]["before"] is BEFORE["rows"][0]
    assert comparison[0]["after"] is AFTER["rows"][0]
    assert comparison[2]["after"] is None and comparison[3]["before"] is None

    lines = bench.comparison_table(comparison)
    assert len(lines) == 2 + 5 and all(line.count("|") == 11 for line in lines)
    assert "speed-up before/after (>1: faster now)" in lines[0]
    assert lines[2:6] == [
        "| generator inference | 32 | 16 | 2 | 0.5 | 4.00 | 50.0 | 200.0 | 50 % | 190 % |",
        "| training iteration | 8 | 32 | 3 | 4 | 0.75 | 40.0 | 30.0 | 40 % | 29 % |",
        "| training iteration | 32 | 8 | 1 | missing in this run | - | 30.0 | - | 30 % | - |",
        "| training iteration | 8 | 16 | missing in REF | 1 | - | - | 20.0 | - | 19 % |"]
    assert bench.setting_differences(BEFORE, AFTER) == ["cpu Test CPU -> Other CPU",
                                                        "iters 1 -> 3"]
    assert bench.setting_differences(BEFORE, BEFORE) == []


def test_results_dict_from_table_rows():
    timing = (4.0, dict(ops=7, seconds=3.0), [0.5, 0.25, 1.0])
    table_row = bench.row("training iteration", 8, 16, timing, flops=2e9, peak=10.0)
    made = bench.benchmark_results([table_row], dict(cpu="c"), 10.0, "how",
                                   dict(width=8, code_dim=8, iters=3, quick=False),
                                   (float("nan"), 1.5), date="2025-01-01T00:00:00+00:00")
    assert made["rows"] == [dict(label="training iteration", px=8, batch=16, s_per_call=0.5,
                                 images_per_s=32.0, gflop_per_call=2.0, gflops=4.0,
                                 peak_percent=40.0, first_call_s=4.0, compiled_ops=7,
                                 compile_s=3.0)]
    assert made["load_average"] == dict(before=None, after=1.5)   # NaN is not JSON
    assert made["peak_gflops"] == 10.0 and made["options"]["width"] == 8
    assert bench.results_problem(made) is None


def test_results_survive_a_json_round_trip(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    bench.write_results(str(path), AFTER)
    assert bench.read_results(str(path)) == AFTER
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]   # no temporary left


def test_machine_description_names_the_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    machine = bench.machine_description()
    assert machine["omp_num_threads"] == "3" and machine["jittor"] == jt.__version__
    assert machine["cores"] == os.cpu_count() and machine["cpu"]
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert bench.machine_description()["omp_num_threads"] is None


@pytest.fixture
def no_benchmark(monkeypatch):
    """bench.run_benchmark replaced: fails the test if reached, unless given results to return."""
    returned = []

    def run_benchmark(args):
        assert returned, "the benchmark ran although the flags were bad"
        return returned[0]

    monkeypatch.setattr(bench, "run_benchmark", run_benchmark)
    return returned


def exit_of(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        bench.command_line([str(a) for a in argv])
    out, err = capsys.readouterr()
    return caught.value.code, err.splitlines(), out


def test_a_bad_reference_fails_before_the_benchmark(tmp_path, capsys, no_benchmark):
    missing = tmp_path / "missing.json"
    code, err, _ = exit_of(["--width", 8, "--compare", missing], capsys)
    assert (code, err) == (2, [f"bench.py: error: --compare {missing}: no such file (write one "
                               f"first with: python -m tools.bench --json {missing}, on the code to "
                               f"compare against)"])
    code, err, _ = exit_of(["--width", 8, "--compare", ""], capsys)
    assert code == 2 and err[0].startswith("bench.py: error: --compare : no such file")
    code, err, _ = exit_of(["--width", 8, "--compare", tmp_path], capsys)
    assert code == 2 and err == [f"bench.py: error: --compare {tmp_path}: a folder, not a file "
                                 f"(give the file that python -m tools.bench --json wrote)"]

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"format": "bench.py results", "rows": [')
    code, err, _ = exit_of(["--width", 8, "--compare", corrupt], capsys)
    assert code == 1 and err == [f"bench.py: error: --compare {corrupt}: not JSON (Expecting "
                                 f"value at line 1, column 41); write it again with: python "
                                 f"-m tools.bench --json {corrupt}"]
    corrupt.write_bytes(b"\xff\xfe")
    code, err, _ = exit_of(["--width", 8, "--compare", corrupt], capsys)
    assert code == 1 and err[0].endswith("not JSON (not UTF-8 text); write it again with: "
                                         f"python -m tools.bench --json {corrupt}")

    other = tmp_path / "other.json"
    for content, problem in (
            ([1, 2], "a JSON list, not an object"),
            (dict(BEFORE, version=2), 'no "format": "bench.py results", "version": 1'),
            (dict(BEFORE, rows=[dict(BEFORE["rows"][0], s_per_call="fast")]), "row 0 lacks"),
            (dict(BEFORE, rows=BEFORE["rows"][:1] * 2), "row 1 (generator inference, 32 px) "
                                                        "appears twice")):
        other.write_text(json.dumps(content))
        code, err, _ = exit_of(["--width", 8, "--compare", other], capsys)
        assert code == 1 and len(err) == 1, (content, err)
        assert err[0].startswith(f"bench.py: error: --compare {other}: not a bench.py --json "
                                 f"result ({problem}")

    wider = tmp_path / "wider.json"
    bench.write_results(str(wider), results(BEFORE["rows"], width=16, code_dim=16))
    code, err, _ = exit_of(["--width", 8, "--compare", wider], capsys)
    assert (code, err) == (2, [f"bench.py: error: --compare {wider}: measured at --width 16 "
                               f"--code_dim 16, this run is --width 8 --code_dim 8; run with "
                               f"--width 16 --code_dim 16, or compare against a file of this "
                               f"width"])
    code, err, _ = exit_of(["--width", 16, "--code_dim", 8, "--compare", wider], capsys)
    assert code == 2 and "this run is --width 16 --code_dim 8" in err[0]


def test_a_bad_json_path_fails_before_the_benchmark(tmp_path, capsys, no_benchmark):
    code, err, _ = exit_of(["--width", 8, "--json", ""], capsys)
    assert code == 2 and err == ["bench.py: error: --json needs a file name, e.g. --json "
                                 "before.json"]
    code, err, _ = exit_of(["--width", 8, "--json", tmp_path], capsys)
    assert code == 2 and err == [f"bench.py: error: --json {tmp_path}: a folder is in the way; "
                                 f"give a file name, e.g. {tmp_path / 'bench.json'}"]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err, _ = exit_of(["--width", 8, "--json", blocker / "b.json"], capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith(f"bench.py: error: cannot write "
                                                             f"{blocker}")
    code, err, _ = exit_of(["--json", tmp_path / "b.json", "--profile", 8], capsys)
    assert code == 2 and err[-1].endswith("--json and --compare go with the table, not with "
                                          "--profile, --compare_mkl or --conv_layers")


def test_json_and_compare_after_a_run(tmp_path, capsys, no_benchmark):
    reference, written = tmp_path / "before.json", tmp_path / "after.json"
    bench.write_results(str(reference), BEFORE)
    no_benchmark.append(AFTER)
    code, err, out = exit_of(["--width", 8, "--compare", reference, "--json", written], capsys)
    assert (code, err) == (0, [])
    assert bench.read_results(str(written)) == AFTER
    table = bench.comparison_table(bench.compare_results(BEFORE, AFTER))
    assert out.endswith("\n".join(table) + "\n")
    assert f"# before: {reference} (2025-01-01T00:00:00+00:00, peak 100 GFLOP/s)" in out
    assert "# note: the runs differ in cpu Test CPU -> Other CPU; iters 1 -> 3" in out


@pytest.mark.slow
def test_a_missing_reference_exits_2_from_the_command_line(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    missing = tmp_path / "missing.json"
    tiny = ["--width", "8", "--quick", "--iters", "1"]   # should the check ever come too late
    done = subprocess.run([sys.executable, "-m", "tools.bench", *tiny, "--compare",
                           str(missing)], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(f"bench.py: error: --compare "
                                                           f"{missing}: no such file")
    assert "Traceback" not in done.stderr


def test_help_explains_json_and_compare(capsys):
    with pytest.raises(SystemExit) as caught:
        bench.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert caught.value.code == 0
    assert "--json PATH also write this run's results to PATH as JSON" in text
    assert "--compare REF after the run, a second table" in text
    assert "(>1: faster now), GFLOP/s and % of peak of both" in text


def test_every_profile_ablation_names_a_function_that_exists():
    # --profile replaces each by setattr; a moved function made it fail after the profiler ran
    for label, module, attribute, replacement in bench.ABLATIONS:
        assert callable(getattr(module, attribute, None)), (label, module.__name__, attribute)
        assert callable(replacement)
