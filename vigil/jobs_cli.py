"""`vigil jobs ...` and `vigil export`: the jobs API from the command line.

They talk to a running API (`--api`, or VIGIL_API_URL, default http://127.0.0.1:8000) with
the key in VIGIL_API_KEY when keys are configured. An API error prints its `detail` and
exits 1.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

jobs_app = typer.Typer(help="Background jobs: list, show, cancel, abort.", no_args_is_help=True)

ApiOption = Annotated[
    str,
    typer.Option("--api", envvar="VIGIL_API_URL", help="Base URL of the Vigil API"),
]
FINISHED = {"completed", "failed", "cancelled", "aborted"}
# How long a job just requested may be missing from `GET /api/jobs/{id}` (projector lag).
SHOWN_WITHIN_S = 30.0


def _client(api: str) -> httpx.Client:
    key = os.environ.get("VIGIL_API_KEY")
    return httpx.Client(
        base_url=api, headers={"X-API-Key": key} if key else {}, timeout=httpx.Timeout(60.0)
    )


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        typer.echo(f"error {response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response.json()


@jobs_app.command("list")
def list_jobs(
    api: ApiOption = "http://127.0.0.1:8000",
    status: Annotated[str | None, typer.Option(help="Comma-separated statuses")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Comma-separated types")] = None,
    limit: int = 50,
) -> None:
    """Jobs, newest first: id, type, status, progress, created."""
    params = {"limit": limit, "status": status, "job_type": job_type}
    with _client(api) as client:
        found = _answer(
            client.get(
                "/api/jobs/search", params={k: v for k, v in params.items() if v is not None}
            )
        )
    for job in found["jobs"]:
        typer.echo(
            f"{job['job_id']}  {job['job_type']:<20} {job['status']:<10} "
            f"{job['progress']:>3}%  {job['created_at']}"
        )
    typer.echo(f"{len(found['jobs'])} of {found['count']} job(s)", err=True)


@jobs_app.command("show")
def show_job(job_id: str, api: ApiOption = "http://127.0.0.1:8000") -> None:
    """One job: its status, result or error, and every transition and attempt."""
    with _client(api) as client:
        job = _answer(client.get(f"/api/jobs/{job_id}"))
        history = _answer(client.get(f"/api/jobs/{job_id}/history"))
    typer.echo(f"{job['job_id']}  {job['job_type']}  {job['status']}  {job['progress']}%")
    if job.get("error_message"):
        typer.echo(f"error: {job['error_message']}")
    if job.get("result"):
        typer.echo(f"result: {job['result']}")
    typer.echo("transitions:")
    for t in history["transitions"]:
        moved = f"{t['from_status'] or '-'} -> {t['to_status']}"
        typer.echo(f"  {t['timestamp']}  {moved}  {t['reason']}")
    typer.echo("attempts:")
    for a in history["attempts"]:
        typer.echo(
            f"  #{a['attempt']}  {a['status']:<10} {a['worker_id']}  {a['started_at']}"
            + (f"  {a['error']}" if a.get("error") else "")
        )


@jobs_app.command("cancel")
def cancel_job(job_id: str, api: ApiOption = "http://127.0.0.1:8000") -> None:
    """Cancel a pending job."""
    with _client(api) as client:
        answer = _answer(client.post(f"/api/jobs/{job_id}/cancel"))
    typer.echo(f"{answer['job_id']}: {answer['status']} ({answer['message']})")


@jobs_app.command("abort")
def abort_job(job_id: str, api: ApiOption = "http://127.0.0.1:8000") -> None:
    """Abort a running job (of a type that supports it)."""
    with _client(api) as client:
        answer = _answer(client.post(f"/api/jobs/{job_id}/abort"))
    typer.echo(f"{answer['job_id']}: {answer['status']} ({answer['message']})")


def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write")],
    api: ApiOption = "http://127.0.0.1:8000",
    camera_id: Annotated[str | None, typer.Option(help="Only this camera")] = None,
    risk_level: Annotated[str | None, typer.Option(help="low, medium, high or critical")] = None,
    start_date: Annotated[datetime | None, typer.Option(help="Events from (ISO 8601)")] = None,
    end_date: Annotated[datetime | None, typer.Option(help="Events until (ISO 8601)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    poll_s: Annotated[float, typer.Option(help="Seconds between progress checks")] = 0.5,
) -> None:
    """Export events to a file: starts an export job, shows its progress, downloads the file."""
    body: dict[str, Any] = {
        "camera_id": camera_id,
        "risk_level": risk_level,
        "start_date": start_date.isoformat() if start_date else None,
        "end_date": end_date.isoformat() if end_date else None,
        "format": fmt,
    }
    with _client(api) as client:
        job = _answer(
            client.post("/api/events/export", json={k: v for k, v in body.items() if v is not None})
        )
        job_id = job["job_id"]
        typer.echo(f"export job {job_id}", err=True)
        with typer.progressbar(length=100, label="exporting", file=None) as bar:
            shown = 0
            requested = time.monotonic()
            while job["status"] not in FINISHED:
                time.sleep(poll_s)
                response = client.get(f"/api/jobs/{job_id}")
                # The read model shows a new job once the projector has it: until then (a
                # bounded while) the job is as the request answered, pending.
                if response.status_code == 404 and time.monotonic() - requested < SHOWN_WITHIN_S:
                    continue
                job = _answer(response)
                bar.update(job["progress"] - shown)
                shown = job["progress"]
        if job["status"] != "completed":
            typer.echo(
                f"export {job['status']}: {job.get('error_message') or ''}".rstrip(), err=True
            )
            raise typer.Exit(1)
        with client.stream("GET", f"/api/jobs/{job_id}/download") as response:
            if response.status_code >= 400:
                response.read()
                _answer(response)
            with out.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
    typer.echo(f"wrote {out} ({job['result']['rows']} events, sha256 {job['result']['sha256']})")
