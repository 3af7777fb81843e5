"""Path rules: canonical wallet arguments and names that can be one folder on every platform."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.wallet.paths import MAX_NAME_CHARS, Unresolvable, canonical, folder_name_problem, is_inside, wallet_argument


@pytest.fixture
def wallets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Client_Data" / "Wallets"
    (folder / "Default").mkdir(parents=True)
    return folder


def test_absolute_argument_is_taken_as_given(wallets_dir, tmp_path):
    elsewhere = tmp_path / "usb" / "Savings"
    elsewhere.mkdir(parents=True)
    assert wallet_argument(str(elsewhere), wallets_dir) == elsewhere


def test_absolute_argument_is_normalised(wallets_dir, tmp_path):
    raw = f"{tmp_path}/usb/../Client_Data/Wallets/./Default/"
    assert wallet_argument(raw, wallets_dir) == wallets_dir / "Default"


def test_relative_argument_is_inside_wallets(wallets_dir):
    assert wallet_argument("Default", wallets_dir) == wallets_dir / "Default"
    assert wallet_argument("Not Yet", wallets_dir) == wallets_dir / "Not Yet"


def test_relative_argument_may_step_back_while_staying_inside(wallets_dir):
    assert wallet_argument("Other/../Default", wallets_dir) == wallets_dir / "Default"


@pytest.mark.parametrize("raw", ["..", "../x", "../Wallets2/Default", "a/../../x", "Default/../../jobs"])
def test_relative_argument_climbing_out_of_wallets_is_unresolvable(wallets_dir, raw):
    with pytest.raises(Unresolvable):
        wallet_argument(raw, wallets_dir)


def test_symlink_argument_resolves_to_its_target(wallets_dir, tmp_path):
    link = tmp_path / "shortcut"
    link.symlink_to(wallets_dir / "Default")
    assert wallet_argument(str(link), wallets_dir) == wallets_dir / "Default"


def test_relative_symlink_inside_wallets_resolves_to_where_it_points(wallets_dir, tmp_path):
    target = tmp_path / "usb" / "Savings"
    target.mkdir(parents=True)
    (wallets_dir / "Savings").symlink_to(target)
    assert wallet_argument("Savings", wallets_dir) == target


def test_broken_symlink_is_unresolvable(wallets_dir, tmp_path):
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(Unresolvable):
        wallet_argument(str(link), wallets_dir)


@pytest.mark.parametrize("raw", ["", "Def\0ault", "/tmp/\0"])
def test_empty_or_nul_path_is_unresolvable(raw):
    with pytest.raises(Unresolvable):
        canonical(raw)


def test_backslash_is_an_ordinary_character_on_posix(wallets_dir):
    assert wallet_argument("a\\..\\..\\x", wallets_dir) == wallets_dir / "a\\..\\..\\x"


def test_wallets_dir_behind_a_symlink_still_bounds_relative_paths(tmp_path):
    real = tmp_path / "real" / "Wallets"
    (real / "Default").mkdir(parents=True)
    link = tmp_path / "Wallets-link"
    link.symlink_to(real)
    assert wallet_argument("Default", link) == real / "Default"
    with pytest.raises(Unresolvable):
        wallet_argument("../x", link)


def test_is_inside():
    root = Path("/a/b")
    assert is_inside(Path("/a/b"), root)
    assert is_inside(Path("/a/b/c/d"), root)
    assert not is_inside(Path("/a/bc"), root)
    assert not is_inside(Path("/a"), root)


def test_canonical_resolves_links_in_the_middle(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert canonical(tmp_path / "link" / "sub" / "new") == tmp_path / "real" / "sub" / "new"


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "/abs",
        ".hidden",
        "$Recycle",
        "trailing ",
        "trailing.",
        "dots..",
        "CON",
        "con",
        "Nul",
        "nul.txt",
        "COM1.txt",
        "com9",
        "LPT1",
        "lpt5.log",
        "AUX",
        "PRN.tar.gz",
        "CON .txt",
        "COM\u00b9",
        "CONIN$",
        "tab\there",
        "new\nline",
        "nul\0byte",
        "bell\x07",
        "del\x7f",
        "c1\x85control",
        "a:b",
        "a*b",
        "a?b",
        'a"b',
        "a<b",
        "a>b",
        "a|b",
        "x" * (MAX_NAME_CHARS + 1),
    ],
)
def test_invalid_folder_names_have_a_problem(name):
    assert folder_name_problem(name)


@pytest.mark.parametrize(
    "name",
    [
        "Default",
        "My Savings",
        "wallet-2",
        "Ünïcødé wallet",
        "財布",
        "🪙 coins",
        "a.b",
        "CONSOLE",
        "COM10",
        "LPT",
        "nul_backup",
        "x" * MAX_NAME_CHARS,
        "é" * MAX_NAME_CHARS,
        "middle.dot name",
        "50$",
    ],
)
def test_valid_folder_names_have_no_problem(name):
    assert folder_name_problem(name) is None


def test_problem_reads_as_a_reason():
    assert "separator" in folder_name_problem("a/b")
    assert "reserved" in folder_name_problem("COM1.txt")
    assert "64" in folder_name_problem("y" * 65)
    assert "0x0a" in folder_name_problem("a\nb")
    assert "':'" in folder_name_problem("a:b")


def test_folder_names_without_a_problem_can_be_created(tmp_path):
    for name in ["My Savings", "財布", "x" * MAX_NAME_CHARS]:
        assert folder_name_problem(name) is None
        os.mkdir(tmp_path / name)
