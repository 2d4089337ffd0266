"""What an offline W&B run wrote, read back from its files."""

from __future__ import annotations

from pathlib import Path


def wandb_history(run_dir: Path) -> list[dict[str, object]]:
    """The history rows (``run.log`` calls) in an offline W&B run folder, read from its
    ``.wandb`` file: a LevelDB-style log of protobuf records after a 7-byte header."""
    import json

    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, parts, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # whole, or first part
            parts = payload
        elif kind in (3, 4):  # middle or last part
            parts += payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record.FromString(parts)  # type: ignore[attr-defined]
            if record.HasField("history"):
                rows.append(
                    {
                        (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows
