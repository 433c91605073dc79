"""compat-tests/compare.py - runnel's observations beside Apache Kafka's, scenario by scenario.

Every scenario records what its clients saw (ctx.observe in harness.py:
error codes, offsets, partition counts, configs and their sources, group
states and assignments, the records read back); run.py --results keeps them
per scenario. Given the results of the same suite against runnel and
against Apache Kafka, this module lists where the two differ. matrix.py
fails the cells of a scenario that differs; differences.py lists what
differs on purpose, and why.

    python3 compat-tests/compare.py RUNNEL.json KAFKA.json

prints every difference with both sides and exits 1 when one is not
intentional.
"""

import json
import sys

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
import differences  # noqa: E402

MISSING = "(not observed)"
SHOWN_CHARS_MAX = 1500  # per side, in a printed difference


def comparable(result):
    """A scenario's observations are only whole when it ran to its end (a
    SKIP ran to its end too, with some check not made)."""
    return result is not None and result.get("status") in ("pass", "skip")


def differences_of(runnel, kafka):
    """{scenario: [(path, runnel's value, Kafka's value, the reason when on purpose, else None)]}
    for the scenarios both brokers ran to their end, only those that differ. A
    path is an observation's key, narrowed down to where the values differ
    (narrowed); differences.py's patterns are matched against it."""
    out = {}
    theirs = kafka["scenarios"]
    for name, ours in sorted(runnel["scenarios"].items()):
        if not comparable(ours) or not comparable(theirs.get(name)):
            continue
        a, b = ours.get("observed", {}), theirs[name].get("observed", {})
        found = []
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key, MISSING), b.get(key, MISSING)
            if va != vb:
                found += [(path, x, y, differences.reason(name, path)) for path, x, y in narrowed(key, va, vb)]
        if found:
            out[name] = found
    return out


def failing(diffs):
    """The scenarios with a difference that is not on purpose."""
    return sorted(name for name, found in diffs.items() if any(why is None for _, _, _, why in found))


def shown(value):
    text = json.dumps(value, sort_keys=True)
    if len(text) > SHOWN_CHARS_MAX:
        text = text[:SHOWN_CHARS_MAX] + "... (%d characters)" % len(text)
    return text


def narrowed(key, ours, theirs):
    """[(key path, runnel's value, Kafka's value)]: where two dicts (or two lists
    of as many entries, of lists or dicts) differ, only the entries that differ,
    so that one config among forty stands out."""
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs) \
            and any(isinstance(x, (dict, list)) for x in ours):
        return [path for i, (a, b) in enumerate(zip(ours, theirs)) if a != b
                for path in narrowed("%s[%d]" % (key, i), a, b)]
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return [(key, ours, theirs)]
    out = []
    for sub in sorted(set(ours) | set(theirs)):
        a, b = ours.get(sub, MISSING), theirs.get(sub, MISSING)
        if a != b:
            out += narrowed("%s[%s]" % (key, json.dumps(sub)), a, b)
    return out


def describe(diffs):
    """Lines for a reader: each difference with both sides; those on purpose after, with why."""
    lines = []
    for name in failing(diffs):
        lines.append("- %s:" % name)
        for key, ours, theirs, why in diffs[name]:
            if why is None:
                lines.append("    - `%s`" % key)
                lines.append("        - runnel: `%s`" % shown(ours))
                lines.append("        - Kafka:  `%s`" % shown(theirs))
    # Those on purpose, once per reason and scenario: the reason says enough.
    on_purpose = {}
    for name, found in sorted(diffs.items()):
        for path, _, _, why in found:
            if why is not None:
                on_purpose.setdefault((why, name), []).append(path)
    if on_purpose:
        lines.append("")
        lines.append("Differences on purpose (compat-tests/differences.py):")
        for (why, name), paths in sorted(on_purpose.items(), key=lambda x: (x[0][1], x[0][0])):
            lines.append("- %s, %d observation%s (`%s`%s): %s" % (name, len(paths), "" if len(paths) == 1 else "s",
                                                                  paths[0], ", ..." if len(paths) > 1 else "", why))
    return lines


def counted(runnel, kafka):
    """(scenarios compared, observations compared) for the summary line."""
    names = [n for n, r in runnel["scenarios"].items()
             if comparable(r) and comparable(kafka["scenarios"].get(n))]
    keys = sum(len(set(runnel["scenarios"][n].get("observed", {})) | set(kafka["scenarios"][n].get("observed", {})))
               for n in names)
    return len(names), keys


def main(argv):
    if len(argv) != 3:
        print("usage: compare.py RUNNEL.json KAFKA.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        runnel = json.load(f)
    with open(argv[2]) as f:
        kafka = json.load(f)
    diffs = differences_of(runnel, kafka)
    scenarios, keys = counted(runnel, kafka)
    print("%d scenarios compared (%d observations); %d differ from Apache Kafka"
          % (scenarios, keys, len(failing(diffs))))
    for line in describe(diffs):
        print(line)
    return 1 if failing(diffs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
