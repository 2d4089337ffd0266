"""Plain helpers the tests share, one module per purpose; conftest.py files hold fixtures only.

- ``waiting``: wait, with a timeout, until a cheap condition holds.
- ``chat``: the person on the other side of the emulated chat.
- ``cli``: colabot run as its own process (its environment, ``colabot ARGS``).
- ``processes``: whether a process is still alive.
- ``engine``: job specs, a job's notices, one step run as the runner runs it.
- ``clusters``: the real Ray head and Slurm cluster as the tests drive them.
- ``spacy_data``: the tiny spaCy corpus, and a pipeline trained on it.
- ``wandb_files``: what an offline W&B run wrote.
"""
