"""Starting processes with freed host memory kept for reuse (glibc tunables)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from mmrphys.host_memory import REUSE_TUNABLES, reuse_env, started_with_reuse

EXPECTED = {"mmap_max": 0, "trim_threshold": 2**31 - 1, "arena_max": 1, "hugetlb": 1}


@pytest.mark.skipif(shutil.which("ld.so") is None, reason="needs glibc's ld.so to list its tunables")
def test_glibc_takes_every_setting_of_reuse_env():
    # glibc ignores unknown or malformed tunables silently: read back what it applied
    listed = subprocess.run(["ld.so", "--list-tunables"], env={"PATH": "/usr/bin:/bin", **reuse_env({})},
                            capture_output=True, text=True, check=True).stdout
    applied = {m[1]: int(m[2], 0) for m in re.finditer(r"glibc\.malloc\.(\w+): (\w+)", listed)}
    assert {name: applied[name] for name in EXPECTED} == EXPECTED


def test_reuse_env_keeps_the_users_tunables_last_so_they_win():
    assert reuse_env({}) == {"GLIBC_TUNABLES": REUSE_TUNABLES}
    own = "glibc.malloc.arena_max=4"
    assert reuse_env({"GLIBC_TUNABLES": own})["GLIBC_TUNABLES"] == f"{REUSE_TUNABLES}:{own}"
    assert started_with_reuse(reuse_env({"GLIBC_TUNABLES": own}))
    assert not started_with_reuse({"GLIBC_TUNABLES": own}) and not started_with_reuse({})


def test_training_workers_get_the_tunables_unless_switched_off():
    from mmrphys.config import ExperimentConfig
    from pipelines.train.driver import worker_runtime_env

    config = ExperimentConfig()
    assert started_with_reuse(worker_runtime_env(config)["env_vars"])
    assert worker_runtime_env(config.with_overrides(["train.reuse_host_memory=false"])) is None
