#!/usr/bin/env bash
# Packaging check: build the sdist and the wheel, check their metadata with
# twine, install the wheel into a fresh virtualenv (with its dependencies from
# the package index) and run a small AnyIOTestCase suite on asyncio and trio
# with `python -m unittest`, from outside the checkout.
#
# Usage: .ci/check_packaging.sh            (PYTHON=python3.12 to pick the interpreter)
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
python="${PYTHON:-python3}"

tmp="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/anyio-unittest-pkg.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

bin() {  # the scripts folder of a venv (Windows: Scripts)
    if [ -d "$1/Scripts" ]; then echo "$1/Scripts"; else echo "$1/bin"; fi
}

echo "== tools: build and twine in a throwaway venv"
"$python" -m venv "$tmp/tools"
tools="$(bin "$tmp/tools")"
"$tools/python" -m pip install --quiet build twine

echo "== python -m build (sdist and wheel)"
"$tools/python" -m build --outdir "$tmp/dist" "$root"
ls -l "$tmp/dist"
sdists=("$tmp"/dist/*.tar.gz)
wheels=("$tmp"/dist/*.whl)
if [ "${#sdists[@]}" -ne 1 ] || [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    echo "error: expected one sdist and one wheel" >&2
    exit 1
fi

echo "== twine check --strict"
"$tools/python" -m twine check --strict "$tmp"/dist/*

echo "== wheel contents and metadata"
"$tools/python" - "${wheels[0]}" "${sdists[0]}" <<'PY'
import sys
import tarfile
import zipfile

wheel, sdist = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
problems = []
for required in ("anyio_unittest/__init__.py", "anyio_unittest/py.typed",
                 "anyio_unittest/pytest_plugin.py"):
    if required not in names:
        problems.append(f"the wheel lacks {required}")
stray = [n for n in names if n.split("/")[0] in ("tests", "examples", "docs", "benchmarks")]
if stray:
    problems.append(f"the wheel ships non-package files: {stray[:5]}")
info = next(n for n in names if n.endswith(".dist-info/METADATA"))
metadata = zipfile.ZipFile(wheel).read(info).decode()
for field in ("Classifier: Typing :: Typed", "Requires-Python: >=3.10",
              "Requires-Dist: anyio", "Requires-Dist: trio", "Project-URL: "):
    if field not in metadata:
        problems.append(f"METADATA lacks {field!r}")
if "License-Expression: MIT" not in metadata and "License: MIT" not in metadata:
    problems.append("METADATA names no MIT license")
entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
text = zipfile.ZipFile(wheel).read(entry_points).decode() if entry_points else ""
if "[pytest11]" not in text or "anyio_unittest.pytest_plugin" not in text:
    problems.append("no pytest11 entry point for anyio_unittest.pytest_plugin")
members = tarfile.open(sdist).getnames()
for required in ("pyproject.toml", "README.rst", "LICENSE", "anyio_unittest/__init__.py"):
    if not any(m.endswith("/" + required) for m in members):
        problems.append(f"the sdist lacks {required}")
if problems:
    sys.exit("error:\n  " + "\n  ".join(problems))
print(f"ok: {len(names)} files in the wheel, {len(members)} in the sdist")
PY

echo "== install the wheel into a fresh venv"
"$python" -m venv "$tmp/smoke"
smoke="$(bin "$tmp/smoke")"
"$smoke/python" -m pip install --quiet "${wheels[0]}"

echo "== smoke test (python -m unittest, asyncio and trio)"
mkdir "$tmp/suite"
cat > "$tmp/suite/test_smoke.py" <<'PY'
import contextvars
import pathlib
import sysconfig

import anyio
import sniffio

import anyio_unittest
from anyio_unittest import AnyIOTestCase

VAR = contextvars.ContextVar("var", default="unset")


def test_installed_copy():
    # the wheel's copy, not a checkout
    site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    assert site in pathlib.Path(anyio_unittest.__file__).resolve().parents


class Smoke(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "class"

    @classmethod
    async def asyncSetUpClass(cls):
        cls.group = await cls.enterAsyncClassContext(anyio.create_task_group())
        cls.event = anyio.Event()
        cls.group.start_soon(cls.event.wait)  # lives as long as the class

        async def release():
            cls.event.set()

        cls.addAsyncClassCleanup(release)  # runs before the task group exits
        VAR.set("class")

    async def asyncSetUp(self):
        assert VAR.get() == "class", VAR.get()
        VAR.set("test")

    async def test_backend(self):
        self.assertEqual(sniffio.current_async_library(), self.anyio_backend)
        test_installed_copy()

    async def test_class_context_and_resource(self):
        self.assertEqual(VAR.get(), "test")
        await anyio.sleep(0.01)
        self.assertFalse(self.event.is_set())

    def test_sync(self):
        self.assertEqual(VAR.get(), "test")
PY
(
    cd "$tmp/suite"
    output="$("$smoke/python" -W error -X dev -m unittest -v 2>&1)" || {
        echo "$output"
        echo "error: the smoke test failed" >&2
        exit 1
    }
    echo "$output"
    echo "$output" | grep -q "^Ran 6 tests" || {
        echo "error: expected 6 tests (3 on asyncio, 3 on trio)" >&2
        exit 1
    }
)

echo "OK: sdist and wheel built, twine check passed, the wheel installs and runs"
