"""The jobs' registry and values: every built-in job registered under its name, unknown names
refused with the list of known ones, targets naming their lease keys, and the package's public
surface."""

from __future__ import annotations

import pytest

import revisor.jobs
from revisor.errors import InvalidInput
from revisor.jobs.base import JOB_MODULES, JobName, Target, all_jobs, get_job
from revisor.jobs.leases import candidate_key, new_owner, source_key


def test_every_job_is_registered_under_its_name() -> None:
    names = [j.name for j in all_jobs()]
    assert names == list(JobName)  # backup and cleanup included once their modules exist
    assert set(JOB_MODULES) == set(JobName)
    for name in JobName:
        job = get_job(name.value)
        assert job.name is name and job.description


def test_unknown_job_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        get_job("nonesuch")
    assert err.value.hint is not None and "sync" in err.value.hint


def test_targets_and_lease_keys() -> None:
    assert Target("proj").key == source_key("proj") == "source:proj"
    assert Target("proj", 4).key == candidate_key("proj", 4) == "candidate:proj:4"
    assert str(Target("proj", 4)) == "proj#4"
    assert get_job("sync").lease_keys(Target("proj", 4)) == ("candidate:proj:4",)
    assert get_job("squash").lease_keys(Target("proj", 4)) == ("candidate:proj:4",)
    assert get_job("refresh").lease_keys(Target("proj")) == ("source:proj",)
    assert get_job("maintain").lease_keys(Target("proj")) == ("source:proj",)


def test_owners_are_unique_and_name_the_process() -> None:
    import os

    a, b = new_owner("sync"), new_owner("sync")
    assert a != b and a.split(":")[1] == str(os.getpid()) and a.endswith(":sync")


def test_public_surface() -> None:
    for name in revisor.jobs.__all__:
        assert hasattr(revisor.jobs, name), name
