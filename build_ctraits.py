"""Build the optional C implementation of ``Population.traits`` in place.

    .venv/bin/python build_ctraits.py

Compiles ``simulator/subscribers/_ctraits.c`` to ``simulator/subscribers/_ctraits*.so``
(setuptools, the interpreter's own headers and flags, -O2). Without it, or with
``SMSIM_NO_CTRAITS=1`` in the environment, ``Population`` uses the Python code.
"""

from setuptools import Extension, setup

setup(
    name="smsim-ctraits",
    ext_modules=[
        Extension(
            "simulator.subscribers._ctraits",
            ["simulator/subscribers/_ctraits.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
    script_args=["build_ext", "--inplace"],
)
