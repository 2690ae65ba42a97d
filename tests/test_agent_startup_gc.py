"""`gossipnode agent` makes its start-up imports with the cyclic collector off (cli.main)
and turns it back on once they are done (runtime/daemon.py `run_agent`): whatever way the
verb ends, the collector is on again afterwards."""

import gc

from gossipnode.cli import main


def test_an_agent_that_cannot_start_leaves_the_collector_on(tmp_path, capsys):
    assert gc.isenabled()
    assert main(["agent", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert gc.isenabled()
