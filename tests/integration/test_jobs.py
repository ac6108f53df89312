"""The jobs on real repositories: refresh, sync (incremental; after the target moved, conflicts
recorded), squash (the proposal branch force-pushed with a lease, checked with the git CLI),
maintain; leases keeping sync and squash apart; one failing candidate not stopping the others.

What the tests assert about git is read back with the git CLI (``git for-each-ref``,
``git ls-remote``, ``git log``); what a run did, from its record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from revisor.db.jobs import JobOutcome
from revisor.errors import InvalidInput, SourceNotFound
from revisor.jobs.base import Target
from revisor.jobs.leases import Leases, candidate_key
from revisor.jobs.runner import run_job
from revisor.jobs.runs import RunStore
from revisor.jobs.squash import proposal_ref
from revisor.providers.base import ProposalRequest, ProposalStatus
from revisor.services.candidate_submit import branch_of
from revisor.store.mirror import PushUpdate
from revisor.vcs import ObjectId
from tests.integration.test_candidates_support import lines, move_target
from tests.integration.test_jobs_support import (
    ALICE,
    NO_BACKUP,
    jobs_world,
    lease_rows,
    make_candidates,
)
from tests.integration.test_transactions_support import Upstream


def _by_target(run: object) -> dict[str, tuple[JobOutcome, bool, str]]:
    from revisor.jobs.runs import JobRun

    assert isinstance(run, JobRun)
    return {r.target: (r.outcome, r.changed, r.summary) for r in run.results}


def test_sync_is_incremental_and_follows_a_moved_target(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        c = rv.source("proj").candidates
        ids = make_candidates(c, 3)
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]

        first = run_job(rv, "sync")
        assert first.outcome is JobOutcome.SUCCEEDED
        targets = _by_target(first)
        assert set(targets) == {f"proj#{i}" for i in ids}
        # bob's workspaces were behind their candidates: synced now
        assert all(changed for _, changed, _ in targets.values())
        for i in ids:
            refs = mirror.refs(f"refs/revisor/workspaces/{i}/")
            cand = mirror.ref(f"refs/revisor/candidates/{i}")
            assert set(refs.values()) == {cand}  # both workspaces at the candidate's head

        second = run_job(rv, "sync")
        assert second.outcome is JobOutcome.SUCCEEDED and second.changed == 0
        assert {s for _, _, s in _by_target(second).values()} == {
            "nothing moved since the last sync"}
        assert lease_rows(rv).keys() == {candidate_key("proj", i) for i in ids}  # none retaken

        # the target moves: one candidate conflicts with it (same line), the others rebase
        before = {i: mirror.ref(f"refs/revisor/candidates/{i}") for i in ids}
        move_target(w, {"c.txt": lines("c", l5="the target's line 5"),
                        "README.md": "moved\n"})
        rv.source("proj").stored.refresh()
        third = run_job(rv, "sync")
        assert third.outcome is JobOutcome.SUCCEEDED
        for i in ids:
            outcome, changed, summary = _by_target(third)[f"proj#{i}"]
            assert outcome is JobOutcome.SUCCEEDED
            assert changed and "conflicts with the target: c.txt" in summary
            cand = c.get(i)
            assert cand.has_conflicts and cand.conflicts == ("c.txt",)
            assert mirror.ref(f"refs/revisor/candidates/{i}") == before[i]  # nothing moved

        fourth = run_job(rv, "sync")  # a conflict is not tried again until something moves
        assert fourth.changed == 0
        assert all(s == "nothing moved since the last sync"
                   for _, _, s in _by_target(fourth).values())
    finally:
        w.close()


def test_sync_rebases_onto_a_moved_target_and_syncs_the_workspaces(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        c = rv.source("proj").candidates
        [cid] = make_candidates(c, 1)
        run_job(rv, "sync")
        target = move_target(w, {"README.md": "the target moved\n"})
        run = run_job(rv, "sync", source="proj")
        outcome, changed, summary = _by_target(run)[f"proj#{cid}"]
        assert outcome is JobOutcome.SUCCEEDED and changed
        assert "onto the moved target" in summary and "2 of 2 workspaces synced" in summary
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]
        head = mirror.ref(f"refs/revisor/candidates/{cid}")
        assert mirror.git("merge-base", "--is-ancestor", target, head) == ""
        assert mirror.show(head, "README.md") == b"the target moved\n"
        assert mirror.show(head, "c.txt") == lines("c", l5="candidate 0 was here")
        for ref, oid in mirror.refs(f"refs/revisor/workspaces/{cid}/").items():
            assert oid == head, ref
        again = run_job(rv, "sync", source="proj", candidate=cid)
        assert again.changed == 0
    finally:
        w.close()


def test_one_failing_candidate_does_not_stop_the_others(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        c = rv.source("proj").candidates
        ids = make_candidates(c, 3)
        # break the middle one: its candidate ref points at a blob, not a commit
        broken = ids[1]
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]
        ref = f"refs/revisor/candidates/{broken}"
        blob = mirror.git("hash-object", "-w", "--stdin", input=b"not a commit\n").strip()
        mirror.git("update-ref", ref, blob)
        run = run_job(rv, "sync")
        assert run.outcome is JobOutcome.PARTIAL
        results = {r.target: r for r in run.results}
        assert results[f"proj#{broken}"].outcome is JobOutcome.FAILED
        assert results[f"proj#{broken}"].error
        for i in (ids[0], ids[2]):
            assert results[f"proj#{i}"].outcome is JobOutcome.SUCCEEDED
            assert results[f"proj#{i}"].changed
        assert RunStore(rv.db).get(run.id) == run
        # nothing held afterwards: every lease released
        assert all(owner == "" for owner, _ in lease_rows(rv).values())
    finally:
        w.close()


def test_a_candidate_leased_elsewhere_is_skipped_by_sync_and_squash(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        c = rv.source("proj").candidates
        ids = make_candidates(c, 2)
        leases = Leases(rv.db)
        held = leases.acquire(candidate_key("proj", ids[0]), "a squash elsewhere", ttl=600)
        assert held is not None
        for job in ("sync", "squash"):
            run = run_job(rv, job)
            results = {r.target: r for r in run.results}
            assert run.outcome is JobOutcome.PARTIAL
            assert results[f"proj#{ids[0]}"].outcome is JobOutcome.SKIPPED
            assert "a squash elsewhere" in results[f"proj#{ids[0]}"].summary
            assert results[f"proj#{ids[1]}"].outcome is JobOutcome.SUCCEEDED
        leases.release(held)
        run = run_job(rv, "sync", source="proj", candidate=ids[0])
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == 1
    finally:
        w.close()


def test_squash_keeps_the_one_commit_form_and_updates_the_proposal(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        src = rv.source("proj")
        c = src.candidates
        [cid] = make_candidates(c, 1)
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]
        main = mirror.ref("refs/heads/main")

        first = run_job(rv, "squash")
        outcome, changed, summary = _by_target(first)[f"proj#{cid}"]
        assert outcome is JobOutcome.SUCCEEDED and changed and "squashed to" in summary
        squashed = mirror.ref(proposal_ref(cid))
        assert squashed is not None
        assert mirror.parents(squashed) == [main]
        assert mirror.show(squashed, "c.txt") == lines("c", l5="candidate 0 was here")
        message = mirror.git("log", "-1", "--format=%B", squashed)
        assert message.startswith("Candidate 0\n")
        assert branch_of(cid) not in w.remote_refs()  # not proposed: nothing published

        again = run_job(rv, "squash")
        assert again.changed == 0 and mirror.ref(proposal_ref(cid)) == squashed

        # the candidate is proposed (its submission stopped before it landed)
        branch = branch_of(cid)
        src.stored.push([PushUpdate(f"refs/heads/{branch}", ObjectId(squashed), None)])
        proposal = src.provider.open(ProposalRequest(
            title="Candidate 0", description="", author=ALICE, source_branch=branch,
            source_commit=ObjectId(squashed), target_branch="main"))
        c.ctx.store.update("proj", cid, proposal_provider=proposal.provider,
                           proposal_number=proposal.number, proposal_url=proposal.url)

        # bob adds a change: the candidate's head moves, squash rebuilds and force-pushes
        ws = c.workspace(cid, "bob")
        ws.sync()
        _, etag = ws.read("b.txt")
        ws.write("b.txt", lines("b", l2="bob's"), if_match=etag)
        ws.publish()
        third = run_job(rv, "squash")
        outcome, changed, summary = _by_target(third)[f"proj#{cid}"]
        assert changed and "pushed" in summary and f"proposal #{proposal.number}" in summary
        new = mirror.ref(proposal_ref(cid))
        assert new != squashed and mirror.parents(new) == [main]
        assert w.remote_refs()[f"refs/heads/{branch}"] == new  # read with git ls-remote
        assert w.upstream.show(new, "b.txt") == lines("b", l2="bob's")
        assert w.upstream.show(new, "c.txt") == lines("c", l5="candidate 0 was here")
        assert "Co-authored-by: Bob <bob@example.com>" in mirror.git(
            "log", "-1", "--format=%B", new)
        updated = src.provider.get(proposal.number)
        assert updated.status is ProposalStatus.OPEN and updated.source_commit == new
        # the audit shows a proposal update, not a new proposal
        assert [p.number for p in src.provider.list()] == [proposal.number]
    finally:
        w.close()


def test_squash_push_uses_a_lease(tmp_path: Path) -> None:
    """Someone else moved the proposal branch on the remote after the mirror last saw it: the
    push's lease fails, the run records it, and nothing of theirs is overwritten."""
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        src = rv.source("proj")
        c = src.candidates
        [cid] = make_candidates(c, 1)
        run_job(rv, "squash")
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]
        squashed = ObjectId(mirror.ref(proposal_ref(cid)) or "")
        branch = branch_of(cid)
        src.stored.push([PushUpdate(f"refs/heads/{branch}", squashed, None)])
        proposal = src.provider.open(ProposalRequest(
            title="Candidate 0", description="", author=ALICE, source_branch=branch,
            source_commit=squashed, target_branch="main"))
        c.ctx.store.update("proj", cid, proposal_provider=proposal.provider,
                           proposal_number=proposal.number)
        theirs = w.upstream.commit(f"refs/heads/{branch}", {"x.txt": "someone else\n"},
                                   message="not Revisor's")
        ws = c.workspace(cid, "alice")
        _, etag = ws.read("a.txt")
        ws.write("a.txt", lines("a", l1="alice again"), if_match=etag)
        ws.publish()
        run = run_job(rv, "squash")
        result = run.results[0]
        assert result.outcome is JobOutcome.FAILED and "RemoteRefConflict" in (result.error or "")
        assert w.remote_refs()[f"refs/heads/{branch}"] == theirs
    finally:
        w.close()


def test_refresh_fetches_due_sources_and_maintain_runs_once_per_interval(
    tmp_path: Path,
) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        rv.source("proj").stored.refresh()
        moved = w.upstream.commit("refs/heads/main", {"new.txt": "new\n"}, message="upstream")
        run = run_job(rv, "refresh")  # refresh: 1h, just fetched: not due
        assert _by_target(run) == {"proj": (JobOutcome.SUCCEEDED, False, "not due")}
        state = rv.store.source("proj").mirror
        assert state is not None
        # make it due: the last attempt an hour ago
        st = state.read_state()
        st.last_fetch_ok = (st.last_fetch_ok or 0) - 7200
        if st.last_error_at is not None:
            st.last_error_at -= 7200
        state._write_state(st)
        run = run_job(rv, "refresh")
        outcome, changed, summary = _by_target(run)["proj"]
        assert outcome is JobOutcome.SUCCEEDED and changed and "fetched" in summary
        assert Upstream(w.mirror_path).ref("refs/heads/main") == moved  # type: ignore[arg-type]

        first = run_job(rv, "maintain")
        outcome, changed, _ = _by_target(first)["proj"]
        assert outcome is JobOutcome.SUCCEEDED and changed
        assert (w.mirror_path / "objects" / "info" / "commit-graph").exists() or any(
            (w.mirror_path / "objects" / "info").glob("commit-graphs/*"))  # type: ignore[operator]
        second = run_job(rv, "maintain")
        assert _by_target(second)["proj"][1] is False
        assert "maintained" in _by_target(second)["proj"][2]
    finally:
        w.close()


def test_unknown_jobs_and_filters_are_refused(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        with pytest.raises(InvalidInput, match="no job"):
            run_job(rv, "nonesuch")
        with pytest.raises(InvalidInput, match="within a source"):
            run_job(rv, "sync", candidate=1)
        with pytest.raises(SourceNotFound):
            run_job(rv, "sync", source="other")
        run = run_job(rv, "sync", source="proj", candidate=999)
        assert run.outcome is JobOutcome.FAILED and "999" in (run.error or "")
        assert RunStore(rv.db).list() == [run]
        assert Target("proj", 3).key == "candidate:proj:3"
    finally:
        w.close()
