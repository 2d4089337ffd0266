"""The built-in ``selftest`` kind: a small program that behaves like a training job."""
