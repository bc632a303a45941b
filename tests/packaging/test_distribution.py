"""The installed distribution: installed from a wheel, it ships its license and says so.

Skipped when streamhsm is imported from a source tree (no wheel-installed distribution); CI
installs wheels (the README's test command, ci/wheel-tests.sh), where it runs.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import streamhsm


@pytest.fixture(name="dist")
def installed_distribution() -> metadata.Distribution:
    """The distribution the imported package was installed from (by a wheel), or skip."""
    try:
        dist = metadata.distribution("streamhsm")
    except metadata.PackageNotFoundError:
        pytest.skip("streamhsm is not installed as a distribution")
    here = Path(streamhsm.__file__).resolve()
    installed = Path(str(dist.locate_file("streamhsm/__init__.py"))).resolve()
    if dist.read_text("WHEEL") is None or installed != here:
        pytest.skip(f"streamhsm ({here}) was not installed from a wheel")
    return dist


@pytest.mark.smoke
def test_the_license_ships_in_the_wheel(dist: metadata.Distribution) -> None:
    assert dist.metadata["License-Expression"] == "MIT"
    assert dist.metadata.get_all("License-File") == ["LICENSE"]
    licenses = [f for f in dist.files or () if f.name == "LICENSE"]
    assert [f.parent.name for f in licenses] == ["licenses"]  # <name>.dist-info/licenses/
    text = licenses[0].read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 The streamhsm developers" in text
