"""compat-tests/differences.py - where runnel answers differently from Apache Kafka on purpose.

compare.py sets each scenario's observations against runnel beside the same
scenario's against Apache Kafka 4.4; any difference fails the scenario's
cells in the matrix, unless it is listed here with the reason it is right.
Each entry names a scenario and an observation key (shell-style patterns,
as fnmatch reads them) and says why. A difference that is a fault of runnel
does not belong here: fix runnel.

Values a broker generates afresh on every run (cluster ids, topic ids,
member ids, ports, timestamps) are never observed raw: the scenarios
normalise them first (their shape, or whether two of them agree), so they
need no entry.
"""

import fnmatch

# (scenario pattern, observation key pattern, why the two brokers differ)
INTENTIONAL = [
]


def reason(scenario, key):
    """Why scenario's observation key may differ between the brokers, or None."""
    for scenario_pattern, key_pattern, why in INTENTIONAL:
        if fnmatch.fnmatchcase(scenario, scenario_pattern) and fnmatch.fnmatchcase(key, key_pattern):
            return why
    return None
