"""The `.mailmap` applied as git applies it (worker/engine/mailmap.py), with `git
check-mailmap` as the oracle: every form of entry, names and emails in other ASCII cases,
comments, empty names, and a name-keyed entry beside its email's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gitrepos import GitRepo
from worker.engine.mailmap import Mailmap

MAILMAP = """\
# a comment <not@an.entry>
Alice Liddell <alice@example.com> <alice@old.example>
Bob Builder <bob@example.org>
<carol@new.example> <Carol@Old.Example>
Dan Proper <dan@proper.example> <dan@example.com>
Erin Ex <erin@ex.example> Erin Work <erin@work.example>
Erin Home <erin@home.example> erin <ERIN@work.example>
Frank <frank@example.com> Wrong Name <frank@old.example>
<grace@example.com> <>
  Zoë Ünal   <zoe@example.com>
Ünïcode Fold <u@example.com> ÜBER <u@example.com>
broken line without email
""".encode()

IDENTITIES = [
    ("alice", "alice@old.example"),
    ("alice", "Alice@Old.example"),  # git folds the email's case; libgit2 did not
    ("Alice", "ALICE@OLD.EXAMPLE"),
    ("bob", "bob@example.org"),
    ("Robert", "BOB@EXAMPLE.ORG"),
    ("Carol", "carol@old.example"),
    ("carol", "CAROL@OLD.EXAMPLE"),
    ("Dan", "dan@example.com"),
    ("Erin Work", "erin@work.example"),
    ("erin work", "Erin@Work.Example"),
    ("erin", "erin@work.example"),
    ("ERIN", "erin@work.example"),
    ("Someone", "erin@work.example"),  # the email's entries name others: unchanged
    ("Wrong Name", "frank@old.example"),
    ("Right Name", "frank@old.example"),
    ("Grace", ""),
    ("zoe", "zoe@example.com"),
    ("ÜBER", "u@example.com"),
    ("über", "u@example.com"),  # strcasecmp folds ASCII only
    ("Nobody", "nobody@example.com"),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = GitRepo.init(tmp_path_factory.mktemp("mailmap") / "repo")
    repo.commit({".mailmap": MAILMAP})
    return repo


def check_mailmap(repo: GitRepo, name: str, email: str) -> tuple[str, str]:
    out = repo.run("check-mailmap", f"{name} <{email}>").decode().rstrip("\n")
    shown_name, _, rest = out.rpartition(" <")
    return shown_name, rest.removesuffix(">")


@pytest.mark.parametrize(("name", "email"), IDENTITIES)
def test_identities_map_as_git_maps_them(repo: GitRepo, name: str, email: str) -> None:
    mailmap = Mailmap((repo.path / ".mailmap").read_bytes())
    assert mailmap.resolve(name, email) == check_mailmap(repo, name, email)


def test_the_table_exercises_every_form(repo: GitRepo) -> None:
    """Guards the table: most identities change, and case alone decides some."""
    changed = [i for i in IDENTITIES if check_mailmap(repo, *i) != i]
    assert len(changed) >= 14
    assert check_mailmap(repo, "alice", "Alice@Old.example")[0] == "Alice Liddell"


def test_no_mailmap_changes_nothing(tmp_path: Path) -> None:
    assert Mailmap().resolve("A", "a@b") == ("A", "a@b")
