"""The outgoing APEL queue: messages added to a dirq ``QueueSimple`` directory (the layout
APEL's ``ssmsend`` reads), and beside it the count of job records published per site and month
(what the sync records report)."""

from __future__ import annotations

import json
import os

from JenniferDIRAC.WorkloadManagementSystem.Accounting.apelrecords import format_message


def write_message(records: list, outgoing_dir: str) -> str | None:
    """Add one message with ``records`` to the dirq queue in ``outgoing_dir``; its path, or
    None when there is nothing to write. dirq writes a temporary file and renames it, so
    ssmsend never sees half a message."""
    if not records:
        return None
    from dirq.QueueSimple import QueueSimple

    os.makedirs(outgoing_dir, exist_ok=True)
    queue = QueueSimple(outgoing_dir)
    name = queue.add(format_message(records))
    return os.path.join(outgoing_dir, name)


def sync_counts_path(apel_directory: str) -> str:
    """Where the records published per site and month are counted (beside the queue, not in
    it: ssmsend sends every file of the queue)."""
    return os.path.normpath(apel_directory) + ".sync-counts.json"


def _load_counts(path: str) -> dict:
    try:
        with open(path) as stream:
            return {tuple(key): int(count) for key, count in json.load(stream)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as exc:
        raise OSError(f"cannot read the APEL sync counts {path}: {exc}") from None


def _save_counts(path: str, counts: dict) -> None:
    with open(path + ".new", "w") as stream:
        json.dump([[list(key), count] for key, count in sorted(counts.items())], stream)
    os.replace(path + ".new", path)
