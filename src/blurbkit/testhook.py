"""Test-only kill points: make this process kill itself at a named point of a run.

Set ``BLURBKIT_TEST_KILL_AT=POINT`` (optionally ``POINT:TERM`` to send SIGTERM instead of SIGKILL)
in the environment of a `blurbkit` process; the first time the run reaches POINT it signals itself.
The points, each reached once per process:

* ``step:N``        after optimizer step N (counted over the whole run) and any checkpoint of that step
* ``eval:E``        during the dev evaluation of epoch E (scored, not yet recorded)
* ``checkpoint:K``  while writing this process's K-th checkpoint (weights written, not renamed into place)
* ``rundir``        while writing the final run directory (some files written, not renamed into place)

The tests of train/checkpoint.py use it to kill a real fine-tuning process at exact places. Unset
(always, outside those tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BLURBKIT_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """Signal this process if ENV names `name` (e.g. 'step:7')."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if wanted.removesuffix(":TERM") == name:
        os.kill(os.getpid(), signal.SIGTERM if wanted.endswith(":TERM") else signal.SIGKILL)
