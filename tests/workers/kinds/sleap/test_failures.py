"""Failed SLEAP steps explained from their last lines."""

from __future__ import annotations

import pytest

from workers.kinds.sleap.failures import explain_lines


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [
                "RuntimeError: Attempting to deserialize object on a CUDA device but "
                "torch.cuda.is_available() is False. If you are running on a CPU-only machine,"
            ],
            "no usable CUDA GPU",
        ),
        (
            ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"],
            "the GPU ran out of memory",
        ),
        (
            [
                "FileNotFoundError: Video does not exist or cannot be opened for reading: "
                "/content/drive/MyDrive/proj/video.mp4 (dataset: )"
            ],
            "a video cannot be found: /content/drive/MyDrive/proj/video.mp4.",
        ),
        (
            ["OSError: Unable to synchronously open file (file signature not found)"],
            "not a SLEAP .slp file",
        ),
        (
            [
                "FileNotFoundError: [Errno 2] Unable to synchronously open file (unable to open "
                "file: name = '/tmp/x/nonexistent.slp', errno = 2, error message = 'No such'"
            ],
            "a file is missing: /tmp/x/nonexistent.slp",
        ),
        (
            [
                "hydra.errors.ConfigCompositionException: Could not override "
                "'trainer_config.foo_bar'.",
                "To append to your config use +trainer_config.foo_bar=3",
            ],
            "unknown config key trainer_config.foo_bar",
        ),
        (
            ["omegaconf.errors.ConfigKeyError: Key 'foo_bar' not in 'TrainerConfig'"],
            "unknown config key foo_bar",
        ),
        (
            [
                "omegaconf.errors.ValidationError: Value 'abc' of type 'str' could not be "
                "converted to Integer"
            ],
            "wrong type: Value 'abc'",
        ),
        (
            ["yaml.parser.ParserError: while parsing a flow sequence"],
            "not valid YAML",
        ),
        (
            [
                '{"error": true, "type": "FileNotFoundError", "message": "Model path does not '
                "exist: /tmp/nomodel. Pass a model directory, or a path to its 'best.ckpt'\"}"
            ],
            "the model folder /tmp/nomodel does not exist",
        ),
        (["sleap_tools: error: project.zip: entry '../x' points outside"], "project.zip: entry"),
        (["Traceback (most recent call last):", "KeyError: 'thing'"], "KeyError: 'thing'"),
        (["Traceback (most recent call last):", "ValueError: odd thing"], "ValueError: odd thing"),
        (["all fine"], None),
    ],
)
def test_failures_are_explained(lines: list[str], expected: str | None) -> None:
    found = explain_lines(lines)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_a_tool_refusal_wins_over_other_lines() -> None:
    lines = ["ValueError: noise", "sleap_tools: error: the labels have no instances"]
    assert explain_lines(lines) == "the labels have no instances"
