"""Job kinds, one package each with the same shape.

``base`` is the protocol every kind implements, ``registry`` the kinds colabot knows and
``plans`` the way a kind and its tools exchange files. In each kind's package, ``kind.py``
runs in the bot process and imports no framework; ``tools/`` holds the subprocess programs
that do (``python -m workers.kinds.<kind>.tools <command> <work folder>``).
"""
