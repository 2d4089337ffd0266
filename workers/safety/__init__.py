"""colabot's safety rules, each decided in one place and used by every caller.

- :mod:`.paths`: whether a path stays inside a folder (typed paths, archive entries, files a
  package or a Drive folder names, outputs a job reports);
- :mod:`.names`: file-name limits, safe file names, and the one sanitiser for names and
  labels that reach a script, a log line or a record;
- :mod:`.environment`: the environment every step, probe and helper process gets;
- :mod:`.files`: private folders and files, created without following links.
"""
