"""A model that is not one: one line naming the path and what is wrong, exit code 2, and no
Ultralytics warning, list of formats or help link on the way (``run`` and ``check --load-model``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from streamyolo.errors import ModelError
from streamyolo.inference.models import DEMO_MODEL_PATH, load_yolo, resolve_model
from tests.helpers import PYTHON, ROOT, env_for_subprocess

NOISE = ("WARNING ⚠️", "Ultralytics supports", "docs.ultralytics.com", "ray.run", "Traceback", "arbage")


def _streamyolo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "streamyolo", *args], capture_output=True, encoding="utf-8", timeout=200,
                          env=env_for_subprocess(), cwd=ROOT, check=False)


def _bad_models(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad model, written in ``folder``: its path, and what its error must say."""
    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("not a model\n")
    (folder / "x.pt").write_text("garbage\n")
    (folder / "c.yaml").write_text("model: demo\nstreams:\n  - people.mp4\nconf: 0.4\n")
    (folder / "broken.yaml").write_text("a: [1\n")
    return {
        "folder": (folder / "notes", "a folder that is not an exported model (no .xml/.onnx/.pb/… model file inside)"),
        "garbage .pt": (folder / "x.pt", "not a PyTorch model file (cannot be unpickled: it is neither a zip archive "
                                         "nor a pickle, as torch.save writes)"),
        "config YAML": (folder / "c.yaml", "not a model YAML (no backbone/head)"),
        "broken YAML": (folder / "broken.yaml", "not valid YAML: line 2, column 1: expected ',' or ']', but got "
                                                "'<stream end>' (while parsing a flow sequence from line 1, column 4)"),
    }


@pytest.mark.parametrize("kind", ["folder", "garbage .pt", "config YAML", "broken YAML"])
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_bad_model_is_one_line_naming_it_and_exit_code_2(kind: str, command: str, tmp_path: Path) -> None:
    path, said = _bad_models(tmp_path)[kind]
    source = "synthetic:scene?size=320x240&frames=5"
    args = ["run", "--no-display"] if command == "run" else ["check", "--load-model"]
    done = _streamyolo(*args, "--source", source, "--model", str(path))
    assert done.returncode == 2, done.stderr
    problems = [line for line in done.stderr.splitlines() if not line.startswith("streamyolo: INFO: ")]
    assert problems == [f"streamyolo: ERROR: model {str(path)!r}: {said}"], done.stderr
    assert not any(noise in done.stderr + done.stdout for noise in NOISE), done.stderr


@pytest.mark.parametrize("kind", ["folder", "garbage .pt", "config YAML", "broken YAML"])
def test_resolve_model_refuses_what_is_no_model_before_any_thread_starts(kind: str, tmp_path: Path) -> None:
    path, said = _bad_models(tmp_path)[kind]
    with pytest.raises(ModelError) as error:
        resolve_model(str(path))
    assert str(error.value) == f"model {str(path)!r}: {said}"


def test_a_folder_export_whose_name_hides_its_format_is_named_as_such(shared_model: Path, tmp_path: Path) -> None:
    """A real OpenVINO export in a folder renamed: Ultralytics tells the format by the name."""
    renamed = tmp_path / "yolo11n"
    renamed.mkdir()
    for file in shared_model.iterdir():
        (renamed / file.name).symlink_to(file)
    assert resolve_model(str(renamed)) == str(renamed)  # it holds an export: left for the loader to judge
    with pytest.raises(ModelError) as error:
        load_yolo(str(renamed), "cpu")
    message = str(error.value)
    assert message.startswith(f"model {str(renamed)!r}: a folder (an OpenVINO export) whose name does not say its "
                              "format; Ultralytics knows an exported model's folder by the end of its name: "
                              "…_openvino_model, …_saved_model"), message
    assert "\n" not in message


@pytest.mark.parametrize(("size", "reason"), [
    (50_000, "a damaged zip archive: [Errno 22] Invalid argument"),
    (100_000, "PytorchStreamReader failed reading zip archive: failed finding central directory"),
])
def test_a_damaged_checkpoint_cannot_be_unpickled(size: int, reason: str, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(DEMO_MODEL_PATH.read_bytes()[:size])  # a zip archive cut short
    with pytest.raises(ModelError) as error:
        load_yolo(resolve_model(str(truncated)), "cpu")
    assert str(error.value) == (f"model {str(truncated)!r}: not a PyTorch model file (cannot be unpickled: "
                                f"{reason})")


def test_a_checkpoint_of_something_else_is_not_an_ultralytics_model(tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import torch

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelError, match=r"not an Ultralytics model checkpoint \(a file torch.save wrote, without a "
                                         r"YOLO network in it: AttributeError: 'Tensor' object has no attribute"):
        load_yolo(resolve_model(str(tensor)), "cpu")
    assert "improperly saved" not in "".join(capfd.readouterr()), "Ultralytics' warning leaked"


@pytest.mark.parametrize("model", ["demo", "yolo26n.yaml"])
def test_good_models_still_load(model: str) -> None:
    yolo = load_yolo(resolve_model(model), "cpu")
    assert yolo.task == "detect"


def test_the_real_openvino_export_still_resolves(shared_model: Path) -> None:
    assert resolve_model(str(shared_model)) == str(shared_model)
