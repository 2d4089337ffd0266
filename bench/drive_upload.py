"""Uploads to Google Drive through the real client, against the loopback Drive server.

Prints (1) upload throughput compared with a plain file copy of the same bytes, as a ratio,
and (2) the bytes re-sent when the connection breaks at 90% of a 200 MB upload (target: at
most one chunk).

    python -m bench.drive_upload [--mb 200] [--chunk-mb 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.loopback.drive_server import DEFAULT_ACCOUNT, DriveServer
from workers.drive.client import DriveClient
from workers.drive.settings import DriveSettings, Patience


def make_file(path: Path, megabytes: int) -> None:
    """Incompressible bytes, so nothing on the way can cheat."""
    with path.open("wb") as handle:
        for _ in range(megabytes):
            handle.write(os.urandom(1024 * 1024))


def client_for(server: DriveServer, key: Path, chunk_mb: int) -> DriveClient:
    """A connected client with quick retries."""
    client = DriveClient(
        DriveSettings(
            auth="service_account",
            service_account_file=key,
            api_url=server.url,
            chunk_mb=chunk_mb,
        ),
        Patience(retries=5, backoff_s=0.01),
    )
    client.connect()
    return client


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024
    chunk = args.chunk_mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "payload.bin"
        make_file(source, args.mb)
        with DriveServer(tmp / "server") as server:
            client = client_for(server, server.new_service_account(tmp / "sa.json"), args.chunk_mb)
            # A service account owns no storage: it writes into a shared drive it belongs to.
            shared = server.add_shared_drive("bench", {DEFAULT_ACCOUNT: "fileOrganizer"})
            folder = client.ensure_folder("bench", shared).id
            upload_times, copy_times = [], []
            for i in range(args.runs):
                started = time.perf_counter()
                client.upload(source, folder, title=f"copy-{i}.bin")
                upload_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                shutil.copyfile(source, tmp / f"copy-{i}.bin")
                copy_times.append(time.perf_counter() - started)
                (tmp / f"copy-{i}.bin").unlink()

            armed = False
            fail_at = int(total * 0.9)

            def arm(sent: int, size: int) -> None:
                nonlocal armed
                if not armed and sent + chunk > fail_at:
                    # Break the connection inside the chunk that crosses 90%.
                    server.drop_upload_after(max(1, fail_at - sent))
                    armed = True

            before = server.total_upload_bytes
            item = client.upload(source, folder, title="broken.bin", progress=arm)
            received = server.total_upload_bytes - before
            intact = server.content(item.id) == source.read_bytes()
    upload = statistics.median(upload_times)
    copy = statistics.median(copy_times)
    resent = received - total
    print(f"Drive upload of {args.mb} MB in {args.chunk_mb} MB chunks to the loopback server")
    print(f"upload   median {upload:6.2f} s  ({args.mb / upload:7.1f} MB/s)")
    print(f"copy     median {copy:6.2f} s  ({args.mb / copy:7.1f} MB/s)")
    print(f"throughput ratio upload/copy: {copy / upload:.3f}  (time ratio {upload / copy:.1f}x)")
    print(
        f"break at 90%: re-sent {resent / 1024**2:.2f} MB "
        f"({resent / chunk:.2f} chunks; target <= 1), stored file intact: {intact}"
    )


if __name__ == "__main__":
    main()
