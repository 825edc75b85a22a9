#!/usr/bin/env python3
"""Prints the counter series of funnel_alerts_test.yml in promtool's expanding notation.

The weekly shapes are easier to read as rates per hour than as promtool segments; this turns
them into a cumulative counter sampled every 15 minutes (the tests' `interval`), written as
`a+bxN` runs. Hour 0 is a Monday 00:00. Rates are chosen so that every step is exact in binary
floating point. Run it and paste a line into the test file when you change a shape.

    python3 deploy/prometheus/tests/gen_funnel_series.py
"""

WEEK = 168


def series(hourly):
    """Cumulative counter from hourly rates, 4 samples an hour, as `a+bxN` runs (first 0)."""
    values = [0]
    for rate in hourly:
        for _ in range(4):
            values.append(values[-1] + rate / 4)
    runs, i = [], 0
    while i < len(values):
        j = i
        step = values[i + 1] - values[i] if i + 1 < len(values) else 0
        while j + 1 < len(values) and values[j + 1] - values[j] == step:
            j += 1
        runs.append(f"{values[i]:.12g}+{step:.12g}x{j - i}" if j > i else f"{values[i]:.12g}")
        i = j + 1
    return " ".join(runs)


def weekly(hours, f):
    return [f(h // 24 % 7, h % 24, h) for h in range(hours)]


weekday = lambda d: d < 5  # noqa: E731

# Conversion: weekdays 10 entries/h converting 30 %, weekends 2/h converting 12.5 %.
entered = weekly(3 * WEEK, lambda d, hr, h: 10 if weekday(d) else 2)
conv_seasonal = weekly(3 * WEEK, lambda d, hr, h: 3 if weekday(d) else 0.25)
# The same, but from Wednesday of week 2 (hour 216) weekday conversions fall to 10 %.
conv_drop = weekly(3 * WEEK, lambda d, hr, h: (1 if h >= 216 else 3) if weekday(d) else 0.25)
# Low volume: 0.5 entries/h (12 a day), converting half, then none from hour 216.
entered_low = weekly(3 * WEEK, lambda d, hr, h: 0.5)
conv_low = weekly(3 * WEEK, lambda d, hr, h: 0 if h >= 216 else 0.25)

# Drop-offs: 40/h in weekday office hours (9-17), 1/h otherwise; a stage that also spikes to
# 60/h on Thursday of week 3 from 02:00 to 05:00 (hours 410-413), and a low-volume stage
# (8/h in those hours, none otherwise).
office = lambda d, hr: weekday(d) and 9 <= hr < 17  # noqa: E731
dropped = weekly(3 * WEEK, lambda d, hr, h: 40 if office(d, hr) else 1)
dropped_spike = weekly(
    3 * WEEK, lambda d, hr, h: 60 if 410 <= h < 413 else (40 if office(d, hr) else 1)
)
dropped_low = weekly(3 * WEEK, lambda d, hr, h: 8 if 410 <= h < 413 else 0)

for name, inc in [
    ("entered", entered),
    ("conv_seasonal", conv_seasonal),
    ("conv_drop", conv_drop),
    ("entered_low", entered_low),
    ("conv_low", conv_low),
    ("dropped", dropped),
    ("dropped_spike", dropped_spike),
    ("dropped_low", dropped_low),
]:
    print(f"{name}: '{series(inc)}'")
