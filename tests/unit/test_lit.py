"""Run the lit/FileCheck suite from pytest so one command runs everything."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(__file__)
SUITE = os.path.join(HERE, "..", "filecheck")


def test_lit_suite():
    lit = shutil.which("lit", path=os.path.dirname(sys.executable)) or shutil.which("lit")
    assert lit, "lit is not installed (pip install -e .[dev])"
    r = subprocess.run([lit, "-sv", SUITE], capture_output=True, text=True)
    sys.stdout.write(r.stdout[-20000:])
    sys.stderr.write(r.stderr[-5000:])
    assert r.returncode == 0, "lit suite failed:\n" + r.stdout[-8000:]
    assert "Passed" in r.stdout  # the suite ran tests, not nothing
