pytest_plugins = [
    "tests.support.s3server",
    "tests.support.gitrepos",
    "tests.support.fake_github",
    "tests.support.redis_server",
    "tests.support.stack",
    "tests.support.jobs",
    "tests.support.browser",
]
