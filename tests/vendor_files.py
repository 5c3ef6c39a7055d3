"""The page's libraries in server/vendor/: where each comes from in node_modules, and the copy.

`make vendor` (after `npm ci`, when package.json changes) runs this module: it copies each
file server/app.py's VENDOR_FILES names, and each package's licence, from node_modules into
the package. tests/unit/test_vendor_files.py holds the copies equal to the locked packages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from server.web.page import VENDOR_DIR, VENDOR_FILES

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
LICENSES_DIR = VENDOR_DIR / "licenses"


def npm_package(path: str) -> str:
    """`@highlightjs/cdn-assets/es/x.js` -> `@highlightjs/cdn-assets`; `marked/lib/x` -> marked."""
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]


def license_name(package: str) -> str:
    """Where a package's licence is kept in the wheel: a flat name, `/` read as `__`."""
    return package.replace("/", "__") + ".LICENSE"


def vendor_packages() -> list[str]:
    return sorted({npm_package(path) for path in VENDOR_FILES.values()})


def copy_vendor_files() -> list[Path]:
    """Copy every served file and each package's LICENSE from node_modules; what was written."""
    LICENSES_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, path in VENDOR_FILES.items():
        written.append(Path(shutil.copyfile(NODE_MODULES / path, VENDOR_DIR / name)))
    for package in vendor_packages():
        source = NODE_MODULES / package / "LICENSE"
        written.append(Path(shutil.copyfile(source, LICENSES_DIR / license_name(package))))
    return written


if __name__ == "__main__":
    for path in copy_vendor_files():
        print(path.relative_to(ROOT))
