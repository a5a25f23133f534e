"""``--device`` and the log settings are checked with the other settings, before anything
starts, naming the flag and its variable: ``--device foo`` was refused only once the ports
were bound ("device must be auto, ..."), ``--log-format xml`` as "log_format must be ..."."""

from __future__ import annotations

import pytest

from embedserve.server.cli import build_parser, settings_from
from embedserve.server.config import Settings


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--device", "foo"],
            "--device (EMBEDSERVE_DEVICE) must be one of auto, cpu, cuda, cuda:N, mps; got 'foo'",
        ),
        (["--device", "cuda:"], "--device (EMBEDSERVE_DEVICE) must be one of"),
        (["--device", "tpu"], "--device (EMBEDSERVE_DEVICE) must be one of"),
        (
            ["--log-format", "xml"],
            "--log-format (EMBEDSERVE_LOG_FORMAT) must be one of text, json; got 'xml'",
        ),
        (["--log-level", "loud"], "--log-level (EMBEDSERVE_LOG_LEVEL) must be one of DEBUG,"),
    ],
)
def test_a_bad_choice_stops_serve_naming_its_flag(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The settings refuse it before anything is bound or loaded.
    with pytest.raises(ValueError) as error:
        settings_from(build_parser().parse_args(["serve", *flags]))
    assert expected in str(error.value)

    from embedserve.server.cli import main

    # --port 0: were it not refused, the server would not take a fixed port.
    assert main(["serve", "--port", "0", "--http-port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedserve: ") and expected in err


def test_a_bad_device_in_the_environment_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSERVE_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"--device \(EMBEDSERVE_DEVICE\) must be .* got 'gpu'"):
        settings_from(build_parser().parse_args(["serve"]))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_the_devices_pick_device_takes_are_let_through(device: str) -> None:
    assert Settings(device=device).device == device


@pytest.mark.parametrize("level", ["info", "Debug", "WARNING"])
def test_a_log_level_in_any_case_is_let_through(level: str) -> None:
    assert Settings(log_level=level).log_level == level
