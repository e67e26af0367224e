#!/usr/bin/env python3
"""Generate tests/fixtures/cron_conformance.json, the schedule conformance fixture.

SPEC section 1.1 ("Schedules") says next fire times must equal those of the
Python `croniter` package for ordinary cron expressions. This script uses
croniter 7.0.0 as the reference implementation and records, for each case,
the next 5 fire times (UTC) strictly after a given instant, so that the Rust
schedule code can be tested against them without needing Python.

Reference per case:
  * 5-field expressions and the macros @yearly @annually @monthly @weekly
    @daily @midnight @hourly: croniter, started from a timezone-aware datetime
    in the case's zone (or in the zone of a `CRON_TZ=<zone> ` prefix, which is
    stripped before the expression goes to croniter). Results converted to UTC.
  * `@every <duration>` (our extension): epoch arithmetic,
    next = (floor(after / period) + 1) * period, repeated.

Daylight saving: SPEC 1.1 says "a time that does not exist is skipped, a
repeated hour fires once". For every croniter case the script also computes
that contract's answer independently of croniter's time-zone handling: it
enumerates matching *naive* local wall-clock times (croniter on naive datetimes,
which is pure calendar arithmetic with no zone involved) and maps each to an
instant: nonexistent -> skipped, ambiguous -> the earlier instant only, and
never going backwards. Cases where croniter disagrees with that rule are left
out of the fixture and printed as deviations on stdout.

Run from the repository root (needs croniter 7.0.0 and the stdlib zoneinfo):

    ~/.cache/specialsnowflake/venv/bin/python scripts/gen_cron_fixture.py

With --check it writes nothing and exits 1 if the committed fixture differs
from what it would write (scripts/test.sh runs it that way).

Output is deterministic (no generation timestamp), so re-running it on an
unchanged script produces an identical file.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "cron_conformance.json"
N_NEXT = 5
UTC = timezone.utc
EXPECTED_CRONITER = "7.0.0"

# "after" instants, cycled through by the ordinary cases: month ends, year
# ends, odd seconds, leap years.
AFTERS = [
    "2025-01-01T00:00:00Z",
    "2025-06-15T12:34:56Z",
    "2025-12-31T23:59:00Z",
    "2026-01-31T23:30:00Z",
    "2026-02-28T12:00:00Z",
    "2026-04-30T23:59:59Z",
    "2026-07-04T08:07:00Z",
    "2026-09-30T22:00:00Z",
    "2026-12-31T23:45:00Z",
    "2027-02-28T23:59:00Z",
    "2027-06-30T00:00:00Z",
    "2027-12-31T12:00:00Z",
    "2028-02-28T00:00:00Z",
    "2028-02-29T23:59:00Z",
]

# (category, schedule) - each gets two "after" instants from AFTERS, zone UTC.
ORDINARY = [
    ("wildcard", "* * * * *"),
    ("single", "0 * * * *"),
    ("single", "15 * * * *"),
    ("single", "0 0 * * *"),
    ("single", "30 4 * * *"),
    ("single", "59 23 * * *"),
    ("single", "0 12 * * *"),
    ("single", "0 0 1 * *"),
    ("single", "0 0 15 6 *"),
    ("list", "0,15,30,45 * * * *"),
    ("list", "0 8,12,18 * * *"),
    ("list", "5,10 1,2 * * *"),
    ("list", "0 0 1,15 * *"),
    ("list", "0 0 * 1,4,7,10 *"),
    ("list", "0 9 * * 1,3,5"),
    ("range", "0 9-17 * * *"),
    ("range", "10-15 * * * *"),
    ("range", "0 0 10-12 * *"),
    ("range", "0 0 * 6-8 *"),
    ("range", "0 9 * * 1-5"),
    ("range", "0-5 0 * * *"),
    ("step", "*/15 * * * *"),
    ("step", "5-59/10 * * * *"),
    ("step", "0 0-23/6 * * *"),
    ("step", "*/7 * * * *"),
    ("step", "0 */5 * * *"),
    ("step", "0 0 */10 * *"),
    ("step", "0 0 1 */3 *"),
    ("step", "0 0 * * */2"),
    ("step", "0 0 1-31/2 * *"),
    ("step", "10-50/20 3 * * *"),
    ("step", "0 12 * * 1-5/2"),
    ("step", "*/20 9-17/4 * * *"),
    ("names", "0 0 1 jan *"),
    ("names", "0 0 1 Jan *"),
    ("names", "0 0 1 JAN *"),
    ("names", "0 9 * * MON-FRI"),
    ("names", "0 9 * * mon-fri"),
    ("names", "0 9 * * Mon-Fri"),
    ("names", "0 0 * * sun"),
    ("names", "0 0 * * SUN"),
    ("names", "0 0 * * Sun"),
    ("names", "0 0 1 jan,jul *"),
    ("names", "0 0 * feb-apr *"),
    ("names", "0 0 * * sat,sun"),
    ("names", "0 6 * dec mon"),
    ("names", "0 0 15 Mar-May *"),
    ("names", "30 8 * * tue,THU"),
    ("names", "0 0 1 sEp *"),
    ("sunday", "0 0 * * 0"),
    ("sunday", "0 0 * * 7"),
    ("sunday", "0 0 * * 5-7"),
    ("sunday", "0 0 * * 6-7"),
    ("sunday", "0 0 * * 0,6"),
    ("sunday", "0 0 * * 7,1"),
    ("sunday", "0 0 * * 0-7"),
    ("sunday", "0 0 * * 5-7/2"),
    ("dom-dow", "0 0 13 * 5"),
    ("dom-dow", "0 0 13 * fri"),
    ("dom-dow", "0 12 1,15 * mon"),
    ("dom-dow", "0 0 1 * 1"),
    ("dom-dow", "0 0 1-7 * 1"),
    ("dom-dow", "30 6 28-31 * 0"),
    ("dom-dow", "0 0 * * 1"),
    ("dom-dow", "0 0 13 * *"),
    ("dom-dow", "0 0 * 2 1"),
    ("dom-dow", "0 0 */2 * 1"),
    ("dom-dow", "0 0 1-31/2 * 1"),
    ("month-end", "0 0 29 2 *"),
    ("month-end", "0 0 31 * *"),
    ("month-end", "0 0 30 * *"),
    ("month-end", "59 23 28-31 * *"),
    ("month-end", "0 0 31 1,3,5,7,8,10,12 *"),
    ("month-end", "0 0 29 * *"),
]

NOTES = {
    "0 0 */2 * 1": "croniter ORs dom/dow even for */2 (cronie would AND: DOM_STAR)",
    "0 0 1-31/2 * 1": "same day set as */2 but no leading *, so OR in cronie too",
    "0 0 1-7 * 1": "OR, not 'first Monday'",
    "0 0 29 2 *": "leap days only",
}

MACROS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]

# (schedule, zone, after, note): zones other than UTC, and CRON_TZ prefixes.
ZONED = [
    ("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "half-hour offset zone"),
    ("*/45 * * * *", "Asia/Kolkata", "2026-05-05T12:34:56Z", "half-hour offset zone"),
    ("0 0 * * *", "Australia/Sydney", "2026-06-30T13:00:00Z", ""),
    ("0 0 1 * *", "America/New_York", "2026-01-15T00:00:00Z", "monthly across DST changes"),
    ("0 12 * * mon-fri", "Europe/Berlin", "2026-07-01T00:00:00Z", ""),
    ("0 0 * * *", "Asia/Tokyo", "2026-12-31T14:59:00Z", "year end local"),
    ("CRON_TZ=Europe/Berlin 0 9 * * *", "UTC", "2026-01-15T00:00:00Z", ""),
    ("CRON_TZ=Europe/Berlin 0 9 * * *", "America/New_York", "2026-07-15T00:00:00Z", "prefix overrides zone"),
    ("CRON_TZ=Europe/Berlin 0 0 1 * *", "UTC", "2026-12-15T00:00:00Z", ""),
    ("CRON_TZ=America/New_York 30 8 * * mon-fri", "UTC", "2026-06-01T00:00:00Z", ""),
    ("CRON_TZ=America/New_York 0 0 * * *", "Europe/Berlin", "2026-12-30T00:00:00Z", "prefix overrides zone"),
    ("CRON_TZ=America/New_York */20 * * * *", "UTC", "2027-01-01T04:50:00Z", ""),
    ("CRON_TZ=Asia/Kolkata 0 9 * * *", "UTC", "2026-03-01T00:00:00Z", "half-hour offset zone"),
    ("CRON_TZ=Asia/Kolkata 0 0 1 * *", "America/New_York", "2026-12-31T18:00:00Z", "prefix overrides zone"),
    ("CRON_TZ=Asia/Kolkata 0 * * * *", "UTC", "2026-08-10T10:10:00Z", "local :00 is UTC :30"),
    ("CRON_TZ=Asia/Kolkata 15,45 0 * * *", "UTC", "2028-02-27T12:00:00Z", "leap year"),
    ("CRON_TZ=Australia/Sydney 0 0 * * *", "UTC", "2026-06-01T00:00:00Z", ""),
    ("CRON_TZ=Australia/Sydney 0 12 1 jan *", "UTC", "2026-06-01T00:00:00Z", "yearly"),
    ("CRON_TZ=Australia/Sydney 0 9 * * 1-5", "Europe/Berlin", "2026-12-24T00:00:00Z", "prefix overrides zone"),
    ("CRON_TZ=UTC 0 0 * * *", "America/New_York", "2026-03-07T00:00:00Z", "prefix overrides zone"),
    ("CRON_TZ=UTC */30 * * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", "UTC has no DST"),
    ("CRON_TZ=Europe/Berlin @daily", "UTC", "2026-02-27T12:00:00Z", "macro with prefix"),
    ("CRON_TZ=Asia/Kolkata @hourly", "UTC", "2026-02-27T12:00:00Z", "macro with prefix"),
    ("CRON_TZ=America/New_York @monthly", "UTC", "2026-12-15T00:00:00Z", "macro with prefix"),
    ("CRON_TZ=Australia/Sydney @weekly", "UTC", "2026-06-01T00:00:00Z", "macro with prefix"),
    ("@daily", "Asia/Kolkata", "2026-01-01T00:00:00Z", "macro in zone"),
    ("@yearly", "America/New_York", "2026-06-01T00:00:00Z", "macro in zone"),
]

# (duration, after, zone) for @every.
EVERY = [
    ("10s", "2026-01-01T00:00:00Z", "UTC"),
    ("10s", "2026-05-05T12:34:56Z", "UTC"),
    ("1m", "2026-01-01T00:00:00Z", "UTC"),
    ("1m", "2026-12-31T23:58:30Z", "America/New_York"),
    ("1m30s", "2026-01-01T00:00:00Z", "UTC"),
    ("1m30s", "2026-07-04T08:07:00Z", "UTC"),
    ("2h", "2026-01-01T00:00:00Z", "UTC"),
    ("2h", "2026-03-08T05:45:00Z", "America/New_York"),
    ("90s", "2026-02-28T23:59:00Z", "UTC"),
    ("1h30m", "2026-01-01T00:00:00Z", "UTC"),
    ("1h30m", "2028-02-28T23:00:00Z", "Europe/Berlin"),
    ("45s", "2025-12-31T23:59:30Z", "UTC"),
    ("7s", "2026-01-01T00:00:00Z", "UTC"),
    ("7s", "2027-06-30T12:00:01Z", "UTC"),
    ("5m", "2026-10-25T00:58:00Z", "Europe/Berlin"),
    ("1s", "2026-01-01T00:00:00Z", "UTC"),
    ("15m", "2026-11-01T05:50:00Z", "America/New_York"),
    ("1h", "2026-04-30T23:59:59Z", "UTC"),
    ("24h", "2026-02-27T12:00:00Z", "Asia/Kolkata"),
    ("13m", "2025-06-15T12:34:56Z", "UTC"),
    ("2h45m10s", "2026-01-01T00:00:00Z", "UTC"),
    ("36h", "2027-12-31T12:00:00Z", "UTC"),
]

# DST transitions: (zone, label, after for daily schedules, after for intervals,
# extra "after" instants inside or at the edge of the change).
TRANSITIONS = [
    ("America/New_York", "NY spring forward 2026-03-08",
     "2026-03-06T12:00:00Z", "2026-03-08T05:45:00Z", ["2026-03-08T06:59:00Z"]),
    ("America/New_York", "NY fall back 2026-11-01",
     "2026-10-30T12:00:00Z", "2026-11-01T04:45:00Z",
     ["2026-11-01T05:30:00Z", "2026-11-01T06:10:00Z"]),
    ("Europe/Berlin", "Berlin spring forward 2026-03-29",
     "2026-03-27T12:00:00Z", "2026-03-28T23:45:00Z", ["2026-03-29T00:59:00Z"]),
    ("Europe/Berlin", "Berlin fall back 2026-10-25",
     "2026-10-23T12:00:00Z", "2026-10-24T23:45:00Z",
     ["2026-10-25T00:30:00Z", "2026-10-25T01:10:00Z"]),
    ("Australia/Sydney", "Sydney fall back 2026-04-05",
     "2026-04-03T00:00:00Z", "2026-04-04T14:45:00Z", []),
    ("Australia/Sydney", "Sydney spring forward 2026-10-04",
     "2026-10-02T00:00:00Z", "2026-10-03T14:45:00Z", []),
]
DST_FIXED = ["30 2 * * *", "0 2 * * *", "30 1 * * *"]
DST_INTERVAL = ["*/30 * * * *", "0 * * * *", "15 * * * *", "@hourly"]

CRON_TZ_RE = re.compile(r"^CRON_TZ=(\S+) (.*)$")
EVERY_RE = re.compile(r"^@every (?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_utc(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def fmt_utc(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_schedule(schedule: str, zone: str) -> tuple[str, ZoneInfo]:
    """Strip an optional CRON_TZ= prefix; return (expression, effective zone)."""
    m = CRON_TZ_RE.match(schedule)
    if m:
        return m.group(2), ZoneInfo(m.group(1))
    return schedule, ZoneInfo(zone)


def croniter_next(expr: str, tz: ZoneInfo, after: datetime) -> list[datetime]:
    it = croniter(expr, after.astimezone(tz))  # default day_or=True
    return [it.get_next(datetime).astimezone(UTC) for _ in range(N_NEXT)]


def wall_to_instant(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """Map a naive local time to UTC: None if it does not exist, the earlier
    instant if it is ambiguous (fold=0 is the earlier one in zoneinfo)."""
    aware = wall.replace(tzinfo=tz, fold=0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        return None  # falls in a spring-forward gap
    return aware.astimezone(UTC)


def contract_next(expr: str, tz: ZoneInfo, after: datetime) -> list[datetime]:
    """SPEC 1.1 rule, computed from naive wall-clock matches (no zone logic in
    croniter): nonexistent -> skipped, repeated -> first instant only."""
    start = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    it = croniter(expr, start)
    out: list[datetime] = []
    last = after
    while len(out) < N_NEXT:
        inst = wall_to_instant(it.get_next(datetime), tz)
        if inst is not None and inst > last:
            out.append(inst)
            last = inst
    return out


def every_next(duration: str, after: datetime) -> list[datetime]:
    m = EVERY_RE.match(f"@every {duration}")
    assert m, duration
    h, mi, s = (int(g or 0) for g in m.groups())
    period = h * 3600 + mi * 60 + s
    epoch = int(after.timestamp())  # afters are whole seconds
    first = (epoch // period + 1) * period
    return [datetime.fromtimestamp(first + i * period, UTC) for i in range(N_NEXT)]


def case(schedule, zone, after, nxt, reference, note=""):
    c = {"schedule": schedule, "zone": zone, "after": after,
         "next": [fmt_utc(d) for d in nxt], "reference": reference}
    if note:
        c["note"] = note
    return c


def main() -> int:
    if version("croniter") != EXPECTED_CRONITER:
        print(f"need croniter {EXPECTED_CRONITER}, have {version('croniter')}", file=sys.stderr)
        return 1

    cases: list[dict] = []
    counts: Counter[str] = Counter()
    rejected: list[str] = []
    deviations: list[str] = []

    def add_croniter(category, schedule, zone, after, note="", dst=False):
        expr, tz = split_schedule(schedule, zone)
        t0 = parse_utc(after)
        try:
            got = croniter_next(expr, tz, t0)
        except Exception as e:  # croniter rejects the expression
            rejected.append(f"{schedule!r}: {type(e).__name__}: {e}")
            return
        want = contract_next(expr, tz, t0)
        assert all(b > a for a, b in zip([t0] + got, got)), schedule
        if got != want:
            local = lambda ds: [d.astimezone(tz).strftime("%m-%d %H:%M%z") for d in ds]
            deviations.append(
                f"{schedule!r} zone={zone} after={after}"
                f"{' [UNEXPECTED, not a DST case]' if not dst else ''}\n"
                f"    croniter: {local(got)}\n    contract: {local(want)}")
            counts["excluded-deviation"] += 1
            return
        cases.append(case(schedule, zone, after, got, "croniter", note))
        counts[category] += 1

    for i, (category, expr) in enumerate(ORDINARY):
        for after in (AFTERS[(2 * i) % len(AFTERS)], AFTERS[(2 * i + 7) % len(AFTERS)]):
            add_croniter(category, expr, "UTC", after, NOTES.get(expr, ""))
    for i, macro in enumerate(MACROS):
        for after in (AFTERS[(3 * i) % len(AFTERS)], AFTERS[(3 * i + 5) % len(AFTERS)]):
            add_croniter("macro", macro, "UTC", after)
    for schedule, zone, after, note in ZONED:
        add_croniter("cron_tz" if schedule.startswith("CRON_TZ=") else "zone",
                     schedule, zone, after, note)
    for zone, label, after_fixed, after_interval, extra in TRANSITIONS:
        for expr in DST_FIXED + DST_INTERVAL:
            afters = [after_fixed if expr in DST_FIXED else after_interval] + extra
            for after in afters:
                add_croniter("dst", expr, zone, after, f"DST: {label}", dst=True)
            # the same via a CRON_TZ= prefix, with a different default zone
            add_croniter("dst", f"CRON_TZ={zone} {expr}", "UTC", afters[0],
                         f"DST: {label}", dst=True)
    for duration, after, zone in EVERY:
        schedule = f"@every {duration}"
        cases.append(case(schedule, zone, after, every_next(duration, parse_utc(after)),
                          "epoch-arithmetic", "zone-independent" if zone != "UTC" else ""))
        counts["every"] += 1

    doc = {"generator": "scripts/gen_cron_fixture.py",
           "reference": f"croniter {EXPECTED_CRONITER}", "cases": cases}
    text = json.dumps(doc, sort_keys=True, indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(REPO)} is stale: regenerate it with scripts/gen_cron_fixture.py",
                  file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(REPO)}: {len(cases)} cases, matches croniter {EXPECTED_CRONITER}")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)

    print(f"wrote {OUT.relative_to(REPO)}: {len(cases)} cases")
    for category, n in sorted(counts.items()):
        print(f"  {category:20} {n}")
    if rejected:
        print("rejected by croniter (left out):")
        for r in rejected:
            print("  " + r)
    if deviations:
        print(f"croniter disagrees with the SPEC 1.1 DST rule ({len(deviations)}, left out):")
        for d in deviations:
            print("  " + d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
