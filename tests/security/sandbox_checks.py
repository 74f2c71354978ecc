"""Checks shared by the security tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from ai_computer import SandboxClient


async def still_works(client: SandboxClient) -> None:
    """The sandbox answers plain code after whatever the test did to it."""
    response = await client.execute_code("1 + 1", timeout=30)
    assert response.success, response.error
    assert response.data is not None and response.data["result"] == "2"
