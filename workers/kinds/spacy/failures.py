"""Why a spaCy step failed, in plain words, from the last lines it printed."""

from __future__ import annotations

import re

from workers.kinds.base import shorten
from workers.kinds.spacy.plan import ERROR_PREFIX
from workers.kinds.spacy.progress import strip_ansi

FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Generating wheels requires 'build' or 'wheel'"),
        "package=yes builds a wheel, which needs the 'wheel' package: pip install wheel "
        '(it comes with "colabot[spacy]")',
    ),
    (
        re.compile(r"No module named '(spacy|weasel|confection|thinc|srsly)[.']"),
        'spaCy is not installed where jobs run ({0} is missing): pip install "colabot[spacy]"',
    ),
    (
        re.compile(r"Cannot use GPU, CuPy is not installed"),
        'a GPU was asked for, but CuPy is not installed: pip install "spacy[cuda12x]", '
        "or train with gpu=cpu",
    ),
    (
        re.compile(r"No GPU devices detected|CUDARuntimeError|cudaErrorNoDevice"),
        "a GPU was asked for, but none is visible (no driver or no device); use gpu=cpu",
    ),
    (
        re.compile(r"OutOfMemoryError|CUDA out of memory|out of memory", re.IGNORECASE),
        "the GPU ran out of memory: use smaller batches (e.g. training.batcher.size.stop=500 or "
        "nlp.batch_size=64), a smaller model, or gpu=cpu",
    ),
    (
        re.compile(r"\[E1014\]"),
        "a .spacy file is not in spaCy's DocBin format; convert the data with "
        "python -m spacy convert",
    ),
    (
        re.compile(r"\[E923\]"),
        "there are no usable training examples: the training data is empty or lacks the "
        "annotations the pipeline's components learn from",
    ),
    (
        re.compile(r"\[E884\].*?vectors could not be found at '([^']*)'"),
        "the config needs the word vectors {0}, which are not installed here; install them or "
        "train without (paths.vectors=null, or a config made with --optimize efficiency)",
    ),
    (
        re.compile(r"\[E893\] Could not find function '([^']+)' in function registry '(\w+)'"),
        "the config uses {0} (a registered {1} function) that is not installed; a plugin package "
        "such as spacy-transformers may be missing",
    ),
    (
        re.compile(r"not a valid section reference: (\S+)"),
        "the config refers to the section [{0}], which it does not have",
    ),
    (re.compile(r"(Bad value substitution: .*)"), "the config does not parse: {0}"),
    (
        re.compile(r"Missing dependency specified by command '([^']+)': (.+)"),
        "project command {0} needs {1}, which does not exist (an asset, or the output of a "
        "command that has not run)",
    ),
    (
        re.compile(r"Can't find command or workflow '([^']+)'"),
        "project.yml has no command or workflow {0}",
    ),
    (
        re.compile(r"No such file or directory: '([^']+)'"),
        "a file is missing: {0}",
    ),
    (
        re.compile(r"Invalid value for '([\w-]+)': (.+)"),
        "invalid {0}: {1}",
    ),
    (re.compile(r"(Path to Python code not found)"), "{0}"),
)
CONFIG_ERROR_TITLES = ("Config validation error", "Error parsing config overrides")
EXCEPTION_LINE = re.compile(r"^([\w.]+(?:Error|Exception)): (.+)$")


def explain_spacy_failure(tail: list[str]) -> str | None:
    """The cause of a failed spaCy step in plain words, from its last lines; None if unknown."""
    lines = [strip_ansi(line).rstrip() for line in tail]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    config = _config_error(lines)
    if config is not None:
        return config
    for pattern, template in FAILURES:
        for line in reversed(lines):
            match = pattern.search(line)
            if match:
                return template.format(*(shorten(g) for g in match.groups()))
    for line in reversed(lines):
        match = EXCEPTION_LINE.match(line.strip())
        if match:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {shorten(match.group(2), 300)}"
    return None


def _config_error(lines: list[str]) -> str | None:
    """The first detail under spaCy's "Config validation error" block, in words."""
    for index in range(len(lines) - 1, -1, -1):
        title = lines[index].lstrip("✘ ").strip()
        if title not in CONFIG_ERROR_TITLES:
            continue
        details = []
        for line in lines[index + 1 :]:
            text = line.strip()
            if not text or text.startswith(("Make sure", "{", "file:", "'")):
                continue
            if "\t" in text:
                where, what = text.split("\t", 1)
                text = f"{where.strip()}: {what.strip()}"
            details.append(text)
            if len(details) == 2:
                break
        if title == CONFIG_ERROR_TITLES[1]:
            prefix = "a config override names a section the config does not have"
        elif any("valid section reference" in d for d in details):
            prefix = "the config refers to a section it does not have"
        else:
            prefix = "the config is not valid"
        return prefix + (": " + "; ".join(shorten(d) for d in details) if details else "")
    return None
