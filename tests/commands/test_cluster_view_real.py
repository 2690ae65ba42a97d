"""Three real agents under an administrator key: `status` on any node groups the members by
the digest roots they advertise, and a signed `force-leave` removes a dead member from
every view for good, until it comes back itself."""

from __future__ import annotations

import time

import pytest

from gossipnode.client import ClientError

from .conftest import stop_all, wait_for

pytestmark = pytest.mark.slow

# Anti-entropy only when asked (`repair`), so a member that missed writes stays apart until
# then; patient probes for a busy machine; frequent push-pulls and reconnects, so that any
# gossip that could bring a forced-out member back has many chances to within the window.
CONFIG_TAIL = (
    "\n[replication]\nanti_entropy_interval_s = 3600\n"
    "\n[membership]\nprobe_interval_s = 2.0\nprobe_timeout_s = 1.5\n"
    "push_pull_interval_s = 2.0\nreconnect_interval_s = 2.0\n"
)
# Failure detection on a loaded machine: suspicion, then its Lifeguard timeout.
MEMBERSHIP_WAIT_S = 60.0
# How long the forced-out member must stay gone: several push-pull and reconnect rounds.
GONE_WINDOW_S = 15.0
POLL_S = 0.5


def states(agent) -> dict[str, str]:
    return {m["name"]: m["state"] for m in agent.request("members")}


def dataset_view(cli, agent, dataset):
    cluster = cli("status", "--config", agent.config, "--json").json()["cluster"]
    return next(d for d in cluster if d["dataset"] == dataset)


def own_root(agent, dataset):
    """The agent's own full digest, cut to the advertised prefix (16 hex digits)."""
    status = agent.request("status")
    return next(d["digest"] for d in status["datasets"] if d["name"] == dataset)[:16]


def value_of(agent, key):
    try:
        return agent.request("get", dataset="groups", key=key)
    except ClientError:
        return None


def test_status_groups_members_by_root_and_force_leave_holds(tmp_path, new_agent, cli):
    key = tmp_path / "admin.key"
    assert cli("admin", "keygen", "--out", key).code == 0
    pinned = ("--admin-pubkey", f"{key}.pub")
    a = new_agent(tmp_path, "a", *pinned, config_tail=CONFIG_TAIL)
    b = new_agent(tmp_path, "b", *pinned, join=a, config_tail=CONFIG_TAIL)
    c = new_agent(tmp_path, "c", *pinned, join=a, config_tail=CONFIG_TAIL)
    agents = [a, b, c]
    try:
        for agent in agents:
            agent.start()
        for agent in agents:
            assert cli("admit", agent.node_id, "--admin-key", key, "--config", a.config).code == 0
        everyone = {"a": "alive", "b": "alive", "c": "alive"}
        wait_for(lambda: all(states(x) == everyone for x in agents), "all three alive",
                 timeout_s=MEMBERSHIP_WAIT_S)

        # A divergent write: a and b write one key differently at once; it settles
        # (last writer wins) and every member then shows one group in `groups`.
        a.request("put", dataset="groups", key="sales", value={"by": "a"})
        b.request("put", dataset="groups", key="sales", value={"by": "b"})
        written_at = time.time()

        def agreed_everywhere():
            values = [value_of(x, "sales") for x in agents]
            if None in values or any(v != values[0] for v in values):
                return False  # the oracle: the stores themselves
            for agent in agents:
                view = dataset_view(cli, agent, "groups")
                if not view["agreed"] or view["groups"][0]["members"] != ["a", "b", "c"]:
                    return False
                if view["groups"][0]["root"] != own_root(agent, "groups"):
                    return False
            return True

        wait_for(agreed_everywhere, "every member to show a, b, c in one group",
                 timeout_s=MEMBERSHIP_WAIT_S)
        settled = dataset_view(cli, c, "groups")["groups"][0]
        assert settled["since"] >= written_at - 1.0  # they agree since the write settled
        human = cli("status", "--config", b.config).out
        assert "every dataset identical on a, b, c" in human

        # c dies; a write it misses makes it differ: a and b agree, c is stale.
        c.process.kill()
        c.process.wait(timeout=10)
        old_root = own_root(a, "groups")
        a.request("put", dataset="groups", key="late", value={"by": "a"})

        def apart():
            view = dataset_view(cli, b, "groups")
            return (
                [g["members"] for g in view["groups"]] == [["a", "b"]]
                and [(s["name"], s["root"]) for s in view["stale"]] == [("c", old_root)]
                and view["groups"][0]["root"] != old_root and view
            )

        wait_for(lambda: states(b)["c"] == "dead" and apart(), "b to show c dead and apart",
                 timeout_s=MEMBERSHIP_WAIT_S)
        human = cli("status", "--config", b.config).out
        assert "c (stale)" in human and old_root in human

        # A force-leave signed with a key the cluster does not pin is refused.
        other = tmp_path / "other.key"
        assert cli("admin", "keygen", "--out", other).code == 0
        forged = cli("force-leave", "c", "--admin-key", other, "--config", b.config)
        assert forged.code == 2 and "not signed by a pinned administrator key" in forged.err
        assert "c" in states(a) and "c" in states(b)

        # The real one, on b: c disappears from every view and stays gone.
        forced = cli("force-leave", "c", "--admin-key", key, "--config", b.config)
        assert forced.code == 0 and "removed c" in forced.out, forced.err
        assert "replicates to every member" in forced.out
        wait_for(lambda: "c" not in states(a) and "c" not in states(b),
                 "c to disappear from a and b")
        deadline = time.monotonic() + GONE_WINDOW_S
        while time.monotonic() < deadline:
            assert "c" not in states(a) and "c" not in states(b)
            time.sleep(POLL_S)
        for agent in (a, b):
            assert cli("health", "--config", agent.config).code == 0
            view = dataset_view(cli, agent, "groups")
            assert view["agreed"] and view["groups"][0]["members"] == ["a", "b"]

        # c restarts (a higher incarnation): it is back, and once repaired it agrees.
        c.start()
        wait_for(lambda: all(states(x) == everyone for x in agents), "c to be back",
                 timeout_s=MEMBERSHIP_WAIT_S)
        assert cli("repair", "--peer", "a", "--config", c.config).code == 0
        wait_for(agreed_everywhere, "a, b and c to agree again", timeout_s=MEMBERSHIP_WAIT_S)
    finally:
        stop_all(agents)
