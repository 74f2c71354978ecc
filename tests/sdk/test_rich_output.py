"""Rich results and the changed-files listing."""

from __future__ import annotations

import base64
import json
from textwrap import dedent

from ai_computer import SandboxClient


async def test_matplotlib_figure_arrives_as_png(core_sandbox: SandboxClient) -> None:
    code = dedent("""
        import matplotlib.pyplot as plt
        plt.plot([1, 3, 2])
        plt.show()
    """)
    response = await core_sandbox.execute_code(code)
    assert response.success, response.error
    [bundle] = [b for b in response.data["display"] if "image/png" in b]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    events = [e async for e in core_sandbox.execute_code_stream(code)]
    assert any(e.type == "display" and "image/png" in json.loads(e.data) for e in events)


async def test_dataframe_result_has_html(core_sandbox: SandboxClient) -> None:
    response = await core_sandbox.execute_code("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    [bundle] = response.data["display"]
    assert "<table" in bundle["text/html"] and "text/plain" in bundle
    assert response.data["result"].split() == ["a", "0", "1", "1", "2"]


async def test_changed_files_are_listed(core_sandbox: SandboxClient) -> None:
    code = dedent("""
        import os
        os.makedirs('out', exist_ok=True)
        open('out/report.csv', 'w').write('a,b\\n1,2\\n')
        open('/tmp/not-listed', 'w').write('outside the workspace')
    """)
    first = await core_sandbox.execute_code(code)
    assert first.data["files"] == [{"path": "/workspace/out/report.csv", "size": 8}]
    unchanged = await core_sandbox.execute_code("len(open('out/report.csv').read())")
    assert unchanged.data["files"] == []
    # ipykernel skips user_expressions for code that raised: the files are listed all the same.
    failed = await core_sandbox.execute_code("open('out/partial.csv', 'w').write('a'); 1 / 0")
    assert failed.error == "ZeroDivisionError: division by zero"
    assert failed.data["files"] == [{"path": "/workspace/out/partial.csv", "size": 1}]
    timed_out = await core_sandbox.execute_code(
        "import time; open('out/slow.txt', 'w').write('ab'); time.sleep(30)", timeout=1
    )
    assert timed_out.error == "execution timed out after 1 s"
    assert timed_out.data["files"] == [{"path": "/workspace/out/slow.txt", "size": 2}]
    after = await core_sandbox.execute_code("1 + 1")
    assert (after.data["result"], after.data["files"]) == ("2", [])
    await core_sandbox.fs.remove("out")
