"""The worker's metrics endpoint over a real socket."""

from __future__ import annotations

import urllib.request

import pytest

from teledispatch.worker import metrics


def test_serve_single_process_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a multiprocess directory the process's own registry is served (port 0: any)."""
    monkeypatch.setenv(metrics.PORT_ENV, "0")
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    monkeypatch.delenv(metrics.MULTIPROC_ENV.lower(), raising=False)
    bound = metrics.serve()
    assert bound is not None
    host, port = bound
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "# TYPE teledispatch_requests_total counter" in text
