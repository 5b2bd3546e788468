"""Fixtures shared by several test files."""
import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture()
def unwritable_dir(tmp_path):
    """A folder this process cannot create files in. Root ignores permission bits, so as root a read-only system
    folder stands in (sysfs refuses new files even to root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            yield candidate
            return
        os.close(fd)
        os.unlink(probe)
    pytest.skip("running as root with no read-only folder to stand in for an unwritable one")
