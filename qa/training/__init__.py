"""Training the extractive reader (``newsqa train-reader``, ``python -m qa.training``).

- ``command``: the options, their checks, and running a job.
- ``data``: sampling questions by a data mix, built "no answer" pairs, token windows.
- ``distill``: a teacher's span distributions on the student's tokens, and their loss.
- ``loop``: one training run: batches, optimiser steps, checkpoints, exported weights.
"""
