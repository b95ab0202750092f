"""Run every benchmark scenario and baseline, print the tables and PASS/MISS, and write JSON.

    bench/run                      # the whole recorded set (about an hour on 2 cores)
    bench/run --quick              # small and short, to try a change (about 2 minutes)
    bench/run --only s1,s2         # some scenarios: s1 s2 s3 s4 s5 s6 s7 (baselines run with their scenario)

It starts a private PostgreSQL cluster and a private redis-server on free ports (never the
machine's shared ones), a fresh SQLite file under var/bench/ for the embedded run, and daphne
processes on them. Everything is thrown away at the end; the results go to
bench/results/<date>-<time>-<commit>.json. docs/benchmarks.md explains every figure.
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import loadgen
from bench.infra import (
    GC_PAUSE_LOG_MS,
    LOG_DIR,
    ROOT,
    PrivatePostgres,
    PrivateRedis,
    Server,
    cpu_pressure,
    daphne,
    django_env,
    loadavg,
    run_python,
)

RESULTS = ROOT / "bench" / "results"
TARGETS_TEXT = {
    "s1": "p50 <= 10 ms, p99 <= 50 ms, max <= 250 ms, 0 lost/dup/reordered, p99 <= 5x B1",
    "s2": ">= 500 msg/s with p99 <= 100 ms; knee (held 60 s): 1 process >= 0.7x B1 PubSub, 2 processes >= 1.2x "
    "1 process, embedded >= 0.5x B1 in-memory",
    "s3": "request->HUD p99 <= 200 ms, every request answered exactly once",
    "s4": ">= 5000 idle sockets, <= 200 KiB each, <= 15% of a core idle, <= 3x B0 per socket",
    "s5": "p95 <= 50 ms per page, flat query count",
    "s6": "overload at 3x the knee for 15 s: p99 < 100 ms again within 10 s, 0 acknowledged messages lost or doubled",
    "s7": "reconnect storm: a process with 2000 sockets killed, all back on the other and caught up within 30 s, "
    "nothing lost",
}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.pg: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.results: dict = {}
        self.servers: list[Server] = []
        self.databases = 0
        self.generator = loadgen.PROFILES[args.generator]

    # --- Infrastructure -------------------------------------------------------------------

    def start_backends(self) -> None:
        log("starting a private PostgreSQL cluster and redis-server")
        self.pg = PrivatePostgres().launch()
        self.redis = PrivateRedis().start()
        self.template = "bench_template"
        self.pg.create_database(self.template)
        run_python(
            "django",
            "migrate",
            "--noinput",
            "-v",
            "0",
            env=django_env(database_url=self.pg.url(self.template)),
            timeout=600,
        )

    def new_database(self) -> str:
        self.databases += 1
        return self.pg.create_database(f"bench_{self.databases}", template=self.template)

    def new_sqlite(self) -> str:
        path = LOG_DIR / "embedded.sqlite3"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        run_python("django", "migrate", "--noinput", "-v", "0", env=django_env(sqlite_path=str(path)), timeout=600)
        return str(path)

    def seed(self, env: dict, **spec) -> dict:
        env = dict(env)
        env.pop("REDIS_URL", None)  # the seed's events have no listeners
        return json.loads(run_python("bench.seed", json.dumps(spec), env=env).strip().splitlines()[-1])

    def start(self, servers: list[Server]) -> list[Server]:
        for server in servers:
            server.start()
        self.servers.extend(servers)
        return servers

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        if self.redis:
            self.redis.flush()

    def profile(self, server: Server, name: str, seconds: float):
        """Sample one server with py-spy for `seconds`, in the background; return the process."""
        if not self.args.profile:
            return None
        out = LOG_DIR / "profiles" / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        return subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--idle",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # --- Plans ----------------------------------------------------------------------------

    @staticmethod
    def deskchat_plan(seeded: dict, servers: list[Server]) -> dict:
        n = len(servers)
        return {
            "clients": [
                {"url": servers[i % n].ws_url + "/ws/chat/", "cookie": c["session"], "rooms": c["rooms"]}
                for i, c in enumerate(seeded["clients"])
            ],
            "engineers": [
                {"url": servers[(i + 1) % n].ws_url + "/ws/hud/", "cookie": e["session"], "rooms": e["rooms"]}
                for i, e in enumerate(seeded["engineers"])
            ],
        }

    @staticmethod
    def relay_plan(sessions: int, per_engineer: int, server: Server) -> dict:
        url = server.ws_url + "/ws/relay/?rooms="
        rooms = list(range(1, sessions + 1))
        return {
            "clients": [{"url": url + str(r), "rooms": [r]} for r in rooms],
            "engineers": [
                {"url": url + ",".join(map(str, rooms[i : i + per_engineer])), "rooms": rooms[i : i + per_engineer]}
                for i in range(0, sessions, per_engineer)
            ],
        }

    def baseline_servers(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
        env.update({"REDIS_URL": self.redis.url, "REDIS_PREFIX": "dc_bench", "GC_PAUSE_LOG_MS": GC_PAUSE_LOG_MS})
        return {
            "B1 RedisChannelLayer": lambda: daphne(
                "b1-core",
                {**env, "RELAY_LAYER": "core", "DJANGO_SETTINGS_MODULE": "bench.relay_settings"},
                app="bench.relay_asgi:application",
            ),
            "B1 RedisPubSubChannelLayer": lambda: daphne(
                "b1-pubsub",
                {**env, "RELAY_LAYER": "pubsub", "DJANGO_SETTINGS_MODULE": "bench.relay_settings"},
                app="bench.relay_asgi:application",
            ),
            # What the embedded default's ceiling is measured against: the same layer, no Redis.
            "B1 InMemoryChannelLayer": lambda: daphne(
                "b1-memory",
                {**env, "RELAY_LAYER": "memory", "DJANGO_SETTINGS_MODULE": "bench.relay_settings"},
                app="bench.relay_asgi:application",
            ),
            "B0 websockets": lambda: Server("b0", [sys.executable, "-m", "bench.relay_ws", "{port}"], env),
        }

    def deskchat_env(self, backend: str, **extra) -> dict:
        if self.args.switch_interval:
            # An experiment, not the product's setting: shorten the GIL switch interval in the
            # DeskChat processes (via a sitecustomize on PYTHONPATH) to see how much of the
            # database thread's time is spent waiting to get the GIL back from the event loop.
            folder = LOG_DIR / "switch-interval"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "sitecustomize.py").write_text(
                f"import sys\nsys.setswitchinterval({self.args.switch_interval})\n"
            )
            extra["PYTHONPATH"] = str(folder)
        if backend == "embedded":
            return django_env(sqlite_path=self.new_sqlite(), **extra)
        return django_env(database_url=self.new_database(), redis_url=self.redis.url, **extra)

    # --- Scenario 1 -----------------------------------------------------------------------

    def s1(self) -> None:
        a = self.args
        out = self.results.setdefault("s1", {"sessions": a.sessions, "interval_s": a.interval})
        runs = [
            ("DeskChat embedded, 1 process", "embedded1", "embedded", 1, {}),
            ("DeskChat PG+Redis, 1 process", "pg1", "pg", 1, {}),
            ("DeskChat PG+Redis, 2 processes", "pg2", "pg", 2, {}),
            # The A/B of deskchat/adb.py: every send back in the one database thread.
            ("DeskChat PG+Redis, 1 process, sends in the DB thread", "pg1thread", "pg", 1, {"DB_ASYNC_POOL_MAX": 0}),
        ]
        wanted = set(a.s1_runs.split(","))
        for name, key, backend, count, extra in runs:
            if key not in wanted:
                continue
            env = self.deskchat_env(backend, **extra)
            seeded = self.seed(env, tag=f"s1{backend}{count}", chats=a.sessions, per_engineer=a.per_engineer)
            servers = self.start([daphne(f"s1-{key}-{i}", env) for i in range(count)])
            log(f"s1: {name}: {a.sessions} sessions, every {a.interval}s for {a.duration}s")
            spy = self.profile(servers[0], f"s1-{key}", a.duration) if backend == "pg" else None
            result = asyncio.run(
                loadgen.steady(
                    self.deskchat_plan(seeded, servers),
                    interval=a.interval,
                    duration=a.duration,
                    servers=servers,
                    profile=self.generator,
                )
            )
            if spy:
                spy.wait()
            result["rss_mib"] = [round(s.rss_kib() / 1024, 1) for s in servers]
            out[name] = result
            log(f"    {compact(result)}")
            self.stop_all()
        for name, make in self.baseline_servers().items():
            if a.skip_baselines:
                break
            server = self.start([make()])[0]
            log(f"s1: {name}: {a.sessions} sessions, every {a.interval}s for {a.baseline_duration}s")
            result = asyncio.run(
                loadgen.steady(
                    self.relay_plan(a.sessions, a.per_engineer, server),
                    interval=a.interval,
                    duration=a.baseline_duration,
                    servers=[server],
                    profile=self.generator,
                )
            )
            out[name] = result
            log(f"    {compact(result)}")
            self.stop_all()

    # --- Scenario 2 -----------------------------------------------------------------------

    S2_RUNS = (
        # (name, key for --s2-runs, backend, processes, rooms per engineer socket, extra environment)
        ("DeskChat embedded, 1 process", "embedded1", "embedded", 1, 1, {}),
        ("DeskChat PG+Redis, 1 process", "pg1", "pg", 1, 1, {}),
        ("DeskChat PG+Redis, 2 processes", "pg2", "pg", 2, 1, {}),
        ("DeskChat PG+Redis, 1 process, 3 rooms per engineer", "pg1x3", "pg", 1, 3, {}),
        ("DeskChat PG+Redis, 1 process, sends in the DB thread", "pg1thread", "pg", 1, 1, {"DB_ASYNC_POOL_MAX": 0}),
        # The A/B of GC_FREEZE: every full collection walks what was loaded at start again.
        ("DeskChat PG+Redis, 1 process, collector not frozen", "pg1nofreeze", "pg", 1, 1, {"GC_FREEZE": 0}),
    )

    def s2(self) -> None:
        a = self.args
        out = self.results.setdefault(
            "s2", {"sessions": a.sessions, "step_s": a.step, "hold_s": a.hold, "jitter": loadgen.JITTER}
        )
        rates = [float(r) for r in a.rates.split(",")]
        wanted = set(a.s2_runs.split(","))
        # The per-socket flood limit (5 frames/s) would refuse an engineer socket's sends at these
        # rates; it protects against abuse, not load, so the knee runs with it raised.
        limits = {"CHAT_RATE_BURST": 100000, "CHAT_RATE_PER_SECOND": 100000}
        for name, key, backend, count, per_engineer, extra in self.S2_RUNS:
            if key not in wanted:
                continue
            env = self.deskchat_env(backend, **limits, **extra)
            seeded = self.seed(env, tag=f"s2{key}", chats=a.sessions, per_engineer=per_engineer)
            log(f"s2: {name}: rates {rates}")
            out[name] = self.knee_row(
                start=lambda env=env, key=key, count=count: self.start(
                    [daphne(f"s2-{key}-{i}", env) for i in range(count)]
                ),
                plan=lambda servers, seeded=seeded: self.deskchat_plan(seeded, servers),
                rates=rates,
                profile_as=f"s2-{key}" if key == "pg1" else "",
            )
        for name, make in self.baseline_servers().items():
            if a.skip_baselines:
                break
            if name == "B1 RedisChannelLayer" and a.skip_core_knee:
                continue
            log(f"s2: {name}")
            out[name] = self.knee_row(
                start=lambda make=make: self.start([make()]),
                plan=lambda servers: self.relay_plan(a.sessions, 1, servers[0]),
                rates=[float(r) for r in a.baseline_rates.split(",")],
            )

    def knee_row(self, *, start, plan, rates: list[float], profile_as: str = "") -> dict:
        """Find one server's knee: steps up to the first that fails, then a hold on fresh servers.

        Each step lasts --step seconds on the same sockets. After the first failing step the
        servers are restarted, so its backlog cannot spill into what follows, and the last
        passing rate is held for --hold seconds; if that hold fails, the rate below is held
        instead. The knee is what the hold delivered.
        """
        a = self.args
        servers = start()
        result = asyncio.run(
            loadgen.knee(plan(servers), rates=rates, step_s=a.step, servers=servers, profile=self.generator)
        )
        self.stop_all()
        result["holds_tried"], result["knee_msg_per_s"] = [], 0.0
        passing = [step["rate_target"] for step in result["steps"] if step["holds"]]
        for rate in reversed(passing[-2:]):
            servers = start()
            spy = self.profile(servers[0], profile_as, a.hold) if profile_as else None
            held = asyncio.run(
                loadgen.hold(plan(servers), rate=rate, duration=a.hold, servers=servers, profile=self.generator)
            )
            if spy:
                spy.wait()
            self.stop_all()
            result["holds_tried"].append(held)
            log(f"    hold {rate:.0f}/s for {a.hold:.0f} s: {'holds' if held['holds'] else 'FAILS'}: {compact(held)}")
            if held["holds"]:
                # The offered rate that held: the delivered one scatters around it with jittered sends.
                result["knee_msg_per_s"] = rate
                break
        # A hold the generator could not drive is no knee of the server's (B0 at thousands a second).
        result["generator_bound"] = not result["knee_msg_per_s"] and any(
            h["generator_cpu_pct"] >= 80 for h in result["holds_tried"]
        )
        return result

    # --- Scenario 3 -----------------------------------------------------------------------

    def s3(self) -> None:
        result = self.burst(processes=1)
        result["two_processes"] = self.burst(processes=2)
        self.results["s3"] = result

    def burst(self, processes: int) -> dict:
        """Run the queue burst on PostgreSQL + Redis, with sockets spread over this many processes."""
        a = self.args
        env = self.deskchat_env("pg")
        seeded = self.seed(env, tag="s3", burst_clients=a.burst_clients, burst_engineers=a.burst_engineers)
        name = f"s3-pg{processes}"
        servers = self.start([daphne(f"{name}-{n}", env) for n in range(processes)])
        log(
            f"s3: {a.burst_clients} clients press Join Chat within 1 s; {a.burst_engineers} engineers watch; "
            f"{processes} process(es)"
        )
        clients = [
            {"url": servers[n % processes].ws_url + "/ws/chat/", "cookie": c["session"], "ticket_id": c["ticket_id"]}
            for n, c in enumerate(seeded["burst_clients"])
        ]
        engineers = [
            {"url": servers[n % processes].ws_url + "/ws/hud/", "cookie": e["session"]}
            for n, e in enumerate(seeded["burst_engineers"])
        ]
        spy = self.profile(servers[0], name, 20)
        result = asyncio.run(loadgen.Burst(clients, engineers, profile=self.generator).run(servers=servers))
        if spy:
            spy.wait()
        # The database's word on "exactly once": one answered request and one room per ticket.
        dbname = env["DATABASE_URL"].rsplit("/", 1)[1]
        rows = self.pg.execute(
            "SELECT count(*) FILTER (WHERE q.state = 'answered'), count(DISTINCT r.id), count(r.id), "
            "count(*) FILTER (WHERE q.state = 'waiting') FROM chat_chatrequest q "
            "LEFT JOIN chat_chatroom r ON r.request_id = q.id WHERE q.kind = 'client'",
            dbname,
        )
        answered, rooms, room_rows, waiting = rows[0]
        result["db"] = {
            "answered": answered,
            "rooms": rooms,
            "waiting": waiting,
            "exactly_once": answered == a.burst_clients and rooms == room_rows == a.burst_clients,
        }
        log(f"    {compact(result)}")
        self.stop_all()
        return result

    # --- Scenario 4 -----------------------------------------------------------------------

    def s4(self) -> None:
        a = self.args
        out = self.results.setdefault("s4", {})
        total = a.idle
        checkpoints = sorted({total * k // 10 for k in range(1, 11)})
        hud = total // 10
        env = self.deskchat_env("pg")
        seeded = self.seed(env, tag="s4", idle_portal=total - hud, idle_hud=hud)
        server = self.start([daphne("s4-pg1", env)])[0]
        specs = [{"url": server.ws_url + "/ws/chat/", "cookie": s} for s in seeded["idle_portal"]]
        hud_specs = [{"url": server.ws_url + "/ws/hud/", "cookie": s} for s in seeded["idle_hud"]]
        # Interleave portal and HUD sockets so every checkpoint holds both kinds, 9 to 1.
        mixed = []
        for i, spec in enumerate(specs):
            mixed.append(spec)
            if i % 9 == 8 and hud_specs:
                mixed.append(hud_specs.pop())
        mixed.extend(hud_specs)
        log(f"s4: DeskChat PG+Redis, 1 process: up to {total} idle sockets ({hud} HUD)")
        spy = self.profile(server, "s4-pg1-connect", 30)
        out["DeskChat PG+Redis, 1 process"] = asyncio.run(
            loadgen.idle(
                mixed,
                server=server,
                checkpoints=checkpoints,
                idle_s=a.idle_window,
                budget_s=a.idle_budget,
                profile=self.generator,
            )
        )
        if spy:
            spy.wait()
        self.stop_all()
        for name, make in self.baseline_servers().items():
            if name in ("B1 RedisChannelLayer", "B1 InMemoryChannelLayer"):
                continue  # an idle socket costs about the same on any layer; one B1 is enough here
            # As many sockets as DeskChat's: a baseline's per-socket figure at a few hundred is
            # still warm-up noise, which once made a 3x gap read as "0.9x B0".
            count = total
            server = self.start([make()])[0]
            log(f"s4: {name}: {count} idle sockets")
            relay = [{"url": server.ws_url + f"/ws/relay/?rooms={i}"} for i in range(1, count + 1)]
            out[name] = asyncio.run(
                loadgen.idle(
                    relay,
                    server=server,
                    checkpoints=[count // 2, count],
                    idle_s=a.idle_window / 2,
                    profile=self.generator,
                )
            )
            self.stop_all()

    # --- Scenario 6 -----------------------------------------------------------------------

    def s6(self) -> None:
        """Overload one PostgreSQL process at 3x its knee for 15 s, then 80 msg/s: recovery and integrity."""
        a = self.args
        knee = a.overload_knee or knee_of(self.results.get("s2", {}).get("DeskChat PG+Redis, 1 process") or {})
        if not knee:
            log("s6: no knee (run s2 in the same run, or give --overload-knee): skipped")
            return
        env = self.deskchat_env("pg", CHAT_RATE_BURST=100000, CHAT_RATE_PER_SECOND=100000)
        seeded = self.seed(env, tag="s6", chats=a.sessions, per_engineer=1)
        servers = self.start([daphne("s6-pg1", env)])
        high = 3 * knee
        log(f"s6: DeskChat PG+Redis, 1 process: {high:.0f} msg/s for 15 s (3x the knee {knee}), then 80 msg/s for 20 s")
        result = asyncio.run(
            loadgen.overload(
                self.deskchat_plan(seeded, servers),
                high=high,
                high_s=15.0,
                low=80.0,
                low_s=20.0,
                servers=servers,
                profile=self.generator,
            )
        )
        self.stop_all()
        result["knee_msg_per_s"] = knee
        self.results["s6"] = result
        log(
            f"    recovered after {result['recovered_after_s']} s; p99 per second after: "
            f"{result['p99_ms_per_second_after']}; lost {result['lost']}, dup {result['duplicated']}, "
            f"undelivered {result['undelivered']}, refusals {result['errors']}"
        )

    # --- Scenario 7 -----------------------------------------------------------------------

    def s7(self) -> None:
        """Kill one of two PostgreSQL processes while it holds every socket; all come back to the other."""
        a = self.args
        env = self.deskchat_env("pg")
        # A desk's process holds mostly portal tabs: 15% of the sockets chat (an engineer's HUD for
        # every 3 of them), the rest are contacts' pages with no chat open.
        rooms = a.storm_sockets * 15 // 100
        idle = a.storm_sockets - rooms - rooms // 3
        seeded = self.seed(env, tag="s7", chats=rooms, per_engineer=3, idle_portal=idle)
        victim, survivor = self.start([daphne(f"s7-pg{i}", env) for i in range(2)])
        on_victim = {
            "clients": [
                {"url": victim.ws_url + "/ws/chat/", "cookie": c["session"], "rooms": c["rooms"]}
                for c in seeded["clients"]
            ]
            + [{"url": victim.ws_url + "/ws/chat/", "cookie": cookie, "rooms": []} for cookie in seeded["idle_portal"]],
            "engineers": [
                {"url": victim.ws_url + "/ws/hud/", "cookie": e["session"], "rooms": e["rooms"]}
                for e in seeded["engineers"]
            ],
        }
        log(
            f"s7: {a.storm_sockets} sockets ({rooms} chats, {rooms // 3} HUDs, {idle} idle portal tabs) on one of two "
            f"processes, {a.storm_rate:.0f} msg/s; the process is killed after "
            f"{a.storm_before:.0f} s and its tabs come back to the other within 1 s of each other"
        )
        spy = self.profile(survivor, "s7-survivor", 240)  # the first connects (to the other), then the storm
        result = asyncio.run(
            loadgen.storm(
                on_victim,
                victim=victim,
                survivor_url=survivor.ws_url,
                rate=a.storm_rate,
                before_s=a.storm_before,
                after_s=a.storm_after,
                servers=[survivor],
                profile=self.generator,
            )
        )
        if spy:
            spy.wait()
        self.stop_all()
        self.results["s7"] = result
        log(
            f"    caught up after (s): {result['caught_up_s']}; tries {result['tries']}; lost {result['lost']}, "
            f"dup {result['duplicated']}, undelivered {result['undelivered']} of {result['sent']}"
        )

    # --- Scenario 5 -----------------------------------------------------------------------

    def s5(self) -> None:
        a = self.args
        url = self.new_database()
        env = django_env(database_url=url, ALLOWED_HOSTS="testserver,localhost,127.0.0.1")
        log(f"s5: pages at {a.pages_small} and {a.pages_large} (tickets, messages)")
        spec = {
            "sizes": [list(map(int, a.pages_small.split(","))), list(map(int, a.pages_large.split(",")))],
            "requests": a.page_requests,
        }
        if a.profile:  # after measuring, each page alone under cProfile (py-spy would mix in the seeding)
            spec["profile_dir"] = str(LOG_DIR / "profiles" / "s5")
        printed = run_python("bench.pages", json.dumps(spec), env=env, timeout=900)
        self.results["s5"] = json.loads([line for line in printed.splitlines() if line.startswith("{")][-1])
        for size in self.results["s5"]["sizes"]:
            log(f"    {size['tickets']} tickets, {size['messages']} messages: {size['pages']}")

    # --- Orchestration --------------------------------------------------------------------

    def run(self) -> dict:
        only = set(self.args.only.split(",")) if self.args.only else {"s1", "s2", "s3", "s4", "s5", "s6", "s7"}
        started = time.monotonic()
        self.results["meta"] = meta(self.args)
        try:
            self.start_backends()
            for name in ("s1", "s2", "s6", "s3", "s4", "s7", "s5"):  # s6 overloads at 3x the knee s2 found
                if name in only:
                    getattr(self, name)()
        finally:
            self.stop_all()
            if self.redis:
                self.redis.stop()
            if self.pg:
                self.pg.destroy()
        self.results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
        self.results["meta"]["loadavg_after"] = loadavg()
        self.results["meta"]["cpu_pressure_after"] = cpu_pressure()
        return self.results


def meta(args) -> dict:
    commit = (
        subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        or "unknown"
    )
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0"
    )
    pg_version = subprocess.run(
        ["bash", "-c", "ls /usr/lib/postgresql | sort -n | tail -1"], capture_output=True, text=True
    ).stdout.strip()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2:3]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "worktree_changed": dirty,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "redis": redis_version[0].removeprefix("v=") if redis_version else "?",
        "loadavg_before": loadavg(),
        "cpu_pressure_before": cpu_pressure(),
        "args": vars(args),
    }


# --- Reporting ----------------------------------------------------------------------------


def compact(result: dict) -> str:
    keep = (
        "msg_per_s",
        "latency_ms",
        "lost",
        "duplicated",
        "reordered",
        "undelivered",
        "errors",
        "generator_cpu_pct",
        "server_cpu_pct",
        "request_to_hud_ms",
        "request_to_own_dialog_ms",
        "race_s",
        "answered",
        "answered_twice",
        "db",
    )
    return json.dumps({k: v for k, v in result.items() if k in keep})


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: dict) -> list[tuple[str, str, str]]:
    """Print the tables; return (target, verdict, evidence) rows, which are also saved."""
    verdicts = []
    m = results["meta"]
    print(
        f"\nDeskChat benchmarks, commit {m['commit']}{' (+ local changes)' if m['worktree_changed'] else ''}, "
        f"{m['date']}\n{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB; Python {m['python']}, PostgreSQL "
        f"{m['postgresql']}, Redis {m['redis']}; loadavg before {m['loadavg_before']}, after {m.get('loadavg_after')}; "
        f"CPU pressure (PSI some, avg10/60/300 %) before {m.get('cpu_pressure_before')}, after "
        f"{m.get('cpu_pressure_after')}"
    )

    if "s1" in results:
        s1 = results["s1"]
        b1 = s1.get("B1 RedisPubSubChannelLayer", {}).get("latency_ms", {})
        b0 = s1.get("B0 websockets", {}).get("latency_ms", {})
        print(f"\nScenario 1, steady chat: {s1['sessions']} sessions, each side sends every {s1['interval_s']} s")
        print(
            f"{'run':34} {'msg/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} {'lost':>5} {'dup':>4} {'reord':>5}"
            f" {'undel':>5} {'p99/B1':>7} {'p99/B0':>7} {'gen cpu':>7} {'srv cpu':>12} {'srv starved':>12}"
            f" {'disk stall':>10} {'GC max':>9}"
        )
        for name, r in s1.items():
            if not isinstance(r, dict):
                continue
            lat = r["latency_ms"]
            print(
                f"{name:34} {r['msg_per_s']:>7} {lat['p50']:>7} {lat['p95']:>7} {lat['p99']:>7} {lat['max']:>8} "
                f"{r['lost']:>5} {r['duplicated']:>4} {r['reordered']:>5} {r['undelivered']:>5} "
                f"{ratio(lat['p99'], b1.get('p99', 0)):>7} {ratio(lat['p99'], b0.get('p99', 0)):>7} "
                f"{r['generator_cpu_pct']:>6}% {','.join(f'{c}%' for c in r['server_cpu_pct']):>12} "
                f"{','.join(f'{c}%' for c in r.get('server_runqueue_wait_pct', [])):>12} "
                f"{disk_stall(r):>10} {gc_max(r):>9}"
            )
        embedded = s1.get("DeskChat embedded, 1 process")
        memory = s1.get("B1 InMemoryChannelLayer", {}).get("latency_ms", {})
        if embedded and memory:
            lat = embedded["latency_ms"]
            clean = embedded["lost"] == embedded["duplicated"] == embedded["undelivered"] == 0
            verdicts.append(
                (
                    f"S1 DeskChat embedded: {embedded['msg_per_s']} msg/s with p99 <= 5x B1 (in-memory), nothing lost",
                    verdict(lat["p99"] <= 5 * memory["p99"] and clean),
                    f"{ratio(lat['p99'], memory['p99'])} ({lat['p99']} vs {memory['p99']} ms), "
                    f"lost {embedded['lost']}, undelivered {embedded['undelivered']}",
                )
            )
        for name in ("DeskChat PG+Redis, 1 process", "DeskChat PG+Redis, 2 processes"):
            r = s1.get(name)
            if not r:
                continue
            lat = r["latency_ms"]
            clean = r["lost"] == r["duplicated"] == r["reordered"] == r["undelivered"] == 0
            verdicts += [
                (f"S1 {name}: p50 <= 10 ms", verdict(lat["p50"] <= 10), f"{lat['p50']} ms"),
                (f"S1 {name}: p99 <= 50 ms", verdict(lat["p99"] <= 50), f"{lat['p99']} ms"),
                (f"S1 {name}: max <= 250 ms", verdict(lat["max"] <= 250), f"{lat['max']} ms"),
                (
                    f"S1 {name}: 0 lost/dup/reordered",
                    verdict(clean),
                    f"lost {r['lost']}, dup {r['duplicated']}, reordered {r['reordered']}, undelivered {r['undelivered']}",
                ),
            ]
            if b1:
                verdicts.append(
                    (
                        f"S1 {name}: p99 <= 5x B1 (PubSub)",
                        verdict(lat["p99"] <= 5 * b1["p99"]),
                        f"{ratio(lat['p99'], b1['p99'])} ({lat['p99']} vs {b1['p99']} ms)",
                    )
                )

    if "s2" in results:
        s2 = results["s2"]
        print(
            f"\nScenario 2, knee: {s2['sessions']} sessions, steps of {s2['step_s']} s until p99 > 100 ms or loss, "
            f"then a {s2.get('hold_s')} s hold on restarted servers; sends jittered ±{s2.get('jitter', 0):.0%}"
        )
        print(f"{'run':52} {'last step ok':>12} {'knee (held)':>12} {'hold p99':>9}  first failing step")
        knees = {}
        for name, r in s2.items():
            if not isinstance(r, dict):
                continue
            knees[name] = knee_of(r)
            held = next((h for h in r.get("holds_tried", []) if h["holds"]), None)
            shown = "generator" if r.get("generator_bound") else knees[name]
            print(
                f"{name:52} {r['highest_holding_msg_per_s']:>12} {shown:>12} "
                f"{held['latency_ms']['p99'] if held else '-':>9}  {first_failing(r)}"
            )
        one = knees.get("DeskChat PG+Redis, 1 process")
        if one is not None:
            print(
                f"DeskChat 1 process / B1 PubSub: {ratio(one, knees.get('B1 RedisPubSubChannelLayer', 0))}, "
                f"/ B1 core: {ratio(one, knees.get('B1 RedisChannelLayer', 0))}, / B0: {ratio(one, knees.get('B0 websockets', 0))}"
            )
            verdicts.append(("S2 >= 500 msg/s with p99 <= 100 ms", verdict(one >= 500), f"{one} msg/s"))
        for run, baseline, share in (
            ("DeskChat PG+Redis, 1 process", "B1 RedisPubSubChannelLayer", 0.7),
            ("DeskChat PG+Redis, 2 processes", "DeskChat PG+Redis, 1 process", 1.2),
            ("DeskChat embedded, 1 process", "B1 InMemoryChannelLayer", 0.5),
        ):
            if run in knees and knees.get(baseline):
                verdicts.append(
                    (
                        f"S2 {run}: knee >= {share}x {baseline}",
                        verdict(knees[run] >= share * knees[baseline]),
                        f"{ratio(knees[run], knees[baseline])} ({knees[run]} vs {knees[baseline]} msg/s)",
                    )
                )

    if "s6" in results:
        r = results["s6"]
        print(
            f"\nScenario 6, overload: {r['high_msg_per_s']:.0f} msg/s (3x the knee {r['knee_msg_per_s']}) for "
            f"{r['high_s']:.0f} s, then {r['low_msg_per_s']:.0f} msg/s for {r['low_s']:.0f} s, on one process"
        )
        print(f"  during the overload: {compact(r['overload'])}")
        print(f"  p99 per second afterwards (ms): {r['p99_ms_per_second_after']}")
        print(
            f"  refusals: {r['errors']}; lost {r['lost']}, duplicated {r['duplicated']}, undelivered {r['undelivered']}"
        )
        verdicts += [
            (
                "S6 overload at 3x the knee for 15 s: p99 back under 100 ms within 10 s",
                verdict(r["recovered_after_s"] is not None and r["recovered_after_s"] <= 10),
                "not within the window" if r["recovered_after_s"] is None else f"{r['recovered_after_s']} s",
            ),
            (
                "S6 overload: 0 acknowledged messages lost or duplicated",
                verdict(r["lost"] == r["duplicated"] == r["undelivered"] == 0),
                f"lost {r['lost']}, duplicated {r['duplicated']}, undelivered {r['undelivered']} of {r['sent']}",
            ),
        ]

    if "s7" in results:
        r = results["s7"]
        print(
            f"\nScenario 7, reconnect storm: {r['sockets']} sockets on one of two processes at {r['rate_msg_per_s']:.0f} "
            f"msg/s; that process killed, every tab back on the other (first tries within 1 s of each other)"
        )
        print(f"  caught up after the kill (s): {r['caught_up_s']}; tries to reconnect per tab: {r['tries']}")
        print(f"  lost {r['lost']}, duplicated {r['duplicated']}, undelivered {r['undelivered']} of {r['sent']}")
        verdicts += [
            (
                f"S7 reconnect storm: {r['sockets']} sockets back and caught up within 30 s",
                verdict(r["caught_up_s"]["max"] <= 30 and not r["never_back"]),
                f"p50 {r['caught_up_s']['p50']} s, p99 {r['caught_up_s']['p99']} s, last {r['caught_up_s']['max']} s"
                + (f", {r['never_back']} never back" if r["never_back"] else ""),
            ),
            (
                "S7 reconnect storm: nothing lost or duplicated",
                verdict(r["lost"] == r["duplicated"] == r["undelivered"] == 0),
                f"lost {r['lost']}, duplicated {r['duplicated']}, undelivered {r['undelivered']} of {r['sent']}",
            ),
        ]

    if "s3" in results:
        runs = [("1 process", results["s3"])]
        if results["s3"].get("two_processes"):
            runs.append(("2 processes", results["s3"]["two_processes"]))
        for label, r in runs:
            lat = r["request_to_hud_ms"]
            print(
                f"\nScenario 3, queue burst, {label}: {r['requests']} requests within 1 s, {r['engineers']} engineers"
            )
            print(
                f"request -> HUD: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms over {lat['n']} "
                f"(engineer, request) pairs, never shown within 30 s {r['never_shown']} (counted as 30 s); "
                f"requests on each HUD at the end of the wait: {r.get('hud_counts_at_end')}"
            )
            own = r.get("request_to_own_dialog_ms")
            if own:
                print(
                    f"request -> the client's own dialog showing it waiting: p50 {own['p50']} ms, p99 {own['p99']} ms"
                )
            print(
                f"race: {r['answered']} answered in {r['race_s']} s, {r['answer_attempts']} attempts, errors "
                f"{r['answer_errors']}, answered twice {r['answered_twice']}, database {r['db']}"
            )
            print(f"longest GC pause in the burst: {gc_max(r)}")
            once = r["db"]["exactly_once"] and r["answered_twice"] == 0 and r["answered"] == r["requests"]
            verdicts += [
                (
                    f"S3 {label}: request->HUD p99 <= 200 ms",
                    verdict(lat["p99"] <= 200 and r["never_shown"] == 0),
                    f"{lat['p99']} ms",
                ),
                (
                    f"S3 {label}: every request answered exactly once",
                    verdict(once),
                    f"{r['answered']}/{r['requests']} answered in {r['race_s']} s, {r['answered_twice']} twice, "
                    f"database {r['db']['answered']} answered / {r['db']['rooms']} rooms",
                ),
            ]

    if "s4" in results:
        s4 = results["s4"]
        print("\nScenario 4, idle sockets on one process")
        print(
            f"{'run':34} {'sockets':>7} {'KiB/socket':>10} {'RSS MiB':>8} {'ping p99':>9} {'conn/s':>7} {'idle cpu':>8}"
            f" {'GC max':>9}"
        )
        for name, r in s4.items():
            last = r["points"][-1]
            print(
                f"{name:34} {last['sockets']:>7} {last['rss_kib_per_socket']:>10} {last['rss_mib']:>8} "
                f"{last['ping_ms']['p99']:>8}ms {last['connect_per_s']:>7} {r['idle_cpu_pct']:>7}% {gc_max(r):>9}"
            )
        d = s4.get("DeskChat PG+Redis, 1 process")
        b0 = s4.get("B0 websockets")
        b1 = s4.get("B1 RedisPubSubChannelLayer")
        if d:
            last = d["points"][-1]
            per = last["rss_kib_per_socket"]
            alive = last["sockets"] - d["closed"]
            if b0:
                print(
                    f"DeskChat KiB/socket / B0: {ratio(per, b0['points'][-1]['rss_kib_per_socket'])}"
                    + (f", / B1: {ratio(per, b1['points'][-1]['rss_kib_per_socket'])}" if b1 else "")
                )
            verdicts += [
                (
                    "S4 >= 5000 idle sockets on one process",
                    verdict(alive >= 5000),
                    f"{alive} open in {d.get('opening_s')} s, ping p99 {last['ping_ms']['p99']} ms",
                ),
                ("S4 <= 200 KiB resident per socket", verdict(per <= 200), f"{per} KiB"),
                ("S4 <= 15% of a core idle", verdict(d["idle_cpu_pct"] <= 15), f"{d['idle_cpu_pct']}%"),
            ]
            if b0:
                b0per = b0["points"][-1]["rss_kib_per_socket"]
                verdicts.append(
                    (
                        "S4 <= 3x B0 memory per socket",
                        verdict(per <= 3 * b0per),
                        f"{ratio(per, b0per)} ({per} vs {b0per} KiB)",
                    )
                )
            connect = min(point["connect_per_s"] for point in d["points"])
            verdicts += [
                (
                    "S4 connect >= 300 authenticated sockets/s per process (slowest checkpoint)",
                    verdict(connect >= 300),
                    f"{connect}/s (each checkpoint: {[point['connect_per_s'] for point in d['points']]})",
                ),
                (
                    "S4 no collector pause over 100 ms while idle",
                    verdict(d.get("gc_pause_max_ms", 0) <= 100),
                    f"max {d.get('gc_pause_max_ms')} ms over {d.get('gc_pauses')} pauses of 5 ms or more",
                ),
            ]
            if b1:
                b1per = b1["points"][-1]["rss_kib_per_socket"]
                verdicts.append(
                    (
                        f"S4 <= 1.1x B1 memory per socket at {last['sockets']} sockets",
                        verdict(per <= 1.1 * b1per),
                        f"{ratio(per, b1per)} ({per} vs {b1per} KiB)",
                    )
                )

    if "s5" in results:
        sizes = results["s5"]["sizes"]
        print("\nScenario 5, pages (server time in-process, PostgreSQL)")
        print(
            f"{'page':30} "
            + " ".join(f"{s['tickets']:>6}t/{s['messages']:>6}m: p50 / p95 / queries".rjust(44) for s in sizes)
        )
        for page in sizes[0]["pages"]:
            cells = [s["pages"][page] for s in sizes]
            print(
                f"{page:30} "
                + " ".join(f"{c['p50_ms']:>10} ms {c['p95_ms']:>10} ms {c['queries']:>8}".rjust(44) for c in cells)
            )
            large = cells[-1]
            verdicts += [
                (f"S5 {page}: p95 <= 50 ms", verdict(large["p95_ms"] <= 50), f"{large['p95_ms']} ms"),
                (
                    f"S5 {page}: flat query count",
                    verdict(len({c["queries"] for c in cells}) == 1),
                    " -> ".join(str(c["queries"]) for c in cells),
                ),
            ]

    print("\nTargets")
    for target, result, evidence in verdicts:
        print(f"  {result}  {target:55} {evidence}")
    return verdicts


def markdown(results: dict) -> str:
    """Render the results as the Markdown tables docs/benchmarks.md shows."""
    m, lines = results["meta"], []
    add = lines.append
    add(
        f"Commit `{m['commit']}`{' (with uncommitted changes)' if m['worktree_changed'] else ''}, {m['date']}, "
        f"{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Python {m['python']}, PostgreSQL {m['postgresql']}, "
        f"Redis {m['redis']}. Load average before/after: {m['loadavg_before']} / {m.get('loadavg_after')}; CPU "
        f"pressure (PSI some avg10/60/300 %) before/after: {m.get('cpu_pressure_before')} / "
        f"{m.get('cpu_pressure_after')}. Whole run: {m.get('wall_s')} s. "
        # Results from before the generator sent what the pages send have no such argument.
        f"Load generator: {m['args'].get('generator', 'legacy')} profile.\n"
    )
    if "s1" in results:
        s1 = results["s1"]
        b1 = s1.get("B1 RedisPubSubChannelLayer", {}).get("latency_ms", {})
        b0 = s1.get("B0 websockets", {}).get("latency_ms", {})
        add(
            f"**Scenario 1, steady chat** ({s1['sessions']} sessions, each side sends every {s1['interval_s']} s; "
            "latency in ms)\n"
        )
        add(
            "| run | msg/s | p50 | p95 | p99 | max | lost | dup | reordered | undelivered | p99 / B1 | p99 / B0 "
            "| server CPU | server starved | disk stalled | longest GC pause |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in s1.items():
            if isinstance(r, dict):
                lat = r["latency_ms"]
                add(
                    f"| {name} | {r['msg_per_s']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} | "
                    f"{r['lost']} | {r['duplicated']} | {r['reordered']} | {r['undelivered']} | "
                    f"{ratio(lat['p99'], b1.get('p99', 0))} | {ratio(lat['p99'], b0.get('p99', 0))} | "
                    f"{' + '.join(f'{c}%' for c in r['server_cpu_pct'])} | "
                    f"{' + '.join(f'{c}%' for c in r.get('server_runqueue_wait_pct', []))} | {disk_stall(r)} | "
                    f"{gc_max(r)} |"
                )
        add("")
    if "s2" in results:
        s2 = results["s2"]
        add(
            f"**Scenario 2, knee** ({s2['sessions']} sessions, steps of {s2['step_s']} s, knee held for "
            f"{s2.get('hold_s')} s on restarted servers, sends jittered ±{s2.get('jitter', 0):.0%})\n"
        )
        add("| run | knee (held) msg/s | hold p99 ms | steps (offered msg/s: p99 ms) | first failing step |")
        add("|---|---:|---:|---|---|")
        for name, r in s2.items():
            if isinstance(r, dict):
                steps = ", ".join(f"{s['rate_target']:.0f}: {s['latency_ms']['p99']:.0f}" for s in r["steps"])
                held = next((h for h in r.get("holds_tried", []) if h["holds"]), None)
                add(
                    f"| {name} | {knee_of(r)} | {held['latency_ms']['p99'] if held else '-'} | {steps} | "
                    f"{first_failing(r)} |"
                )
        add("")
    if "s6" in results:
        r = results["s6"]
        add(
            f"**Scenario 6, overload and recovery** (one process): {r['high_msg_per_s']:.0f} msg/s, 3x the knee "
            f"{r['knee_msg_per_s']}, for {r['high_s']:.0f} s, then {r['low_msg_per_s']:.0f} msg/s for {r['low_s']:.0f} s. "
            f"p99 of each second afterwards (ms): {', '.join(str(p) for p in r['p99_ms_per_second_after'])}; back under "
            f"100 ms for good after {r['recovered_after_s']} s. Refusals {r['errors']}; of {r['sent']} messages, lost "
            f"{r['lost']}, duplicated {r['duplicated']}, undelivered {r['undelivered']}.\n"
        )
    if "s7" in results:
        r = results["s7"]
        add(
            f"**Scenario 7, reconnect storm**: {r['sockets']} sockets on one of two processes, {r['rate_msg_per_s']:.0f} "
            f"msg/s; the process killed (SIGKILL) and every tab back on the other, the first tries within 1 s of "
            f"each other. Caught up after the kill: p50 {r['caught_up_s']['p50']} s, p99 {r['caught_up_s']['p99']} s, "
            f"last {r['caught_up_s']['max']} s; tries per tab {r['tries']}. Of {r['sent']} messages, lost {r['lost']}, "
            f"duplicated {r['duplicated']}, undelivered {r['undelivered']}.\n"
        )
    if "s3" in results:
        runs = [("one process", results["s3"])]
        if results["s3"].get("two_processes"):
            runs.append(("two processes", results["s3"]["two_processes"]))
        for label, r in runs:
            lat = r["request_to_hud_ms"]
            own = r.get("request_to_own_dialog_ms")
            add(
                f"**Scenario 3, queue burst, {label}**: {r['requests']} requests within 1 s, {r['engineers']} engineers. "
                f"Request to HUD: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms over {lat['n']} "
                f"(engineer, request) pairs; never shown within 30 s (counted as 30 s, a lower bound): {r['never_shown']}; "
                f"requests on each HUD at the end of the wait: {r.get('hud_counts_at_end')}. "
                + (
                    f"Request to the client's own dialog showing it waiting: p50 {own['p50']} ms, p99 {own['p99']} ms. "
                    if own
                    else ""
                )
                + f"Race: {r['answered']} answered in "
                f"{r['race_s']} s with {r['answer_attempts']} attempts (errors {r['answer_errors']}); answered twice: "
                f"{r['answered_twice']}; database: {r['db']}. Server CPU {r['server_cpu_pct']}%, starved "
                f"{r.get('server_runqueue_wait_pct')}%, disk stalled {disk_stall(r)}, longest GC pause {gc_max(r)}.\n"
            )
    if "s4" in results:
        add("**Scenario 4, idle sockets on one process**\n")
        add(
            "| run | sockets open | KiB per socket | RSS MiB | ping p50 / p99 ms | sockets/s opened | idle CPU "
            "| longest GC pause |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in results["s4"].items():
            last = r["points"][-1]
            add(
                f"| {name} | {last['sockets'] - r['closed']} of {r.get('target_sockets', last['sockets'])} | "
                f"{last['rss_kib_per_socket']} | {last['rss_mib']} | {last['ping_ms']['p50']} / {last['ping_ms']['p99']} "
                f"| {last['connect_per_s']} | {r['idle_cpu_pct']}% | {gc_max(r)} |"
            )
        add("")
    if "s5" in results:
        sizes = results["s5"]["sizes"]
        add("**Scenario 5, pages** (server time in-process on PostgreSQL, ms; queries per request)\n")
        add(
            "| page | "
            + " | ".join(f"{s['tickets']:,} tickets / {s['messages']:,} messages: p50, p95, queries" for s in sizes)
            + " |"
        )
        add("|---|" + "---:|" * len(sizes))
        for page in sizes[0]["pages"]:
            add(
                f"| {page} | "
                + " | ".join(
                    f"{s['pages'][page]['p50_ms']}, {s['pages'][page]['p95_ms']}, {s['pages'][page]['queries']}"
                    for s in sizes
                )
                + " |"
            )
        add("")
    if "verdicts" in results:
        add("**Targets**\n")
        add("| target | result | measured |")
        add("|---|---|---|")
        for v in results["verdicts"]:
            add(f"| {v['target']} | {v['result']} | {v['evidence']} |")
    return "\n".join(lines)


def knee_of(run: dict) -> float:
    """Return a knee row's knee: what its hold delivered (older results: the last passing step)."""
    return run.get("knee_msg_per_s", run["highest_holding_msg_per_s"])


def first_failing(run: dict) -> str:
    fail = next((s for s in run["steps"] if not s["holds"]), None)
    if fail is None:
        return "none (ran out of steps)"
    return (
        f"{fail['rate_target']:.0f}/s: p99 {fail['latency_ms']['p99']} ms, undelivered {fail['undelivered']}, "
        f"lost {fail['lost']}, dup {fail['duplicated']}, reordered {fail['reordered']}, "
        f"server CPU {fail['server_cpu_pct']}%, generator CPU {fail['generator_cpu_pct']}%, disk {disk_stall(fail)}"
    )


def gc_max(run: dict) -> str:
    """Show the longest collector pause of a run's servers (its sockets all waited through it)."""
    value = run.get("gc_pause_max_ms")
    if value is None:
        return "-"  # a result from before the benchmark read the pauses
    return f"{max(value) if isinstance(value, list) else value:.0f} ms"


def disk_stall(run: dict) -> str:
    """Show the share of a run's wall time in which every busy task waited for the disk (PSI io full)."""
    value = run.get("disk_stalled_pct")
    return "-" if value is None else f"{value}%"


def main() -> None:
    parser = argparse.ArgumentParser(description="DeskChat benchmarks (see docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="small and short: for trying things out")
    parser.add_argument("--only", default="", help="comma-separated: s1,s2,s3,s4,s5,s6,s7")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument(
        "--per-engineer", type=int, default=1, help="s1: sessions per engineer socket (s2 also runs 3 as a row)"
    )
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--baseline-duration", type=float, default=0.0, help="s1 baselines (default: --duration)")
    parser.add_argument("--rates", default="50,100,150,200,250,300,350,400,500,600,800,1000,1300")
    parser.add_argument("--baseline-rates", default="100,200,300,400,500,600,800,1000,1500,2000,3000,4000")
    parser.add_argument("--step", type=float, default=10.0, help="s2: seconds per step")
    parser.add_argument("--hold", type=float, default=60.0, help="s2: seconds the knee is held to confirm it")
    parser.add_argument(
        "--s2-runs",
        default=",".join(run[1] for run in Bench.S2_RUNS),
        help="which DeskChat runs s2 makes: " + ", ".join(run[1] for run in Bench.S2_RUNS),
    )
    parser.add_argument("--skip-core-knee", action="store_true", help="leave B1 RedisChannelLayer out of s2")
    parser.add_argument(
        "--overload-knee", type=float, default=0.0, help="s6: the knee to overload at 3x (default: s2's, same run)"
    )
    parser.add_argument("--burst-clients", type=int, default=100)
    parser.add_argument("--burst-engineers", type=int, default=20)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--idle-window", type=float, default=10.0)
    parser.add_argument("--idle-budget", type=float, default=135.0, help="seconds allowed for opening idle sockets")
    parser.add_argument("--storm-sockets", type=int, default=2000, help="s7: sockets on the process killed")
    parser.add_argument("--storm-rate", type=float, default=40.0, help="s7: msg/s sent throughout")
    parser.add_argument("--storm-before", type=float, default=10.0, help="s7: seconds of chat before the kill")
    parser.add_argument("--storm-after", type=float, default=30.0, help="s7: seconds of chat after the kill")
    parser.add_argument("--pages-small", default="100,2000")
    parser.add_argument("--pages-large", default="10000,200000")
    parser.add_argument("--page-requests", type=int, default=20)
    parser.add_argument("--s1-runs", default="embedded1,pg1,pg2", help="which DeskChat runs s1 makes")
    parser.add_argument("--skip-baselines", action="store_true", help="experiments: DeskChat only in s1 and s2")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="experiment: sys.setswitchinterval() in the DeskChat servers (seconds)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the DeskChat server in s1/s2 (slower)")
    parser.add_argument(
        "--generator",
        choices=sorted(loadgen.PROFILES),
        default=loadgen.BROWSER.name,
        help="what the load generator's tabs send: browser (what the pages send, the default) or legacy (sync, "
        "send, request_chat, answer and ping only, as before; to compare with older results)",
    )
    parser.add_argument(
        "--out", default="", help="JSON path (default bench/results/<date>-<time>[-<scenarios>]-<commit>.json)"
    )
    parser.add_argument("--markdown", default="", help="print a results JSON file as Markdown tables, run nothing")
    args = parser.parse_args()
    args.baseline_duration = args.baseline_duration or args.duration
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    # A SIGTERM (a timeout, a kill) still stops the servers and removes the private cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.sessions, args.duration, args.baseline_duration, args.hold = 40, 10, 8, 5
        args.rates, args.baseline_rates, args.step = "100,300,600", "300,1000", 3
        args.burst_clients, args.burst_engineers, args.idle, args.idle_window = 20, 5, 500, 5
        args.idle_budget = 30
        args.storm_sockets, args.storm_before, args.storm_after = 200, 3, 10
        args.pages_small, args.pages_large, args.page_requests = "50,500", "1000,10000", 10
    results = Bench(args).run()
    results["verdicts"] = [{"target": t, "result": v, "evidence": e} for t, v, e in report(results)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The start time is in the name, so a second run of the same commit on the same day keeps the first.
    started = datetime.strptime(results["meta"]["date"], "%Y-%m-%d %H:%M UTC")
    only = f"-{args.only.replace(',', '')}" if args.only else ""
    out = (
        Path(args.out)
        if args.out
        else RESULTS
        / (
            f"{started:%Y-%m-%d-%H%M}{only}-{results['meta']['commit']}{'-quick' if args.quick else ''}"
            f"{'' if args.generator == loadgen.BROWSER.name else '-' + args.generator}.json"
        )
    )
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(
        f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
        f"(whole run {results['meta']['wall_s']} s)"
    )


if __name__ == "__main__":
    main()
