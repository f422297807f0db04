"""What a result's JSON records about where it came from."""

import jax

from memjax.provenance import provenance


def test_provenance_records_the_versions_that_set_a_runs_time():
    """A time measured under another jaxlib (another XLA) is another measurement: the record
    names the versions, and they are the ones this process imported."""
    record = provenance(["memjax", "reproduce", "--out", "x"])
    assert record["command"] == "memjax reproduce --out x"
    assert record["packages"]["jax"] == jax.__version__
    assert record["packages"]["jaxlib"] == jax.lib.__version__
    assert record["cpus"] >= 1
