"""The `.mailmap`, read and applied as git reads and applies it (mailmap.c).

libgit2's mailmap matches a commit's email and name case-sensitively, where git compares both
ignoring ASCII case (`strcasecmp`): `alice <Alice@Old.example>` is mapped by git through an
entry for `<alice@old.example>`, and was not by libgit2. So the file is parsed here, by git's
rules:

- a line starting with `#` is a comment; otherwise its first `<...>` is an email, the text before
  it (trimmed) a name, and what follows may hold a second name and `<email>`;
- with one email, the entry is keyed by it and gives a name (`Proper Name <commit@email>`);
- with two, it is keyed by the second (and by the second name, when there is one) and gives the
  first name and email;
- an identity is looked up by its email, then among that email's entries by its name; an entry
  keyed by name wins over the email's own, which applies when no name matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# strcasecmp folds ASCII letters only.
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(text: str) -> str:
    return text.translate(_ASCII_FOLD)


@dataclass
class _Entry:
    name: str | None = None
    email: str | None = None
    # By the folded commit name: (proper name, proper email).
    by_name: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def _name_and_email(text: str, allow_empty_email: bool) -> tuple[str | None, str | None, str]:
    """git's parse_name_and_email: (name, email, the rest after `>`); email None when there is
    no `<...>` (or it is empty and not allowed to be)."""
    left = text.find("<")
    if left < 0:
        return None, None, ""
    right = text.find(">", left + 1)
    if right < 0:
        return None, None, ""
    name = text[:left].strip() or None
    email = text[left + 1 : right]
    if not email and not allow_empty_email:
        return name, None, text[right + 1 :]
    return name, email, text[right + 1 :]


class Mailmap:
    """A `.mailmap`'s entries; `resolve` maps an identity as git's `check-mailmap` does."""

    def __init__(self, data: bytes = b"") -> None:
        self._entries: dict[str, _Entry] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith("#"):
                continue
            name1, email1, rest = _name_and_email(line, False)
            if email1 is None:
                continue
            name2, email2, _ = _name_and_email(rest, True)
            self._add(name1, email1, name2, email2)

    @classmethod
    def from_buffer(cls, data: bytes) -> Mailmap:
        return cls(data)

    def _add(
        self, new_name: str | None, new_email: str, old_name: str | None, old_email: str | None
    ) -> None:
        proper_email: str | None = new_email
        if old_email is None:
            old_email, proper_email = new_email, None
        entry = self._entries.setdefault(_fold(old_email), _Entry())
        if old_name is None:
            if new_name is not None:
                entry.name = new_name
            if proper_email is not None:
                entry.email = proper_email
        else:
            entry.by_name[_fold(old_name)] = (new_name, proper_email)

    def resolve(self, name: str, email: str) -> tuple[str, str]:
        """(name, email) after the mailmap."""
        entry = self._entries.get(_fold(email))
        if entry is None:
            return name, email
        proper_name, proper_email = entry.by_name.get(_fold(name), (entry.name, entry.email))
        return proper_name or name, proper_email or email
