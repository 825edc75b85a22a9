#!/usr/bin/env python3
"""Independent reference implementation ("oracle") of the Spiral contract (SPEC §1-§5.1, §7, §8).

Usage:
    python3 oracle.py --config FILE --summary OUT.json [--watermark RFC3339]
                      [--rejected REJ.jsonl] INPUT...

Stdlib only.  Written for clarity, not speed: every accepted touch is kept per account and the
journeys are recomputed from scratch at the end, at the final watermark.  What depends on the
watermark at the moment an event is read (dedup expiry, late, pending-touch expiry) is tracked
with a running watermark while reading.

Interpretation choices where the SPEC is ambiguous are listed in INTERPRETATIONS below.
"""

import argparse
import heapq
import json
import re
import sys
import tomllib

INTERPRETATIONS = """
I1  A message is one line of the file, without its line ending ("\\n" or "\\r\\n"; the last
    line may have none).  Only zero-length lines are "empty lines"; a line of spaces or tabs
    is a message (and malformed).
I2  The size check is len(message bytes) > max_event_bytes.
I3  `-0` / `-0.0` are not negative.  The "negative or non-finite" rule applies to the known
    number fields (occurred_at, cost, revenue) only; unknown fields are ignored whatever
    number they hold (e.g. `"x": 1e400` or `"x": -5` is fine).
I4  JSON strings holding lone UTF-16 surrogates (\\ud800) are not valid UTF-8 text: malformed.
I5  A `null` value inside `attributes` is a wrong type (malformed): only top-level fields are
    "fields" whose null counts as absent.
I6  `channel: ""` is a channel other than the two values: invalid_channel (touches only).
    For identify events the channel value is not checked (only its type).
I7  An integer occurred_at must name an instant in years 0000..9999 (else invalid_timestamp);
    RFC 3339 seconds must be 00..59 (a leap second :60 is invalid_timestamp); offset hours
    00..23 and minutes 00..59.
I8  Duplicates do not move the watermark ("no other effect").  An id accepted with event time
    t is remembered while the watermark at the moment a later copy is read (before that copy)
    is <= t + dedup_window; before any watermark exists every id is remembered.  A duplicate
    does not refresh the remembered time.  An id whose memory expired is accepted again.
I9  Identify events are accepted events: they move the watermark. Only touches can be late.
I10 Processing order of one accepted, non-duplicate event: late check against the watermark
    before it; its links (conflicts counted per link: up to three per event); resolve its own
    account or make it pending; retry pending touches that new links may resolve; then move
    the watermark and give up on pending touches whose event time + pending_ttl < watermark.
I11 Resolution through the anonymous id: its direct account link first, else through its
    contact link.  A pending touch is resolved at the first moment a link resolves it.
I12 `unresolved` counts touches given up on (the watermark passed event time + pending_ttl).
    A touch that is already past that point when it is read is given up at once (after its
    own links were applied).  At end of input the watermark becomes the newest accepted event
    time and pending touches are checked against it once more, also when allowed_lateness is
    0.  Touches still pending after that are not counted as unresolved.
I13 Every touch of an account, with or without a stage in a funnel, belongs to that funnel's
    journeys; a journey made only of stage-less touches is counted in `journeys`.
I14 A lost event has no stage even if its `stage` field names a funnel stage.
I15 Ties in (occurred_at, event_id bytes) (possible only after a dedup expiry) keep arrival
    order.
I16 With --watermark, all input is still read (journeys are built from all touches) and the
    pending sweep at end of input still uses the newest event time (§4); only the outcomes
    (§3) use the given watermark, and the summary `watermark` is the given one.
I18 The links of one event are applied together; pending touches are then resolved with the
    §2 rule (own account_id; contact's account; anonymous id's direct account; anonymous
    id's contact's account).  This keeps the summary independent of arrival order (§4).
I17 `conversion_window` of a funnel is required (SPEC gives no default); `lost_touchpoints`
    defaults to []; durations are integer+unit parts, optionally separated by spaces.
"""

MS = 1
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
WEEK = 7 * DAY

ID_FIELDS = ("account_id", "contact_id", "anonymous_id")
STRING_FIELDS = ("touchpoint", "channel", "stage", "campaign", "source")
REASONS = ("oversized", "malformed", "missing_field", "invalid_timestamp",
           "invalid_channel", "no_identity")


# ----------------------------------------------------------------------------- durations / config

DUR_RE = re.compile(r"([0-9]+)(ms|w|d|h|m|s)")
UNITS = {"ms": MS, "s": SEC, "m": MIN, "h": HOUR, "d": DAY, "w": WEEK}


def parse_duration(text, where):
    if not isinstance(text, str) or not text.strip():
        raise SystemExit(f"config: {where}: not a duration: {text!r}")
    pos = 0
    total = 0
    s = text.strip()
    found = False
    while pos < len(s):
        while pos < len(s) and s[pos] == " ":
            pos += 1
        if pos >= len(s):
            break
        m = DUR_RE.match(s, pos)
        if not m:
            raise SystemExit(f"config: {where}: not a duration: {text!r}")
        total += int(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
        found = True
    if not found:
        raise SystemExit(f"config: {where}: not a duration: {text!r}")
    return total


class Funnel:
    def __init__(self, d, i):
        where = f"funnel[{i}]"
        known = {"name", "stages", "conversion_window", "journey_timeout", "lost_touchpoints",
                 "conversion_windows", "rules"}
        for k in d:
            if k not in known:
                raise SystemExit(f"config: {where}: unknown key {k}")
        self.name = d["name"]
        self.stages = list(d["stages"])
        if not (2 <= len(self.stages) <= 16) or "lost" in self.stages:
            raise SystemExit(f"config: {where}: bad stages")
        self.stage_index = {s: j for j, s in enumerate(self.stages)}
        if "conversion_window" not in d:
            raise SystemExit(f"config: {where}: missing conversion_window")
        default_window = parse_duration(d["conversion_window"], where + ".conversion_window")
        self.journey_timeout = parse_duration(d.get("journey_timeout", "365d"), where + ".journey_timeout")
        self.lost = set(d.get("lost_touchpoints", []))
        per = d.get("conversion_windows", {})
        for k in per:
            if k not in self.stage_index:
                raise SystemExit(f"config: {where}.conversion_windows: unknown stage {k}")
        self.windows = [parse_duration(per[s], f"{where}.conversion_windows.{s}") if s in per
                        else default_window for s in self.stages]
        self.rules = {}
        for tp, st in d.get("rules", {}).items():
            if st not in self.stage_index:
                raise SystemExit(f"config: {where}.rules.{tp}: unknown stage {st}")
            self.rules[tp] = self.stage_index[st]

    def stage_of(self, ev):
        """Returns (stage_index or None, lost: bool)."""
        if ev["touchpoint"] in self.lost or ev.get("stage") == "lost":
            return None, True
        st = ev.get("stage")
        if st is not None and st in self.stage_index:
            return self.stage_index[st], False
        if ev["touchpoint"] in self.rules:
            return self.rules[ev["touchpoint"]], False
        return None, False


class Config:
    def __init__(self, path):
        with open(path, "rb") as f:
            d = tomllib.load(f)
        p = d.get("pipeline", {})
        for k in p:
            if k not in ("allowed_lateness", "dedup_window", "max_event_bytes"):
                raise SystemExit(f"config: pipeline: unknown key {k}")
        self.allowed_lateness = parse_duration(p.get("allowed_lateness", "1d"), "pipeline.allowed_lateness")
        self.dedup_window = parse_duration(p.get("dedup_window", "30d"), "pipeline.dedup_window")
        self.max_event_bytes = int(p.get("max_event_bytes", 65536))
        ident = d.get("identity", {})
        for k in ident:
            if k != "pending_ttl":
                raise SystemExit(f"config: identity: unknown key {k}")
        self.pending_ttl = parse_duration(ident.get("pending_ttl", "30d"), "identity.pending_ttl")
        self.touchpoints = {}
        for k, v in d.get("touchpoints", {}).items():
            if v not in ("online", "offline"):
                raise SystemExit(f"config: touchpoints.{k}: bad channel {v!r}")
            self.touchpoints[k] = v
        self.funnels = [Funnel(f, i) for i, f in enumerate(d.get("funnel", []))]
        # Other sections (kafka, http, export, state) are the project's to design: ignored here.


# ----------------------------------------------------------------------------- time

def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - 1 if m <= 2 else y
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    return [31, 29 if is_leap(y) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})")

MIN_MS = days_from_civil(0, 1, 1) * DAY
MAX_MS = days_from_civil(10000, 1, 1) * DAY - 1


def parse_rfc3339(s):
    """Epoch milliseconds (fraction truncated), or None if not RFC 3339 with an offset."""
    m = RFC3339_RE.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12) or not (1 <= d <= days_in_month(y, mo)):
        return None
    if h > 23 or mi > 59 or se > 59:
        return None
    frac = m.group(7)
    ms = int((frac[1:] + "00")[:3]) if frac else 0
    off = m.group(8)
    off_ms = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        off_ms = (oh * HOUR + om * MIN) * (1 if off[0] == "+" else -1)
    return days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MIN + se * SEC + ms - off_ms


def format_ms(t):
    days, rem = divmod(t, DAY)
    y, mo, d = civil_from_days(days)
    h, rem = divmod(rem, HOUR)
    mi, rem = divmod(rem, MIN)
    se, ms = divmod(rem, SEC)
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{se:02d}.{ms:03d}Z"


# ----------------------------------------------------------------------------- strict JSON decoding

class Num:
    """A JSON number, keeping its raw text."""
    __slots__ = ("text", "value", "is_int")

    def __init__(self, text, value, is_int):
        self.text = text
        self.value = value
        self.is_int = is_int

    def finite(self):
        if self.is_int:
            try:
                float(self.value)  # an integer too large for f64 is not a finite number
            except OverflowError:
                return False
            return True
        return self.value == self.value and self.value not in (float("inf"), float("-inf"))

    def negative(self):
        return self.value < 0


class Bad(Exception):
    pass


def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Bad("repeated key")
        d[k] = v
    return d


def _const(name):
    raise Bad("non-standard constant " + name)


def _check_tree(v):
    """Lone surrogates anywhere are malformed."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise Bad("lone surrogate")
        elif isinstance(x, dict):
            for k, val in x.items():
                stack.append(k)
                stack.append(val)
        elif isinstance(x, list):
            stack.extend(x)


def strict_json(text):
    obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_const,
                     parse_int=lambda s: Num(s, int(s), True),
                     parse_float=lambda s: Num(s, float(s), False))
    _check_tree(obj)
    return obj


def blen(s):
    return len(s.encode("utf-8"))


def decode(raw, cfg):
    """Returns (reason, None) or (None, event dict)."""
    if len(raw) > cfg.max_event_bytes:
        return "oversized", None
    try:
        text = raw.decode("utf-8")
        obj = strict_json(text)
    except (UnicodeDecodeError, ValueError, Bad, RecursionError):
        return "malformed", None
    if not isinstance(obj, dict):
        return "malformed", None

    def get(k):
        v = obj.get(k)
        return v  # None if absent or null

    # --- malformed: type and range checks on every known field
    eid = get("event_id")
    if eid is not None and (not isinstance(eid, str) or not (1 <= blen(eid) <= 256)):
        return "malformed", None
    typ = get("type")
    if typ is not None and (not isinstance(typ, str) or typ not in ("touch", "identify")):
        return "malformed", None
    typ = typ or "touch"
    occ = get("occurred_at")
    if occ is not None:
        if isinstance(occ, Num):
            if occ.negative() or not occ.finite():
                return "malformed", None
        elif not isinstance(occ, str):
            return "malformed", None
    ids = {}
    for k in ID_FIELDS:
        v = get(k)
        if v is None:
            continue
        if not isinstance(v, str) or blen(v) > 256:
            return "malformed", None
        if v != "":
            ids[k] = v
    for k in STRING_FIELDS:
        v = get(k)
        if v is not None and not isinstance(v, str):
            return "malformed", None
    for k in ("cost", "revenue"):
        v = get(k)
        if v is not None and (not isinstance(v, Num) or v.negative() or not v.finite()):
            return "malformed", None
    attrs = get("attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            return "malformed", None
        for v in attrs.values():
            if not isinstance(v, str):
                return "malformed", None

    # --- missing_field
    tp = get("touchpoint")
    if eid is None or occ is None:
        return "missing_field", None
    if typ == "touch" and (tp is None or tp == ""):
        return "missing_field", None

    # --- invalid_timestamp
    if isinstance(occ, str):
        t = parse_rfc3339(occ)
        if t is None:
            return "invalid_timestamp", None
    else:
        if not occ.is_int:
            return "invalid_timestamp", None
        t = occ.value
        if not (MIN_MS <= t <= MAX_MS):
            return "invalid_timestamp", None

    # --- invalid_channel (touches only)
    ch = get("channel")
    if typ == "touch":
        if ch is not None:
            if ch not in ("online", "offline"):
                return "invalid_channel", None
        else:
            ch = cfg.touchpoints.get(tp)
            if ch is None:
                return "invalid_channel", None

    # --- no_identity
    if typ == "touch" and len(ids) == 0:
        return "no_identity", None
    if typ == "identify" and len(ids) < 2:
        return "no_identity", None

    ev = {
        "event_id": eid, "type": typ, "t": t,
        "account_id": ids.get("account_id"), "contact_id": ids.get("contact_id"),
        "anonymous_id": ids.get("anonymous_id"),
        "touchpoint": tp, "channel": ch, "stage": get("stage"),
    }
    return None, ev


# ----------------------------------------------------------------------------- engine

class Engine:
    def __init__(self, cfg):
        self.cfg = cfg
        self.counts = {"received": 0, "accepted": 0, "duplicates": 0, "identify": 0,
                       "unresolved": 0, "identity_conflicts": 0, "late": 0}
        self.rejected = {r: 0 for r in REASONS}
        self.seen_ids = {}        # event_id -> event time of the accepted copy
        self.newest = None        # newest accepted event time
        self.anon_contact = {}    # first link of each kind
        self.anon_account = {}
        self.contact_account = {}
        self.contact_anons = {}   # reverse of anon_contact
        self.pending = {}         # seq -> touch
        self.pending_heap = []    # (event time + pending_ttl, seq); stale entries skipped
        self.pending_by_contact = {}
        self.pending_by_anon = {}
        self.account_touches = {}  # account -> list of (t, event_id bytes, seq, touch)
        self.seq = 0

    def watermark(self):
        if self.newest is None:
            return None
        return self.newest - self.cfg.allowed_lateness

    def read(self, raw):
        self.counts["received"] += 1
        reason, ev = decode(raw, self.cfg)
        if reason is not None:
            self.rejected[reason] += 1
            return reason
        w = self.watermark()
        eid = ev["event_id"]
        if eid in self.seen_ids:
            if w is None or w <= self.seen_ids[eid] + self.cfg.dedup_window:
                self.counts["duplicates"] += 1
                return "duplicate"
        self.seen_ids[eid] = ev["t"]
        self.counts["accepted"] += 1
        self.seq += 1
        ev["seq"] = self.seq
        new_links = self.link(ev)
        if ev["type"] == "identify":
            self.counts["identify"] += 1
        else:
            if w is not None and ev["t"] < w:
                self.counts["late"] += 1
            acct = self.resolve(ev)
            if acct is not None:
                self.join(acct, ev)
            else:
                self.add_pending(ev)
        if new_links:
            self.retry_pending(new_links)
        if self.newest is None or ev["t"] > self.newest:
            self.newest = ev["t"]
        self.expire_pending(self.watermark())
        return None

    # --- identity
    def link(self, ev):
        """Applies the event's links; returns the set of ids whose links changed."""
        an, co, ac = ev["anonymous_id"], ev["contact_id"], ev["account_id"]
        changed = []

        def one(table, key, target, tag):
            if key is None or target is None:
                return
            cur = table.get(key)
            if cur is None:
                table[key] = target
                changed.append((tag, key))
                if table is self.anon_contact:
                    self.contact_anons.setdefault(target, set()).add(key)
            elif cur != target:
                self.counts["identity_conflicts"] += 1

        one(self.anon_contact, an, co, "anon")
        one(self.anon_account, an, ac, "anon")
        one(self.contact_account, co, ac, "contact")
        return changed

    def resolve(self, ev):
        if ev["account_id"] is not None:
            return ev["account_id"]
        co = ev["contact_id"]
        if co is not None and co in self.contact_account:
            return self.contact_account[co]
        an = ev["anonymous_id"]
        if an is not None:
            direct = self.anon_account.get(an)
            c2 = self.anon_contact.get(an)
            via = self.contact_account.get(c2) if c2 is not None else None
            return direct if direct is not None else via
        return None

    def join(self, acct, ev):
        self.account_touches.setdefault(acct, []).append(ev)

    def add_pending(self, ev):
        self.pending[ev["seq"]] = ev
        heapq.heappush(self.pending_heap, (ev["t"] + self.cfg.pending_ttl, ev["seq"]))
        if ev["contact_id"] is not None:
            self.pending_by_contact.setdefault(ev["contact_id"], set()).add(ev["seq"])
        if ev["anonymous_id"] is not None:
            self.pending_by_anon.setdefault(ev["anonymous_id"], set()).add(ev["seq"])

    def drop_pending(self, seq):
        ev = self.pending.pop(seq)
        if ev["contact_id"] is not None:
            self.pending_by_contact[ev["contact_id"]].discard(seq)
        if ev["anonymous_id"] is not None:
            self.pending_by_anon[ev["anonymous_id"]].discard(seq)
        return ev

    def retry_pending(self, changed):
        cands = set()
        for tag, key in changed:
            if tag == "anon":
                cands |= self.pending_by_anon.get(key, set())
            else:
                cands |= self.pending_by_contact.get(key, set())
                # anonymous ids linked to this contact
                for an in self.contact_anons.get(key, ()):
                    cands |= self.pending_by_anon.get(an, set())
        for seq in sorted(cands):
            if seq not in self.pending:
                continue
            acct = self.resolve(self.pending[seq])
            if acct is not None:
                ev = self.drop_pending(seq)
                self.join(acct, ev)

    def expire_pending(self, w):
        if w is None:
            return
        h = self.pending_heap
        while h and w > h[0][0]:
            _, seq = heapq.heappop(h)
            if seq in self.pending:
                self.drop_pending(seq)
                self.counts["unresolved"] += 1

    # --- end of input
    def summary(self, forced_watermark=None):
        # At end of input the watermark is the newest accepted event time (§4); pending touches
        # are given up on against it.  --watermark only decides the outcomes (§8).
        if self.newest is not None:
            self.expire_pending(self.newest)
        w = forced_watermark if forced_watermark is not None else self.newest
        funnels = [self.funnel_summary(f, w) for f in self.cfg.funnels]
        ev = dict(self.counts)
        ev["rejected"] = dict(self.rejected)
        return {"watermark": None if w is None else format_ms(w), "events": ev, "funnels": funnels}

    def funnel_summary(self, f, w):
        n = len(f.stages)
        stages = [{"name": s, "entered": 0, "converted": 0, "dropped": 0, "open": 0,
                   "conversion_ms_sum": 0,
                   "entered_by_channel": {"online": 0, "offline": 0},
                   "turns_before_entry": {"0": 0, "1": 0, "2": 0, "3": 0, "4+": 0}}
                  for s in f.stages]
        out = {"name": f.name, "journeys": 0, "journeys_won": 0, "journeys_lost": 0,
               "stages": stages}
        for acct, touches in self.account_touches.items():
            ordered = sorted(touches, key=lambda e: (e["t"], e["event_id"].encode("utf-8"), e["seq"]))
            journeys = []  # each: {"touches": [...], "closed": None|"won"|"lost"}
            for ev in ordered:
                st, lost = f.stage_of(ev)
                cur = journeys[-1] if journeys else None
                if (cur is None or cur["closed"] is not None
                        or ev["t"] - cur["touches"][-1][0]["t"] > f.journey_timeout):
                    cur = {"touches": [], "closed": None}
                    journeys.append(cur)
                cur["touches"].append((ev, st))
                if lost:
                    cur["closed"] = "lost"
                elif st == n - 1:
                    cur["closed"] = "won"
            for ji, j in enumerate(journeys):
                later_exists = ji < len(journeys) - 1
                out["journeys"] += 1
                if j["closed"] == "lost":
                    out["journeys_lost"] += 1
                entered = [None] * n      # time
                entry_pos = [None] * n    # index of entering touch in the journey
                for pos, (ev, st) in enumerate(j["touches"]):
                    if st is None:
                        continue
                    for s in range(st + 1):
                        if entered[s] is None:
                            entered[s] = ev["t"]
                            entry_pos[s] = pos
                if entered[n - 1] is not None:
                    out["journeys_won"] += 1
                last_t = j["touches"][-1][0]["t"]
                for s in range(n):
                    if entered[s] is None:
                        continue
                    rec = stages[s]
                    rec["entered"] += 1
                    entering = j["touches"][entry_pos[s]][0]
                    rec["entered_by_channel"][entering["channel"]] += 1
                    turns = 0
                    for k in range(1, entry_pos[s] + 1):
                        if j["touches"][k][0]["channel"] != j["touches"][k - 1][0]["channel"]:
                            turns += 1
                    rec["turns_before_entry"][str(turns) if turns < 4 else "4+"] += 1
                    if s == n - 1:
                        continue
                    win = f.windows[s]
                    nxt = entered[s + 1]
                    if nxt is not None and nxt - entered[s] <= win:
                        rec["converted"] += 1
                        rec["conversion_ms_sum"] += nxt - entered[s]
                    elif (nxt is not None or j["closed"] == "lost" or later_exists
                          or (w is not None and w - entered[s] > win)
                          or (w is not None and w - last_t > f.journey_timeout)):
                        rec["dropped"] += 1
                    else:
                        rec["open"] += 1
        return out


# ----------------------------------------------------------------------------- replay

def iter_messages(paths):
    for p in paths:
        f = sys.stdin.buffer if p == "-" else open(p, "rb")
        try:
            for lineno, line in enumerate(f, 1):
                if line.endswith(b"\n"):
                    line = line[:-1]
                    if line.endswith(b"\r"):  # CRLF line ending
                        line = line[:-1]
                if len(line) == 0:
                    continue
                yield p, lineno, line
        finally:
            if f is not sys.stdin.buffer:
                f.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Spiral oracle replay")
    ap.add_argument("--config", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--watermark")
    ap.add_argument("--rejected", help="write one JSON line per message: index, outcome")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args(argv)
    cfg = Config(a.config)
    forced = None
    if a.watermark is not None:
        forced = parse_rfc3339(a.watermark)
        if forced is None:
            raise SystemExit(f"--watermark: not RFC 3339: {a.watermark}")
    eng = Engine(cfg)
    rej = open(a.rejected, "w") if a.rejected else None
    for p, lineno, raw in iter_messages(a.inputs):
        outcome = eng.read(raw)
        if rej is not None and outcome is not None:
            rej.write(json.dumps({"file": p, "line": lineno, "outcome": outcome}) + "\n")
    if rej is not None:
        rej.close()
    s = eng.summary(forced)
    with open(a.summary, "w") as f:
        json.dump(s, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
