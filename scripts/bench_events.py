"""How long a search of a big events file takes (``streamyolo events``, the web page's events
search and timeline), against reading the whole file, side by side.

A month of a busy box's events (by default 8 cameras, an event every 5 s each: about 4 million
lines, written as the events sink writes them, each stream's lines up to a minute out of time
order), then, each timed:

- the page's search: the newest 500 of one stream's person events in a day, and the timeline's
  ticks, all of one stream's events in a day (up to 5000), by :func:`find_events`;
- the newest 200 events of the whole file (no span);
- ``streamyolo events --count`` of one stream's day (:func:`read_events`);
- the same answers by reading every line of the file (``json.loads`` each), what a search
  without the bisection costs, and checked equal.

    python scripts/bench_events.py [--days 30] [--streams 8] [--every 5] [--file /tmp/streamyolo-events.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamyolo.sinks.history import EventQuery, count_table, find_events, read_events  # noqa: E402

DAY = 86400.0


def write_events(path: Path, days: float, streams: int, every: float, t0: float) -> int:
    """``days`` of events: each of ``streams`` cameras one every ``every`` seconds on average."""
    rng = random.Random(0)
    names = [f"cam{n}" for n in range(streams)]
    kinds = ("line", "enter", "leave", "linger")
    count = int(days * DAY / every * streams)
    step = every / streams
    with path.open("w", encoding="utf-8") as file:
        for i in range(count):
            kind = rng.choice(kinds)
            cls = rng.choice((0, 0, 2))
            event: dict[str, Any] = {"time": round(t0 + i * step - rng.uniform(0, 60), 3),
                                     "stream": rng.choice(names), "seq": i, "event": kind, "id": i % 997,
                                     "cls": cls, "name": "person" if cls == 0 else "car"}
            if kind == "line":
                event.update(line="gate", direction=rng.choice(("in", "out")))
            else:
                event["zone"] = "drive"
            file.write(json.dumps(event, separators=(",", ":")) + "\n")
    return count


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    answer = work()
    return answer, time.perf_counter() - start


def whole_file(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as file:
        return [json.loads(line) for line in file]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a camera's events")
    parser.add_argument("--file", type=Path, default=Path("/tmp/streamyolo-events.jsonl"))
    args = parser.parse_args()
    t0 = time.time() - args.days * DAY
    lines, seconds = timed(lambda: write_events(args.file, args.days, args.streams, args.every, t0))
    size = args.file.stat().st_size
    print(f"{lines} events, {size / 1e9:.2f} GB, written in {seconds:.0f} s ({args.file})")
    day = t0 + args.days / 2 * DAY
    person_day = EventQuery(day, day + DAY, frozenset({"cam3"}), None, frozenset({"person"}))
    ticks_day = EventQuery(day, day + DAY, frozenset({"cam3"}))
    searches: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("page search: a stream's persons in a day, newest 500", lambda: find_events(args.file, person_day, 500),
         lambda: _newest(_scan(args.file, person_day), 500)),
        ("timeline: a stream's day, up to 5000 events", lambda: find_events(args.file, ticks_day, 5000),
         lambda: _newest(_scan(args.file, ticks_day), 5000)),
        ("the newest 200 events", lambda: find_events(args.file, EventQuery(), 200),
         lambda: _newest(_scan(args.file, EventQuery()), 200)),
        ("streamyolo events --count, a stream's day", lambda: count_table(read_events(args.file, ticks_day)),
         lambda: count_table(_scan(args.file, ticks_day))),
    ]
    print(f"\n{'search':<52} {'searched':>10} {'whole file':>11} {'ratio':>7}")
    for name, search, naive in searches:
        answer, took = timed(search)
        expected, baseline = timed(naive)
        if answer != expected:
            raise SystemExit(f"{name}: the search's answer differs from the whole file's")
        print(f"{name:<52} {took * 1000:>8.1f} ms {baseline:>9.2f} s {baseline / took:>6.0f}x", flush=True)
    print(f"\npython scripts/bench_events.py --days {args.days:g} --streams {args.streams} --every {args.every:g}")


def _scan(path: Path, query: EventQuery) -> list[dict[str, Any]]:
    """What a search without the bisection does: every line parsed, the matching kept."""
    with path.open("rb") as file:
        return [event for event in map(json.loads, file) if query.matches(event)]


def _newest(events: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], bool]:
    order = sorted(range(len(events)), key=lambda n: (events[n]["time"], n), reverse=True)
    return [events[n] for n in order[:limit]], len(order) > limit


if __name__ == "__main__":
    main()
