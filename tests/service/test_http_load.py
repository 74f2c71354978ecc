"""A short load run through HTTP: 10 clients x 20 executions at once, nothing lost or crossed."""

from __future__ import annotations

import asyncio

from service_process import ServiceProcess

from ai_computer import SandboxClient

CLIENTS = 10
EXECUTIONS = 20


async def test_ten_clients_twenty_executions_each(service: ServiceProcess) -> None:
    async def one_client(number: int) -> list[str]:
        async with SandboxClient(base_url=service.url, token=service.token, timeout=60) as client:
            outputs = []
            for index in range(EXECUTIONS):
                if index % 5 == 4:  # some of them streamed
                    code = f"print('c{number}-e{index}')"
                    events = [e async for e in client.execute_code_stream(code)]
                    outputs.append("".join(e.data for e in events if e.type == "stdout"))
                else:
                    response = await client.execute_code(f"print('c{number}-e{index}')")
                    assert response.success, response.error
                    outputs.append(response.data["output"])
            return outputs

    results = await asyncio.wait_for(
        asyncio.gather(*(one_client(number) for number in range(CLIENTS))), 240
    )
    for number, outputs in enumerate(results):
        assert outputs == [f"c{number}-e{index}\n" for index in range(EXECUTIONS)]
