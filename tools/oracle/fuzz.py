#!/usr/bin/env python3
"""Random small streams and configs through `spiral replay` and the oracle; stops at the first
difference. usage: fuzz.py SPIRAL_BINARY N_ITER [SEED] (scratch files under $TMPDIR)."""
import json, os, random, shutil, subprocess, sys, tempfile
HERE = os.path.dirname(os.path.abspath(__file__))
B = sys.argv[1]
D = tempfile.mkdtemp(prefix="spiral-fuzz-")
TP = ["web_visit", "ad_click", "trade_show_scan", "sales_call", "demo_request", "sales_meeting",
      "contract_signed", "closed_lost", "product_signup", "upsell_proposal", "expansion_order",
      "expansion_declined", "mystery"]
STAGES = ["awareness", "engaged", "mql", "sql", "opportunity", "won", "customer", "adoption", "lost", "bogus"]
def cfg(r):
    dur = lambda opts: r.choice(opts)
    return f'''[pipeline]
allowed_lateness = "{dur(['0s','1h','6h','1d'])}"
dedup_window = "{dur(['0s','30m','2h','1d','30d'])}"
[identity]
pending_ttl = "{dur(['0s','1h','3h','1d','30d'])}"
[touchpoints]
web_visit = "online"
ad_click = "online"
trade_show_scan = "offline"
sales_call = "offline"
demo_request = "online"
sales_meeting = "offline"
contract_signed = "offline"
closed_lost = "offline"
product_signup = "online"
upsell_proposal = "offline"
expansion_order = "online"
expansion_declined = "offline"
[[funnel]]
name = "nb"
stages = ["awareness", "engaged", "mql", "sql", "opportunity", "won"]
conversion_window = "{dur(['1h','6h','12h','1d'])}"
journey_timeout = "{dur(['2h','12h','1d','2d'])}"
lost_touchpoints = ["closed_lost"]
[funnel.conversion_windows]
opportunity = "{dur(['30m','2d'])}"
[funnel.rules]
web_visit = "awareness"
ad_click = "awareness"
trade_show_scan = "engaged"
demo_request = "mql"
sales_call = "sql"
sales_meeting = "opportunity"
contract_signed = "won"
[[funnel]]
name = "ex"
stages = ["customer", "adoption", "expanded"]
conversion_window = "{dur(['2h','1d'])}"
journey_timeout = "{dur(['6h','1d'])}"
lost_touchpoints = ["expansion_declined"]
[funnel.rules]
contract_signed = "customer"
product_signup = "adoption"
upsell_proposal = "adoption"
expansion_order = "expanded"
'''
BASE = 1767225600000  # 2026-01-01
def fmt(r, t):
    if r.random() < 0.3: return t
    import datetime
    off = r.choice([0, 0, 60, -300, 480])
    dt = datetime.datetime.fromtimestamp(t / 1000 + off * 60, datetime.timezone.utc)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    ms = t % 1000
    if ms or r.random() < 0.3: s += ".%03d" % ms + (str(r.randint(0, 9)) if r.random() < 0.2 else "")
    if off == 0: return s + r.choice(["Z", "z", "+00:00"])
    return s + ("+" if off > 0 else "-") + "%02d:%02d" % divmod(abs(off), 60)
def stream(r):
    n = r.randint(1, 40)
    accts = ["A%d" % i for i in range(r.randint(1, 3))]
    cons = ["c%d" % i for i in range(r.randint(1, 4))]
    anons = ["a%d" % i for i in range(r.randint(1, 5))]
    lines, ids = [], []
    t = BASE
    for i in range(n):
        t += r.choice([0, 1, 1000, 60000, 1800000, 3600000, 3 * 3600000, 12 * 3600000, 26 * 3600000])
        tt = t - r.choice([0] * 6 + [3600000, 7 * 3600000, 2 * 86400000])  # some out of order
        tt += r.choice([0, 0, 0, 1, 999])
        if ids and r.random() < 0.12:
            eid = r.choice(ids)
        else:
            eid = r.choice(["e%d" % i, "E%d" % i, "é%d" % i, "e%02d" % i])
            ids.append(eid)
        ev = {"event_id": eid, "occurred_at": fmt(r, tt)}
        if r.random() < 0.2:
            ev["type"] = "identify"
            k = r.sample(["account_id", "contact_id", "anonymous_id"], r.choice([2, 2, 3]))
        else:
            if r.random() < 0.2: ev["type"] = "touch"
            ev["touchpoint"] = r.choice(TP)
            if ev["touchpoint"] == "mystery" or r.random() < 0.15: ev["channel"] = r.choice(["online", "offline"])
            if r.random() < 0.15: ev["stage"] = r.choice(STAGES)
            k = r.sample(["account_id", "contact_id", "anonymous_id"], r.choice([1, 1, 1, 2, 3]))
        for f in k:
            ev[f] = r.choice({"account_id": accts, "contact_id": cons, "anonymous_id": anons}[f])
        if r.random() < 0.05: ev["account_id"] = ""
        lines.append(json.dumps(ev, ensure_ascii=False))
    return lines
def main():
    iters = int(sys.argv[2]); seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for it in range(iters):
        r = random.Random(seed * 1000003 + it)
        open(f"{D}/c.toml", "w").write(cfg(r))
        open(f"{D}/in.jsonl", "w").write("\n".join(stream(r)) + "\n")
        wm = []
        if r.random() < 0.3: wm = ["--watermark", fmt(r, BASE + r.randint(0, 5 * 86400000)) if True else ""]
        if wm and isinstance(wm[1], int): wm[1] = "2026-01-02T00:00:00Z"
        subprocess.run([B, "replay", "-q", "--config", f"{D}/c.toml", "--summary", f"{D}/r.json", f"{D}/in.jsonl"] + wm, check=True)
        subprocess.run(["python3", os.path.join(HERE, "oracle.py"), "--config", f"{D}/c.toml", "--summary", f"{D}/p.json", f"{D}/in.jsonl"] + wm, check=True)
        if json.load(open(f"{D}/r.json")) != json.load(open(f"{D}/p.json")):
            print("DIFF at iter", it, "seed", seed, "watermark", wm)
            subprocess.run(["python3", os.path.join(HERE, "diffsum.py"), f"{D}/r.json", f"{D}/p.json"])
            return 1
    print("no diff in", iters)
if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(D, ignore_errors=True)
