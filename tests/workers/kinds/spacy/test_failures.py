"""Failed spaCy steps explained from their last lines."""

from __future__ import annotations

import pytest

from workers.kinds.spacy.failures import explain_spacy_failure

TAILS = {
    "wheel": [
        "Generating wheels requires 'build' or 'wheel' (deprecated) to be installed",
        "pip install build",
    ],
    "cupy": ["Traceback ...", "ValueError: Cannot use GPU, CuPy is not installed"],
    "oom": ["cupy.cuda.memory.OutOfMemoryError: Out of memory allocating 1,024 bytes"],
    "garbage": [
        "✘ Config validation error",
        "Make sure the sections and values are formatted correctly.",
        "",
        "File contains no section headers.",
        "file: '<string>', line: 1",
        "'this is [not a config\\n'",
    ],
    "ref": [
        "✘ Config validation error",
        "corpora -> trian\tnot a valid section reference: corpora.trian",
        "{'paths': {'train': 'data/train.spacy'}}",
    ],
    "value": [
        "Config validation error",
        "max_steps\tInput should be a valid integer",
        "{'optimizer': <thinc.optimizers.Optimizer object at 0x7f8e4b805d00>}",
    ],
    "section": [
        "✘ Error parsing config overrides",
        "trainin -> max_steps\tnot a section value that can be overridden",
    ],
    "docbin": [
        "ValueError: [E1014] Error loading DocBin data. It doesn't look like the data is in "
        "DocBin (.spacy) format."
    ],
    "missing": ["FileNotFoundError: [Errno 2] No such file or directory: 'corpus/nope.spacy'"],
    "empty": ["AssertionError: [E923] It looks like there is no proper sample data"],
    "vectors": [
        "OSError: [E884] The pipeline could not be initialized because the vectors could not "
        "be found at 'en_core_web_lg'. If your pipeline..."
    ],
    "weasel": ["✘ Missing dependency specified by command 'train': corpus/train.spacy"],
    "prepare": ["colabot-spacy: error: the config c.cfg does not parse: oops"],
    "other": ["Traceback (most recent call last):", "KeyError: 'ner'", "", "done"],
    "unknown": ["exited"],
    "no-spacy": ["ModuleNotFoundError: No module named 'spacy'"],
}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("cupy", 'a GPU was asked for, but CuPy is not installed: pip install "spacy[cuda12x]"'),
        ("oom", "the GPU ran out of memory"),
        ("garbage", "the config is not valid: File contains no section headers."),
        (
            "ref",
            "the config refers to a section it does not have: corpora -> trian: not a valid "
            "section reference: corpora.trian",
        ),
        ("value", "the config is not valid: max_steps: Input should be a valid integer"),
        (
            "section",
            "a config override names a section the config does not have: trainin -> "
            "max_steps: not a section value that can be overridden",
        ),
        ("docbin", "a .spacy file is not in spaCy's DocBin format"),
        ("missing", "a file is missing: corpus/nope.spacy"),
        ("empty", "there are no usable training examples"),
        ("vectors", "the config needs the word vectors en_core_web_lg"),
        ("weasel", "project command train needs corpus/train.spacy, which does not exist"),
        ("prepare", "the config c.cfg does not parse: oops"),
        ("other", "KeyError: 'ner'"),
        ("no-spacy", "spaCy is not installed where jobs run (spacy is missing)"),
        ("wheel", "package=yes builds a wheel, which needs the 'wheel' package"),
    ],
)
def test_failures_are_named_from_the_last_lines(case: str, expected: str) -> None:
    reason = explain_spacy_failure(TAILS[case])
    assert reason is not None and reason.startswith(expected)


def test_unknown_failures_are_left_to_the_engine() -> None:
    assert explain_spacy_failure(TAILS["unknown"]) is None
