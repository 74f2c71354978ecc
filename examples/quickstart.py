"""Quick start: run code in a sandbox and print its output."""

import asyncio

from ai_computer import SandboxClient


async def main() -> None:
    async with SandboxClient(memory_limit="512M", cpu_limit=1, timeout=60) as client:
        response = await client.execute_code("print('Hello from sandbox!')")
        print(response.data["output"], end="")

        response = await client.execute_code(
            "import os, platform\n"
            "cgroup = '/sys/fs/cgroup/memory/memory.limit_in_bytes'  # cgroup v1; v2: memory.max\n"
            "path = cgroup if os.path.exists(cgroup) else '/sys/fs/cgroup/memory.max'\n"
            "limit = int(open(path).read()) // 2**20\n"
            "print(f'Python {platform.python_version()} as uid {os.getuid()} in {os.getcwd()}, '\n"
            "      f'memory limit {limit} MiB')"
        )
        print(response.data["output"], end="")

        response = await client.execute_code("1 / 0")
        print(f"success={response.success} error={response.error!r}")


if __name__ == "__main__":
    asyncio.run(main())
