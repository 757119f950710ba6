"""The estate's sample data, served by the fake APIs, and ``make demo``'s run of the estate.

    python scripts/estate_data.py demo [--days 3]   # core, then WBP_DB, then CND_DB; status
    python scripts/estate_data.py table             # the README's estate table (after demo)

The data is generated here, seeded per window *index* (not per calendar date), so every run
gives the same rows and counts whatever the day. The windows are recent local days (the
three before yesterday by default): Gladly keeps conversation export jobs 14 days, and the
real extractor lists them relative to now, so the estate cannot run on fixed old dates as
``demo/gladly_demo`` does.

The API sources run their real extractor code against the fakes of ``tests/fakes`` (the
shared fake-API kit) on 127.0.0.1: the pipelines of ``pipelines/{core,warbyparker,condenast}``
are copied under ``$XOELT_HOME/estate/pipelines`` with each API source's ``base_url`` set to
its fake (``org`` dropped), and ``xoelt`` runs as a subprocess with ``XOELT_PIPELINES``
pointing there. BambooHR answers with the roster as it is "now": between runs the roster
changes (a team move, a leaver, a hire), which the SCD2 rosters keep as history.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections.abc import Generator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import demo_data  # noqa: E402  (scripts/demo_data.py: the Gladly contact/session generator)
import yaml  # noqa: E402
from tests.fakes.bamboohr import FakeBambooHr  # noqa: E402
from tests.fakes.gladly import FakeGladly, csv_text  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402
from tests.fakes.sprout import FakeSprout  # noqa: E402

NY = ZoneInfo("America/New_York")
COMPANY, SPROUT_CUSTOMER = "xoelt-estate", "424242"
CREDENTIALS = {  # fake values, known to the fakes only
    "BAMBOOHR_API_KEY": "estate-bamboohr-key",
    "BAMBOOHR_COMPANY": COMPANY,
    "GLADLY_API_USER": "wbp-api@example.com",
    "GLADLY_API_TOKEN": "estate-wbp-gladly-token",
    "CND_GLADLY_API_USER": "cnd-api@example.com",
    "CND_GLADLY_API_TOKEN": "estate-cnd-gladly-token",
    "SPROUT_API_TOKEN": "estate-sprout-token",
    "SPROUT_CUSTOMER_ID": SPROUT_CUSTOMER,
}
# (database, pipeline) in the order a morning runs them: CORE_DB's gold is read by the others.
PIPELINES = [
    ("CORE_DB", "core/bamboohr_roster_daily"),
    ("WBP_DB", "warbyparker/gladly_daily"),
    ("WBP_DB", "warbyparker/gladly_work_sessions_daily"),
    ("WBP_DB", "warbyparker/sprout_messages_daily"),
    ("CND_DB", "condenast/gladly_conversations_daily"),
]
FIELDS = ["id", "firstName", "lastName", "workEmail", "department", "jobTitle", "hireDate",
          "terminationDate", "status", "customClient", "customGladlyAgentId"]  # fmt: skip
WBP_AGENTS = [(a, n, t) for (a, n), t in zip(demo_data.AGENTS, ["Sales", "Sales", "Support",
              "Returns", "Support"], strict=True)]  # fmt: skip
CND_AGENTS = [("ag_21", "Gia Romano", "Editorial"), ("ag_22", "Hugo Laurent", "Subscriptions"),
              ("ag_23", "Ines Duarte", "Subscriptions"), ("ag_24", "Jonah Weiss", "Editorial")]  # fmt: skip
CND_INBOXES = ["help@vogue.example", "subscriptions@newyorker.example"]


def run_dates(days: int, today: date | None = None) -> list[date]:
    """``days`` run dates ending the day before yesterday (New York), oldest first."""
    today = today or datetime.now(NY).date()
    return [today - timedelta(days=days + 1 - i) for i in range(days)]


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def roster(index: int) -> list[dict[str, Any]]:
    """BambooHR's employees as of the ``index``-th run: on the second run Bilal moves to
    Support, on the third Dev leaves (Inactive, a termination date) and Fay is hired;
    at Condé Nast Ines becomes a team lead on the second run."""
    people: list[dict[str, Any]] = []
    for n, (agent, name, team) in enumerate([*WBP_AGENTS, *CND_AGENTS]):
        client = "Warby Parker" if n < len(WBP_AGENTS) else "Condé Nast"
        first, last = name.split(" ", 1)
        person: dict[str, Any] = {
            "id": 100 + n, "firstName": first, "lastName": last,
            "workEmail": f"{first.lower()}@{'warbyparker' if n < 5 else 'condenast'}.example",
            "department": team, "jobTitle": "Customer Experience Agent",
            "hireDate": f"202{n % 4}-0{1 + n % 9}-15", "terminationDate": None,
            "status": "Active", "customClient": client, "customGladlyAgentId": agent,
        }  # fmt: skip
        if agent == "ag_02" and index >= 1:
            person["department"] = "Support"
        if agent == "ag_23" and index >= 1:
            person["jobTitle"] = "Team Lead"
        if agent == "ag_04" and index >= 2:
            person.update(status="Inactive", terminationDate="2026-06-30")
        people.append(person)
    if index >= 2:
        people.append(
            {
                "id": 120,
                "firstName": "Fay",
                "lastName": "Okafor",
                "workEmail": "fay@warbyparker.example",
                "department": "Returns",
                "jobTitle": "Customer Experience Agent",
                "hireDate": "2026-06-01",
                "terminationDate": None,
                "status": "Active",
                "customClient": "Warby Parker",
                "customGladlyAgentId": "ag_06",
            }
        )
    # a people manager without a Gladly seat: in the roster, not in dim_agents
    people.append(
        {
            "id": 99,
            "firstName": "Kim",
            "lastName": "Ng",
            "workEmail": "kim@warbyparker.example",
            "department": "Operations",
            "jobTitle": "CX Director",
            "hireDate": "2019-03-01",
            "terminationDate": None,
            "status": "Active",
            "customClient": "Warby Parker",
            "customGladlyAgentId": None,
        }
    )
    return people


def sprout_messages(day: date, rng: random.Random) -> list[dict[str, Any]]:
    """Social messages of a local day: customers' (no sender) and agents' replies."""
    start = datetime(day.year, day.month, day.day, 9, tzinfo=NY)
    out = []
    for n in range(rng.randint(12, 18)):
        at = start + timedelta(minutes=rng.randint(0, 9 * 60), seconds=n)
        agent = rng.choice(WBP_AGENTS) if rng.random() < 0.6 else None
        sender = {"email": f"{agent[1].split()[0].lower()}@warbyparker.example"} if agent else None
        out.append(
            {
                "guid": f"sp_{day:%Y%m%d}_{n:03d}",
                "created_time": _z(at),
                "post_type": "TWITTER_REPLY" if agent else "TWITTER_MENTION",
                "network": "TWITTER",
                "text": f"message {n}",
                "perma_link": f"https://x.example/s/{day:%Y%m%d}{n:03d}",
                "from": {"screen_name": f"user{rng.randrange(1000)}"},
                "internal": {"tags": [{"id": 7}], "sent_by": sender},
                "case_id": 5000 + n,
            }
        )
    return out


def _item(
    conv: str, customer: str, k: int, at: datetime, who: tuple[str, str], content: dict[str, Any]
) -> dict[str, Any]:
    """One line of ``conversation_items.jsonl`` (the export's shape, api-contracts.md)."""
    return {
        "id": f"{conv}_{k}",
        "conversationId": conv,
        "customerId": customer,
        "timestamp": _z(at),
        "initiator": {"id": who[0], "type": who[1]},
        "content": content,
    }


def cnd_items(day: date, rng: random.Random, index: int) -> list[dict[str, Any]]:
    """Conversation items of e-mail conversations started on a local day: the customer's
    e-mail, an agent's answer, a note, and (for most) a close; some close the next day."""
    start = datetime(day.year, day.month, day.day, 8, tzinfo=NY)
    items: list[dict[str, Any]] = []
    for n in range(rng.randint(8, 12)):
        conv, customer = f"cv_{index}_{n:02d}", f"cu_{rng.randrange(16**6):06x}"
        created = start + timedelta(minutes=rng.randint(0, 10 * 60))
        inbox = rng.choice(CND_INBOXES)
        agent = (rng.choice(CND_AGENTS)[0], "AGENT")
        answer = created + timedelta(minutes=rng.randint(5, 180))
        mail = f"{customer}@mail.example"
        items += [
            _item(conv, customer, 0, created, (customer, "CUSTOMER"),
                  {"type": "EMAIL", "from": mail, "to": [inbox], "subject": f"Question {n}",
                   "content": "Hello"}),
            _item(conv, customer, 1, answer, agent,
                  {"type": "EMAIL", "from": inbox, "to": [mail], "subject": f"Re: Question {n}",
                   "content": "Hi!"}),
            _item(conv, customer, 2, answer + timedelta(minutes=1), agent,
                  {"type": "CONVERSATION_NOTE", "body": "answered"}),
        ]  # fmt: skip
        if n % 5 != 4:  # one in five stays open
            # most close the same evening; every third closes the next morning (another window)
            close = answer + timedelta(minutes=30) if n % 3 else created + timedelta(hours=24)
            status = {"type": "CONVERSATION_STATUS_CHANGE", "status": "CLOSED"}
            items.append(_item(conv, customer, 3, close, agent, status))
    return items


@dataclass
class Estate:
    """Every source's data for the given run dates, and the fakes that serve it."""

    dates: list[date]
    bamboo: FakeBambooHr = field(default_factory=FakeBambooHr)
    wbp: FakeGladly = field(default_factory=FakeGladly)
    cnd: FakeGladly = field(default_factory=FakeGladly)
    sprout: FakeSprout = field(default_factory=FakeSprout)

    def __post_init__(self) -> None:
        env = CREDENTIALS
        self.bamboo.company, self.bamboo.key, self.bamboo.fields = (
            COMPANY, env["BAMBOOHR_API_KEY"], list(FIELDS))  # fmt: skip
        self.wbp.user, self.wbp.token = env["GLADLY_API_USER"], env["GLADLY_API_TOKEN"]
        self.cnd.user, self.cnd.token = env["CND_GLADLY_API_USER"], env["CND_GLADLY_API_TOKEN"]
        self.sprout.token, self.sprout.customer = env["SPROUT_API_TOKEN"], SPROUT_CUSTOMER
        self.wbp.session_columns = list(demo_data.SESSION_COLUMNS)
        all_items: list[dict[str, Any]] = []
        for index, run in enumerate(self.dates):
            day = run - timedelta(days=1)  # the window: the local day before the run date
            rng = random.Random(20261200 + index)
            contacts, sessions = demo_data.day_rows(day, rng)
            header = demo_data.CONTACT_COLUMNS
            self.wbp.daily_reports[("ContactTimestampsReport", day.isoformat())] = csv_text(
                header, [[r[c] for c in header] for r in contacts]
            )
            self.wbp.sessions.extend(sessions)
            self.sprout.messages.extend(sprout_messages(day, rng))
            all_items.extend(cnd_items(day, rng, index))
        self._export_jobs(all_items)
        self.set_roster(0)

    def _export_jobs(self, items: list[dict[str, Any]]) -> None:
        """One daily job per UTC day (Gladly's default schedule), completed at 02:00 UTC."""
        first = min(d for d in self.dates) - timedelta(days=3)
        for n in range((max(self.dates) - first).days + 2):
            start = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=n)
            end = start + timedelta(days=1)
            job = f"job-{start:%Y%m%d}"
            self.cnd.jobs.append(
                {
                    "id": job,
                    "scheduleId": "daily",
                    "status": "COMPLETED",
                    "updatedAt": _z(end + timedelta(hours=2)),
                    "parameters": {"type": "CONVERSATIONS", "startAt": _z(start), "endAt": _z(end)},
                    "files": [
                        "agents.jsonl",
                        "conversation_items.jsonl",
                        "customers.jsonl",
                        "topics.jsonl",
                    ],
                }
            )
            lines = [i for i in items if start <= datetime.fromisoformat(i["timestamp"]) < end]
            text = "".join(
                json.dumps(i) + "\n" for i in sorted(lines, key=lambda i: i["timestamp"])
            )
            self.cnd.files[(job, "conversation_items.jsonl")] = text.encode()

    def set_roster(self, index: int) -> None:
        """BambooHR's roster as of the ``index``-th run."""
        self.bamboo.employees = roster(index)

    @contextmanager
    def serving(self) -> Generator[dict[str, str]]:
        """Start the fakes on 127.0.0.1; yields each API's base URL by name."""
        with ExitStack() as stack:
            for api in (self.bamboo, self.wbp, self.cnd, self.sprout):
                stack.enter_context(FakeServer(api))
            yield {"bamboohr": self.bamboo.url, "wbp": self.wbp.url, "cnd": self.cnd.url,
                   "sprout": self.sprout.url}  # fmt: skip


def write_pipelines(urls: Mapping[str, str], dest: Path) -> Path:
    """The estate's pipelines copied under ``dest``, each API source pointed at its fake."""
    where = {"bamboohr_api": "bamboohr", "sprout_social_api": "sprout", "gladly_api": "wbp"}
    for _, name in PIPELINES:
        src = ROOT / "pipelines" / f"{name}.yaml"
        doc = yaml.safe_load(src.read_text(encoding="utf-8"))
        for source in doc["sources"].values():
            if "from_source" in source:
                continue  # derived: it reads its parent's bronze, it calls no API
            kind = where[source["source_type"]]
            if kind == "wbp" and name.startswith("condenast/"):
                kind = "cnd"  # Condé Nast's own Gladly org
            ext = source.setdefault("extractor", {})
            ext.pop("org", None)
            ext["base_url"] = urls[kind]
        out = dest / f"{name}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        note = f"# A copy of pipelines/{name}.yaml pointed at the local fakes (scripts/estate_data.py)\n"
        out.write_text(note + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return dest


def xoelt_env(home: Path, pipelines: Path) -> dict[str, str]:
    """The environment of the ``xoelt`` subprocesses: the copy of the pipelines, the fakes'
    credentials, nothing of the caller's ``XOELT_*`` but its home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    env.update(CREDENTIALS, XOELT_HOME=str(home), XOELT_PIPELINES=str(pipelines))
    return env


class XoeltFailed(SystemExit):
    """``xoelt`` exited non-zero: the exit code, and what it wrote to stderr."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(code)
        self.stderr = stderr


def xoelt(env: Mapping[str, str], *args: str, quiet: bool = False) -> str:
    """Run ``xoelt ARGS`` in the repository; its stdout (an error exits with its code)."""
    proc = subprocess.run(
        [sys.executable, "-m", "xoelt", *args], cwd=ROOT, env=dict(env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise XoeltFailed(proc.returncode, proc.stderr)
    if not quiet:
        sys.stdout.write(proc.stdout)
    return proc.stdout


def run_estate(
    estate: Estate,
    home: Path,
    *,
    pipelines: list[tuple[str, str]] = PIPELINES,
    args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    echo: bool = True,
) -> dict[str, str]:
    """Each run date: core, then WBP_DB's pipelines, then CND_DB's (or ``pipelines``, in
    that order; ``args`` added to each ``xoelt run``). Returns the environment used."""
    with estate.serving() as urls:
        env = xoelt_env(home, write_pipelines(urls, home / "estate" / "pipelines"))
        env.update(extra_env or {})
        for index, run in enumerate(estate.dates):
            estate.set_roster(index)
            for _, name in pipelines:
                out = xoelt(env, "run", name, "--date", run.isoformat(), "--format", "json",
                            *args, quiet=True)  # fmt: skip
                if echo:
                    report = json.loads(out)
                    gold = ", ".join(f"{k} {v}" for k, v in report["gold"].items()) or "-"
                    rows = ", ".join(f"{s['name']} {s['rows'].get('transform', 0)}"
                                     for s in report["sources"])  # fmt: skip
                    print(f"{run}  {name:42s} silver: {rows}; gold: {gold}")
    return env


def estate_table(env: Mapping[str, str]) -> list[tuple[str, str, str, int]]:
    """(database.schema.table, source, strategy, rows) of every table of the estate."""
    rows: dict[str, tuple[str, str, str, int]] = {}
    for _, name in PIPELINES:
        status = json.loads(xoelt(env, "status", name, "--format", "json", quiet=True))
        plan = json.loads(
            xoelt(env, "plan", name, "--date", "2026-11-03", "--format", "json", quiet=True)
        )
        # a derived source's bronze is its parent's: the table is the parent's row
        kinds = {s["bronze_table"]: s for s in plan["sources"] if "from_source" not in s}
        kinds.update({s["silver_table"]: s for s in plan["sources"] if s["silver_table"]})
        for t in status["tables"]:
            src = kinds.get(t["table"])
            if src is None:
                what = (f"{name}: sql/gold", "gold")
            else:
                kind = f"from {src['from_source']}" if "from_source" in src else src["source_type"]
                what = (f"{name}: {src['name']} ({kind})", src["load_strategy"])
            rows.setdefault(t["table"], (t["table"], *what, t["rows"] or 0))
    order = {"BRONZE": 0, "SILVER": 1, "GOLD": 2}
    return sorted(
        rows.values(), key=lambda r: (r[0].split(".")[0], order.get(r[0].split(".")[1], 3), r[0])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["demo", "table"])
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    home = Path(os.environ.get("XOELT_HOME", ".xoelt")).resolve()
    if args.command == "demo":
        estate = Estate(run_dates(args.days))
        env = run_estate(estate, home)
        for database, name in PIPELINES:
            print(f"\n== {database}: xoelt status {name}")
            xoelt(env, "status", name)
    else:
        env = xoelt_env(home, home / "estate" / "pipelines")
    print("\n| table | source | strategy | rows |\n| --- | --- | --- | ---: |")
    for table, source, strategy, count in estate_table(env):
        print(f"| `{table}` | {source} | {strategy} | {count:,} |")


if __name__ == "__main__":
    main()
