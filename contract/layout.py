"""Where everything lives in storage (one prefix, S3 or a local folder)."""


def codebase_document(codebase_id: int, name: str) -> str:
    return f"analytics/{codebase_id}/{name}.json"


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
