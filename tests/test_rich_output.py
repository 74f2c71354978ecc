"""Rich results and the changed-files listing."""

from __future__ import annotations

import base64
import json
from textwrap import dedent

from ai_computer import SandboxClient


async def test_matplotlib_figure_arrives_as_png(shared_sandbox: SandboxClient) -> None:
    code = dedent("""
        import matplotlib.pyplot as plt
        plt.plot([1, 3, 2])
        plt.show()
    """)
    response = await shared_sandbox.execute_code(code)
    assert response.success, response.error
    [bundle] = [b for b in response.data["display"] if "image/png" in b]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    events = [e async for e in shared_sandbox.execute_code_stream(code)]
    assert any(e.type == "display" and "image/png" in json.loads(e.data) for e in events)


async def test_dataframe_result_has_html(shared_sandbox: SandboxClient) -> None:
    response = await shared_sandbox.execute_code("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    [bundle] = response.data["display"]
    assert "<table" in bundle["text/html"] and "text/plain" in bundle
    assert response.data["result"].split() == ["a", "0", "1", "1", "2"]


async def test_changed_files_are_listed(shared_sandbox: SandboxClient) -> None:
    code = dedent("""
        import os
        os.makedirs('out', exist_ok=True)
        open('out/report.csv', 'w').write('a,b\\n1,2\\n')
        open('/tmp/not-listed', 'w').write('outside the workspace')
    """)
    first = await shared_sandbox.execute_code(code)
    assert first.data["files"] == [{"path": "/workspace/out/report.csv", "size": 8}]
    unchanged = await shared_sandbox.execute_code("len(open('out/report.csv').read())")
    assert unchanged.data["files"] == []
    await shared_sandbox.fs.remove("out")
