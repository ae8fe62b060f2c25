"""A user's first commands print only what they are about: the real `cpm` and `cpm-studio` entry points, run as
programs, leave stderr free of TensorFlow / absl / CUDA / TFLite / Qt start-up lines on a good run (issue #19),
and `cpm-studio` without a display says so in one line instead of letting Qt abort.

Each run is a fresh process, because the noise comes from C++ libraries writing to file descriptor 2 while
TensorFlow starts: only a new process shows it. The environment the suite sets for itself (conftest's
TF_CPP_MIN_LOG_LEVEL, CUDA_VISIBLE_DEVICES) is removed, so what is tested is the programs' own defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import native_stderr_filtered, verbose_requested

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "tests" / "fixtures" / "media"
# Generous: a safety net for a hung process on a busy 2-core machine, not a speed assertion.
TIMEOUT_S = 600


def _entry_point(name: str, module: str) -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else the same `main` by module."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", module]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "CPM_VERBOSE", "CPM_TF_VERBOSE",
                        "QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _run(cmd: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=tmp_path, env=_clean_env(**env), capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)


def test_cpm_help_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """`cpm --help` builds every subcommand's parser, which imports TensorFlow: none of its start-up lines."""
    r = _run([*_entry_point("cpm", "training.cli"), "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "infer" in r.stdout and "--verbose" in r.stdout
    assert r.stderr == ""


def test_cpm_infer_prints_only_its_own_lines_on_stderr(tmp_path: Path) -> None:
    """`cpm infer` on one image runs TensorFlow and the TFLite palm detector (whose interpreter announces its
    XNNPACK delegate from C++): stderr holds only cpm infer's own report, and the keypoints are written."""
    out = tmp_path / "poses.json"
    r = _run([*_entry_point("cpm", "training.cli"), "infer", str(MEDIA / "hand.jpg"), "--json", str(out),
              "--out-dir", str(tmp_path / "media")], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(line.startswith("cpm infer: ") for line in lines), r.stderr
    assert any("1 frame(s)" in line for line in lines)
    assert len(json.loads(out.read_text())["results"]) == 1


def test_cpm_studio_screenshot_run_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """The app's scripted run (offscreen Qt, the embedded model, a real clip) leaves stderr empty and saves the
    screenshot: no TensorFlow, CUDA, TFLite or Qt offscreen-plugin lines."""
    shot = tmp_path / "shot.png"
    r = _run([*_entry_point("cpm-studio", "app.main"), "--source", str(MEDIA / "hand_clip.mp4"), "--frames", "2",
              "--screenshot", str(shot), "--quit"], tmp_path, QT_QPA_PLATFORM="offscreen")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert shot.stat().st_size > 10_000


def test_cpm_studio_without_a_display_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    """No DISPLAY, no WAYLAND_DISPLAY, no QT_QPA_PLATFORM: Qt's xcb plugin would abort (exit 134) with a page of
    plugin messages; instead one line names the problem and the offscreen way to script screenshots."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for Linux's X11 / Wayland")
    r = _run([*_entry_point("cpm-studio", "app.main"), "--source", str(MEDIA / "hand.jpg")], tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cpm-studio: no display")
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]


def test_native_stderr_filter_drops_start_up_noise_and_keeps_real_errors(capfd: pytest.CaptureFixture[str]) -> None:
    """The filter works on file descriptor 2, where C++ writes: the known start-up lines go, anything else (a real
    error) is passed on, and when the block fails everything it printed is shown."""
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796123496.419458   30421 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796123496.419919   30421 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        "E0000 00:00:1796123517.161627   30421 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ]
    real = "E0000 00:00:1796123517.161627   30421 op_kernel.cc:1857] OP_REQUIRES failed: out of memory"
    with native_stderr_filtered():
        os.write(2, ("\n".join([*noise[:3], real, *noise[3:]]) + "\n").encode())
    assert capfd.readouterr().err.splitlines() == [real]

    with pytest.raises(RuntimeError), native_stderr_filtered():
        os.write(2, (noise[1] + "\n").encode())
        raise RuntimeError("start failed")
    assert capfd.readouterr().err.splitlines() == [noise[1]]


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, False),
    (["infer", "x.jpg", "--verbose"], {}, True),
    (["infer", "--", "--verbose"], {}, False),  # after `--` it is a file name, not the flag
    ([], {"CPM_VERBOSE": "1"}, True),
    ([], {"CPM_VERBOSE": "0"}, False),
])
def test_verbose_is_asked_by_flag_anywhere_or_by_environment(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                             env: dict[str, str], expected: bool) -> None:
    """Verbosity must be known before TensorFlow is imported, so it is read from the raw command line."""
    monkeypatch.delenv("CPM_VERBOSE", raising=False)
    monkeypatch.delenv("CPM_TF_VERBOSE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert verbose_requested(argv) is expected
