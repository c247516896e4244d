"""DVC reads dvc.yaml, dvc.lock and params.yaml through ruamel's safe loader: with ruamel.yaml.clib
installed (requirements.txt) that is the C parser, and it must give the same values as the pure one."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.main import CParser

REPO = Path(__file__).resolve().parents[2]
TRICKY = "a: yes\nb: 010\nc: 1e3\nd: 1:20\ne: on\nf: 0o10\ng: .5\nh: ~\ni: 1_000\nj: '7'\nk: [48, 48]\n"


def test_dvc_gets_the_c_parser() -> None:
    assert CParser is not None and YAML(typ="safe").Parser is CParser


def test_c_and_pure_parsers_agree() -> None:
    for text in (TRICKY, (REPO / "params.yaml").read_text(), (REPO / "dvc.yaml").read_text()):
        assert YAML(typ="safe").load(text) == YAML(typ="safe", pure=True).load(text)
