"""The page's libraries committed in server/vendor/ are the npm packages package-lock.json
pins, byte for byte, each with its licence: `make vendor` after an update keeps them so."""

from __future__ import annotations

import json

import pytest

from server.web.page import VENDOR_DIR, VENDOR_FILES
from tests.vendor_files import LICENSES_DIR, NODE_MODULES, ROOT, license_name, vendor_packages


@pytest.fixture(scope="module")
def locked() -> dict[str, str]:
    """Each npm package's version in package-lock.json, once node_modules holds them."""
    if not (NODE_MODULES / ".package-lock.json").is_file():
        pytest.fail("node_modules is missing: run `make setup` (npm ci) first")
    lock = json.loads((ROOT / "package-lock.json").read_text())
    return {
        path.removeprefix("node_modules/"): entry["version"]
        for path, entry in lock["packages"].items()
        if path
    }


def test_node_modules_holds_the_locked_versions(locked: dict[str, str]) -> None:
    for package in vendor_packages():
        installed = json.loads((NODE_MODULES / package / "package.json").read_text())
        assert installed["version"] == locked[package], f"{package}: run `make setup` (npm ci)"


@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
def test_each_served_library_is_an_exact_copy(name: str, locked: dict[str, str]) -> None:
    committed = VENDOR_DIR / name
    assert committed.is_file(), f"server/vendor/{name} is missing: run `make vendor`"
    source = NODE_MODULES / VENDOR_FILES[name]
    assert committed.read_bytes() == source.read_bytes(), f"{name} differs: run `make vendor`"


def test_each_library_ships_with_its_licence(locked: dict[str, str]) -> None:
    for package in vendor_packages():
        committed = LICENSES_DIR / license_name(package)
        assert committed.read_bytes() == (NODE_MODULES / package / "LICENSE").read_bytes()


def test_nothing_else_is_in_the_vendor_folder() -> None:
    # A file left behind by an older `make vendor` would ship in the wheel unserved.
    expected = {*VENDOR_FILES, "licenses"}
    assert {path.name for path in VENDOR_DIR.iterdir()} == expected
    assert {path.name for path in LICENSES_DIR.iterdir()} == {
        license_name(package) for package in vendor_packages()
    }
