"""Build the optional C extensions of the subscriber engine in place.

    .venv/bin/python build_ctraits.py

Compiles, with setuptools, the interpreter's own headers and flags, -O2:

* ``simulator/subscribers/_ctraits.c`` to ``simulator/subscribers/_ctraits*.so``:
  ``Population.traits``. Without it, or with ``SMSIM_NO_CTRAITS=1`` in the environment,
  ``Population`` uses the Python code.
* ``simulator/subscribers/_cstate.c`` to ``simulator/subscribers/_cstate*.so``:
  ``state.TouchedStore``. Without it, or with ``SMSIM_NO_CSTATE=1`` (or
  ``SMSIM_NO_CTRAITS=1``, which switches off both), ``state.TouchedStore`` is the Python
  class (``state.PyTouchedStore``).
* ``simulator/smsc/_cjournal.c`` to ``simulator/smsc/_cjournal*.so``: the message
  journal's record buffer. Without it, or with ``SMSIM_NO_CJOURNAL=1`` (or
  ``SMSIM_NO_CTRAITS=1``), the journal keeps values in a list
  (``journal_records.PyRecordBuffer``).

The name is kept from when it built only the first (the Makefile runs it).
"""

from setuptools import Extension, setup

#: No contraction into fused multiply-adds: the C draws must give Python's doubles.
_FLAGS = ["-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    name="smsim-ctraits",
    ext_modules=[
        Extension(
            "simulator.subscribers._ctraits",
            ["simulator/subscribers/_ctraits.c"],
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "simulator.subscribers._cstate",
            ["simulator/subscribers/_cstate.c"],
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "simulator.smsc._cjournal",
            ["simulator/smsc/_cjournal.c"],
            extra_compile_args=_FLAGS,
        ),
    ],
    script_args=["build_ext", "--inplace"],
)
