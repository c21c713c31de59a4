"""Storage answering 5xx, dropping connections and stalling (DESIGN.md, "Faults"), under the
real worker processes: S3 (moto) behind a faulty proxy. The runs retry, and the documents end as
a clean run's. Marked `fault`: `pytest -m fault` runs it alone."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import aioboto3
import pytest

from contract.storage.s3 import S3Storage
from tests.support.documents import assert_equals_a_clean_run
from tests.support.faulty_proxy import Faults, FaultyProxy
from tests.support.gitrepos import GitRepo
from tests.support.stack import ORG_ID, ORG_LOGIN, Stack, add_repo

pytestmark = pytest.mark.fault


async def test_storage_faults_end_in_a_clean_runs_documents(
    stack: Stack, s3_server: str, tmp_path: Path
) -> None:
    bucket = f"gitstats-faults-{uuid.uuid4().hex[:12]}"
    async with aioboto3.Session().client("s3", endpoint_url=s3_server) as s3:
        await s3.create_bucket(Bucket=bucket)
    # Readers (the test) go straight to S3; the workers through the proxy.
    direct = S3Storage(bucket, "data", s3_server)
    system = dataclasses.replace(stack, storage=direct)
    fake = system.fake
    installation_id = fake.add_installation(ORG_LOGIN, ORG_ID)
    repos = {}
    for i in range(2):
        repo = GitRepo.init(tmp_path / "repos" / f"r{i}")
        for n in range(30):
            repo.commit({f"src/f{n % 7}.py": f"x = {n}\n" * (n + 1)}, message=f"c{n}")
        repos[add_repo(fake, installation_id, f"r{i}", repo)] = repo
    faults = Faults(error_rate=0.1, drop_rate=0.05, delay_rate=0.05, delay_s=0.2)

    with FaultyProxy(s3_server, faults) as proxy, system.worker_logs_on_failure():
        await system.start_workers(
            2,
            storage_url=f"s3://{bucket}/data",
            s3_endpoint_url=proxy.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_default_region="us-east-1",
        )
        await system.install(installation_id, list(repos), "selected")
        await system.settle(repos)
        cid, repo = next(iter(repos.items()))
        before = repo.head("main")
        repo.commit({"late.py": "late\n"}, message="late")
        await system.push(installation_id, cid, "main", before, repo.head("main"))
        await system.settle(repos)

    assert faults.counts["error"] and faults.counts["drop"], faults.counts
    for i, (cid, repo) in enumerate(repos.items()):
        await assert_equals_a_clean_run(
            direct, cid, repo.path, tmp_path / f"clean{i}", full_name=f"{ORG_LOGIN}/r{i}"
        )
    await direct.close()
