"""The generic name -> factory registry: duplicates, unknown names, case-insensitivity, describe."""

from __future__ import annotations

import pytest

from components.core.registry import Registry, RegistryError


def make() -> Registry[str]:
    reg: Registry[str] = Registry("widget")

    @reg.register("Gear", "A toothed wheel.")
    def gear(teeth: int = 8) -> str:
        return f"gear{teeth}"

    @reg.register("spring")
    def spring() -> str:
        """Stores energy.

        More text that is not part of the description.
        """
        return "spring"

    reg.add("lever", lambda: "lever")
    return reg


def test_register_get_build_and_names() -> None:
    reg = make()
    assert reg.names() == ["gear", "lever", "spring"]
    assert list(reg) == reg.names() and len(reg) == 3
    assert reg.build("gear", teeth=12) == "gear12"
    assert reg.build("gear", 5) == "gear5"
    assert reg.get("spring")() == "spring"


def test_decorator_returns_the_factory_unchanged() -> None:
    reg: Registry[int] = Registry("number")

    def one() -> int:
        return 1

    assert reg.register("one")(one) is one


def test_names_are_case_insensitive() -> None:
    reg = make()
    assert reg.build("GEAR") == reg.build("gear") == reg.build("Gear") == "gear8"
    assert "SPRING" in reg and "gear" in reg
    assert "nope" not in reg and 3 not in reg


def test_duplicate_name_is_an_error_also_with_other_case() -> None:
    reg = make()
    with pytest.raises(RegistryError, match=r"widget 'GEAR' is already registered"):
        reg.add("GEAR", lambda: "other")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("spring")(lambda: "other")
    assert reg.build("gear") == "gear8"  # the first registration is kept


def test_unknown_name_lists_valid_names_and_suggests() -> None:
    reg = make()
    with pytest.raises(RegistryError) as err:
        reg.get("gaer")
    msg = str(err.value)
    assert msg.startswith("unknown widget 'gaer'.")
    assert "Did you mean: gear?" in msg
    assert "Valid names: gear, lever, spring" in msg
    assert not msg.startswith("'")  # shown plainly, not quoted like a bare KeyError


def test_unknown_name_without_close_match_has_no_hint() -> None:
    with pytest.raises(RegistryError) as err:
        make().build("xyzzy")
    assert "Did you mean" not in str(err.value)
    assert "Valid names: gear, lever, spring" in str(err.value)


def test_registry_error_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        make().get("missing")


def test_describe_uses_given_text_or_first_docstring_line() -> None:
    assert make().describe() == [("gear", "A toothed wheel."), ("lever", ""), ("spring", "Stores energy.")]
