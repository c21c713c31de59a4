"""Where everything lives in storage (one prefix, S3 or a local folder)."""

import hashlib


def codebase_document(codebase_id: int, name: str) -> str:
    return f"analytics/{codebase_id}/{name}.json"


PATHS_PREFIX = "paths/"


def paths_document(path_text: str) -> str:
    """The name (for codebase_document) of a directory's paths document, by the directory's
    text (contract/paths.py; "" for the root)."""
    return PATHS_PREFIX + hashlib.sha256(path_text.encode()).hexdigest()


def paths_documents(codebase_id: int) -> str:
    """The prefix of a codebase's paths documents' keys."""
    return f"analytics/{codebase_id}/{PATHS_PREFIX}"


WEEKS_PREFIX = "contributor_activity/"


def contributor_weeks(codebase_id: int, digest: str) -> str:
    """Where one person's contributor_activity weeks are, by the sha256 of that object's bytes
    (contract/documents.py, ContributorActivityIndex)."""
    return f"analytics/{codebase_id}/{WEEKS_PREFIX}{digest}.json"


def contributor_weeks_objects(codebase_id: int) -> str:
    """The prefix of a codebase's contributor_activity weeks objects' keys."""
    return f"analytics/{codebase_id}/{WEEKS_PREFIX}"


def org_document(org_id: int, name: str) -> str:
    return f"analytics/orgs/{org_id}/{name}.json"


def registry_entry(codebase_id: int) -> str:
    return f"meta/codebases/{codebase_id}.json"


def state_prefix(codebase_id: int) -> str:
    return f"state/{codebase_id}/"


def manifest(codebase_id: int) -> str:
    return f"state/{codebase_id}/manifest.json"


def state_object(codebase_id: int, name: str) -> str:
    return f"state/{codebase_id}/{name}"
