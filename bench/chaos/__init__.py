"""The chaos drill (``python -m bench.chaos``): charging sessions across YKC and OCPP chargers
while the broker is restarted and the cloud worker and the gateway are killed (SIGKILL) and
restarted; afterwards every session the chargers completed is checked against the platform's
orders (none lost, none duplicated, none extra, energy and YKC amounts exact, wallets
reconciled). Usage and results: ``docs/benchmarks.md`` ("Chaos drill").

Modules: :mod:`bench.chaos.spec` (what a drill is), :mod:`bench.chaos.site` (Mosquitto, the
cloud and gateway processes, the seed), :mod:`bench.chaos.drill` (the run and its chaos
schedule), :mod:`bench.chaos.verdict` (ledger vs orders, the one-line verdict).
"""

from bench.chaos.drill import run_drill
from bench.chaos.errors import ChaosError
from bench.chaos.spec import DrillSpec, small_spec
from bench.chaos.verdict import Verdict, compare

__all__ = ["ChaosError", "DrillSpec", "Verdict", "compare", "run_drill", "small_spec"]
