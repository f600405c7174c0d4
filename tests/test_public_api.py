"""The public names: what ``__all__`` promises exists, is documented and is homed
in the package (reprs, docs, pickling), and nothing private is exported."""

from __future__ import annotations

import inspect
import unittest
from pathlib import Path

import anyio_unittest

ROOT = Path(__file__).resolve().parent.parent


class PublicApiTest(unittest.TestCase):
    def test_all_is_sorted_unique_and_importable(self) -> None:
        names = anyio_unittest.__all__
        self.assertEqual(names, sorted(set(names)))
        for name in names:
            with self.subTest(name=name):
                self.assertTrue(hasattr(anyio_unittest, name))

    def test_every_public_class_and_function_is_homed_in_the_package(self) -> None:
        for name in anyio_unittest.__all__:
            obj = getattr(anyio_unittest, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                with self.subTest(name=name):
                    self.assertEqual(obj.__module__, "anyio_unittest")
                    self.assertTrue(inspect.getdoc(obj), f"{name} has no docstring")

    def test_nothing_else_public_is_exported(self) -> None:
        public = {
            name
            for name, obj in vars(anyio_unittest).items()
            if not name.startswith("_") and not inspect.ismodule(obj)
        }
        self.assertEqual(public, set(anyio_unittest.__all__) - {"__version__"})

    def test_every_public_name_is_in_the_api_reference(self) -> None:
        api = (ROOT / "docs" / "api.rst").read_text()
        for name in anyio_unittest.__all__:
            with self.subTest(name=name):
                self.assertIn(f":: {name}", api)
