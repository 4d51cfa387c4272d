from __future__ import annotations

import pytest

from restorelab.registry import Registry, UnknownNameError


def test_register_get_and_aliases() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("alpha", 1, aliases=("a",))
    assert reg.get("alpha") == 1
    assert reg.get("a") == 1
    assert "a" in reg and "alpha" in reg
    assert reg.names() == ["alpha"]
    assert len(reg) == 1


def test_duplicate_registration_raises() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="thing 'alpha' is already registered"):
        reg.add("alpha", 2)
    assert reg.get("alpha") == 1


def test_unknown_name_suggests_close_names() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("gaussian_blur", 1)
    with pytest.raises(UnknownNameError, match="Did you mean 'gaussian_blur'"):
        reg.get("gausian_blur")
