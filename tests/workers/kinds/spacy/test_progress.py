"""Reading spaCy's output: the training logger's events and the console table."""

from __future__ import annotations

import json

from workers.kinds.spacy.progress import (
    TrainingProgress,
    best_checkpoint,
    parse_machine_line,
    parse_table_header,
    parse_table_row,
)

SETUP = (
    'COLABOT_SPACY {"event": "setup", "pipeline": ["tok2vec", "ner"], "max_steps": 40, '
    '"max_epochs": 0, "eval_frequency": 10, "score_weights": {"ents_f": 1.0, "ents_p": 0.0}}'
)


def eval_line(step: int, score: float, best: float, best_step: int) -> str:
    """A logger eval line."""
    event = {
        "event": "eval",
        "step": step,
        "epoch": step // 10,
        "score": score,
        "best_score": best,
        "best_step": best_step,
        "losses": {"tok2vec": 1.5, "ner": 30.0},
        "scores": {"ents_f": score, "ents_p": 0.5, "token_acc": 1.0, "speed": 9000.0},
    }
    return "COLABOT_SPACY " + json.dumps(event)


def test_logger_lines_become_progress_with_best_score_and_eta() -> None:
    parser = TrainingProgress()
    assert parser.parse("output", "Using CPU") is None
    started = parser.parse("output", SETUP)
    assert started is not None and started.message == "training: step 0 of 40"
    parser.parse("output", eval_line(0, 0.0, 0.0, 0))
    progress = parser.parse("output", eval_line(20, 0.8, 0.9, 10))
    assert progress is not None
    assert progress.step == 20 and progress.total == 40 and progress.fraction == 0.5
    assert progress.message == "step 20 of 40 · epoch 2 · score 0.800 · best 0.900 at step 10"
    assert progress.metrics == {
        "score": 0.8,
        "best_score": 0.9,
        "ents_f": 0.8,
        "ents_p": 0.5,
        "loss_tok2vec": 1.5,
        "loss_ner": 30.0,
    }
    assert progress.eta_s is not None


def test_once_the_logger_speaks_the_table_is_ignored() -> None:
    parser = TrainingProgress()
    parser.parse("output", SETUP)
    header = "E    #       LOSS TOK2VEC  LOSS NER  ENTS_F  ENTS_P  SCORE "
    assert parser.parse("output", header) is None
    assert (
        parser.parse("output", "  0       0          0.00     59.40    0.00    0.00    0.00")
        is None
    )


def test_the_console_table_is_the_fallback() -> None:
    parser = TrainingProgress(note="command train (1 of 2)")
    header = "\x1b[1mE    #       LOSS TOK2VEC  LOSS NER  ENTS_F  ENTS_P  ENTS_R  SCORE \x1b[0m"
    assert parser.parse("output", header) is None
    parser.parse("output", "  0       0          0.00     59.40    0.00    0.00    0.00    0.00")
    progress = parser.parse(
        "output", "  5      20          5.63    245.62  100.00  100.00  100.00    1.00"
    )
    assert progress is not None and progress.step == 20 and progress.total is None
    assert progress.metrics["ents_f"] == 1.0 and progress.metrics["loss_ner"] == 245.62
    assert progress.metrics["best_score"] == 1.0
    assert progress.message == (
        "step 20 · epoch 5 · score 1.000 · best 1.000 at step 20 · command train (1 of 2)"
    )


def test_table_rows_need_a_header_and_the_right_width() -> None:
    columns = parse_table_header("E    #       LOSS NER  ENTS_F  SCORE ")
    assert columns == ["E", "#", "LOSS NER", "ENTS_F", "SCORE"]
    assert parse_table_header("---  ------  --------") is None
    assert parse_table_row("  1   5   2.00  50.00  0.50", columns) == {
        "epoch": 1.0,
        "step": 5.0,
        "loss_ner": 2.0,
        "ents_f": 0.5,
        "score": 0.5,
    }
    assert parse_table_row("  1   5   2.00  50.00", columns) is None
    assert parse_table_row("Saved pipeline", columns) is None


def test_machine_lines() -> None:
    assert parse_machine_line('COLABOT_SPACY {"event": "docs", "done": 1}') == {
        "event": "docs",
        "done": 1,
    }
    assert parse_machine_line("COLABOT_SPACY {broken") is None
    assert parse_machine_line('COLABOT_SPACY {"no": "event"}') is None
    assert parse_machine_line('progress {"event": "x"}') is None


def test_best_checkpoint_is_the_latest_top_score() -> None:
    assert best_checkpoint([]) is None
    assert best_checkpoint([(0.1, 0), (0.9, 10), (0.5, 20), (0.9, 30)]) == (0.9, 30)


def test_epoch_based_training_counts_epochs() -> None:
    parser = TrainingProgress()
    parser.parse(
        "output",
        SETUP.replace('"max_steps": 40', '"max_steps": 0').replace(
            '"max_epochs": 0', '"max_epochs": 4'
        ),
    )
    progress = parser.parse("output", eval_line(20, 0.5, 0.5, 20))
    assert progress is not None and progress.message.startswith("epoch 2 of 4 · step 20")
