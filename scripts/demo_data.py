"""Deterministic demo data in the shape of Gladly's exports, and a way to drop it in a bucket.

    python scripts/demo_data.py generate   # (re)write pipelines/demo/data/ (committed)
    python scripts/demo_data.py publish    # copy it into the landing bucket of $XOELT_HOME

Contact timestamps use the report's human-readable headers (``Contact ID``, ``Event Type``…);
work sessions use the snake_case columns of ``/reports/work-session-events``.
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "pipelines" / "demo" / "data"
DAYS = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)]
ZONE = ZoneInfo("America/New_York")
AGENTS = [
    ("ag_01", "Ada Brooks"),
    ("ag_02", "Bilal Chen"),
    ("ag_03", "Carmen Diaz"),
    ("ag_04", "Dev Patel"),
    ("ag_05", "Eun-ji Park"),
]
INBOXES = [("ib_sales", "Sales"), ("ib_support", "Support"), ("ib_returns", "Returns")]
CHANNELS = ["CHAT", "EMAIL", "PHONE", "SMS"]
CONTACT_COLUMNS = [
    "Timestamp", "Event Type", "Contact ID", "Conversation ID", "Customer ID", "Channel",
    "Direction", "Inbox ID", "Inbox Name", "Agent ID", "Agent Name",
]  # fmt: skip
SESSION_COLUMNS = [
    "id", "contact_session_id", "contact_session_created_at", "customer_id", "conversation_id",
    "inbox_id", "channel", "direction", "agent_id", "agent_accepted_at",
    "contact_session_ended_at", "status", "within_sla", "work_session_handle_time_sec",
    "work_session_after_contact_time_sec",
]  # fmt: skip


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def day_rows(day: date, rng: random.Random) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    contacts: list[dict[str, str]] = []
    sessions: list[dict[str, str]] = []
    start = datetime(day.year, day.month, day.day, 8, tzinfo=ZONE)
    for n in range(rng.randint(36, 48)):
        created = start + timedelta(minutes=rng.randint(0, 11 * 60))
        accepted = created + timedelta(seconds=rng.randint(10, 900))
        ended = accepted + timedelta(seconds=rng.randint(60, 1800))
        agent_id, agent_name = rng.choice(AGENTS)
        inbox_id, inbox_name = rng.choice(INBOXES)
        channel = rng.choice(CHANNELS)
        direction = "INBOUND" if rng.random() < 0.85 else "OUTBOUND"
        contact = f"ct_{day:%Y%m%d}_{n:03d}"
        conversation = f"cv_{rng.randrange(16**8):08x}"
        customer = f"cu_{rng.randrange(16**6):06x}"
        common = {
            "Contact ID": contact, "Conversation ID": conversation, "Customer ID": customer,
            "Channel": channel, "Direction": direction, "Inbox ID": inbox_id, "Inbox Name": inbox_name,
        }  # fmt: skip
        contacts.append(
            {
                **common,
                "Timestamp": iso(created),
                "Event Type": "CONTACT_CREATED",
                "Agent ID": "",
                "Agent Name": "",
            }
        )
        contacts.append(
            {
                **common,
                "Timestamp": iso(accepted),
                "Event Type": "CONTACT_ASSIGNED",
                "Agent ID": agent_id,
                "Agent Name": agent_name,
            }
        )
        contacts.append(
            {
                **common,
                "Timestamp": iso(ended),
                "Event Type": "CONTACT_ENDED",
                "Agent ID": agent_id,
                "Agent Name": agent_name,
            }
        )
        handle = int((ended - accepted).total_seconds())
        sessions.append(
            {
                "id": f"ws_{day:%Y%m%d}_{n:03d}", "contact_session_id": contact,
                "contact_session_created_at": iso(created), "customer_id": customer,
                "conversation_id": conversation, "inbox_id": inbox_id, "channel": channel,
                "direction": direction, "agent_id": agent_id, "agent_accepted_at": iso(accepted),
                "contact_session_ended_at": iso(ended), "status": "ENDED",
                "within_sla": "true" if (accepted - created).total_seconds() <= 300 else "false",
                "work_session_handle_time_sec": str(handle),
                "work_session_after_contact_time_sec": str(rng.randint(0, 240)),
            }
        )  # fmt: skip
    contacts.sort(key=lambda r: (r["Timestamp"], r["Contact ID"], r["Event Type"]))
    return contacts, sessions


ROSTER_COLUMNS = ["Agent ID", "Name", "Email", "Team", "Status"]


def roster(day: date) -> list[dict[str, str]]:
    """The agent roster export as of ``day``: a slowly changing dimension (SCD2 in silver)."""
    teams = {
        "ag_01": "Sales",
        "ag_02": "Sales",
        "ag_03": "Support",
        "ag_04": "Returns",
        "ag_05": "Support",
    }
    emails = {a: f"{n.split()[0].lower()}@example.com" for a, n in AGENTS}
    rows = []
    for agent_id, name in AGENTS:
        team, email, status = teams[agent_id], emails[agent_id], "ACTIVE"
        if agent_id == "ag_02" and day >= DAYS[1]:
            team = "Support"  # moved teams on the second day
        if agent_id == "ag_03" and day >= DAYS[2]:
            email = "carmen.diaz@example.com"
        if agent_id == "ag_04" and day >= DAYS[2]:
            continue  # left: gone from the third day's export
        rows.append(
            {"Agent ID": agent_id, "Name": name, "Email": email, "Team": team, "Status": status}
        )
    if day >= DAYS[2]:
        rows.append(
            {
                "Agent ID": "ag_06",
                "Name": "Fay Okafor",
                "Email": "fay@example.com",
                "Team": "Returns",
                "Status": "ACTIVE",
            }
        )
    return rows


def write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def generate() -> None:
    rng = random.Random(20261102)
    for day in DAYS:
        contacts, sessions = day_rows(day, rng)
        write(
            DATA / "gladly" / "contact_timestamps" / day.isoformat() / "contact_timestamps.csv",
            CONTACT_COLUMNS,
            contacts,
        )
        write(
            DATA / "gladly" / "work_sessions" / day.isoformat() / "work_sessions.csv",
            SESSION_COLUMNS,
            sessions,
        )
        agents = roster(day)
        write(DATA / "gladly" / "agents" / day.isoformat() / "agents.csv", ROSTER_COLUMNS, agents)
        print(
            f"{day}: {len(contacts)} contact events, {len(sessions)} work sessions, {len(agents)} agents"
        )


def publish() -> None:
    """Drop the demo files into the ``xoelt-landing`` bucket, as an upload process would."""
    sys.path.insert(0, str(ROOT / "src"))
    from xoelt.settings import Settings
    from xoelt.targets import resolve_target

    _, target = resolve_target(None, Settings.from_env())
    store = target.store.open()
    count = 0
    for path in sorted(DATA.rglob("*.csv")):
        store.put_file("xoelt-landing", path.relative_to(DATA).as_posix(), path)
        count += 1
    print(f"published {count} files to {store.uri('xoelt-landing', 'gladly')}")


if __name__ == "__main__":
    {"generate": generate, "publish": publish}[sys.argv[1] if len(sys.argv) > 1 else "generate"]()
