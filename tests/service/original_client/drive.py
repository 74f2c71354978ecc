"""Drives `ai-computer serve` with the original client, ai-computer-client 0.3.4, unmodified.

Run by tests/service/test_original_client.py with the python of a venv that holds only that
client: `python drive.py URL TOKEN FOLDER`. Prints one JSON object of what it saw.
"""

import asyncio
import hashlib
import json
import os
import sys
import time

from ai_computer import SandboxClient  # the original client's package, not ours


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


async def main(url, token, folder):
    seen = {}
    client = SandboxClient(base_url=url, token=token)
    setup = await client.setup()
    seen["setup"] = [setup.success, setup.error]
    seen["sandbox_id"] = client.sandbox_id

    run = await client.execute_code("print('hi')\n6 * 7")
    seen["execute"] = [run.success, run.data]
    failed = await client.execute_code("print('before')\n1 / 0")
    seen["execute_failed"] = [failed.success, failed.data]

    events, arrivals = [], []
    code = "import time\nfor i in range(3):\n    print(f'step {i}', flush=True)\n    time.sleep(0.5)"
    async for event in client.execute_code_stream(code):
        events.append([event.type, event.data])
        arrivals.append(time.monotonic())
    seen["stream"] = events
    seen["stream_first_before_last_s"] = arrivals[-1] - arrivals[0]

    line = await client.execute_shell("ls -la / | wc -l")
    argv = await client.execute_shell("echo", ["a b", "$HOME"])
    seen["shell"] = [line.success, line.data, argv.data]

    odd = os.path.join(folder, 'd\u00e4 "q" 100%.txt')
    with open(odd, "w") as handle:
        handle.write("caf\u00e9\n")
    uploaded = await client.upload_file(odd)
    seen["upload_file"] = [uploaded.success, uploaded.filename, uploaded.size, uploaded.path, uploaded.error]
    into_new = await client.upload_file(odd, "/workspace/new folder")
    seen["upload_file_new_folder"] = [into_new.success, into_new.path, into_new.error]
    in_bytes = await client.upload_bytes(b"\x00\x01binary", "blob.bin", "/workspace/sub")
    seen["upload_bytes"] = [in_bytes.success, in_bytes.filename, in_bytes.size, in_bytes.path, in_bytes.error]
    read = await client.fs.read_file('/workspace/d\u00e4 "q" 100%.txt')
    seen["read_file"] = [read.success, read.data, read.error]
    relative = await client.fs.read_file("sub/blob.bin", encoding=None)
    seen["read_relative"] = [relative.success, relative.data["content"].hex() if relative.success else relative.error]
    back = os.path.join(folder, "back.txt")
    downloaded = await client.download_file('/workspace/d\u00e4 "q" 100%.txt', back)
    seen["download_file"] = [downloaded.success, downloaded.filename, downloaded.size, open(back).read() if downloaded.success else downloaded.error]
    content = await client.download_bytes("sub/blob.bin")
    seen["download_bytes"] = content.hex() if isinstance(content, bytes) else ["failed", content.error]
    written = await client.fs.write_file("/workspace/written.txt", "text")
    seen["write_file"] = [written.success, written.data, written.error]

    script = os.path.join(folder, "job.py")
    with open(script, "w") as handle:
        handle.write("import sys\nprint('job ran as', __name__)\n")
    await client.upload_file(script)
    ran = await client.code.execute_file("/workspace/job.py")
    seen["execute_file"] = [ran.success, ran.data, ran.error]
    missing = await client.code.execute_file("/workspace/none.py")
    seen["execute_file_missing"] = [missing.success, missing.error]
    file_events = [[e.type, e.data] async for e in client.code.execute_file_stream("/workspace/job.py")]
    seen["execute_file_stream"] = file_events

    big = os.path.join(folder, "big.bin")
    with open(big, "wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(1 << 20))
    started = time.monotonic()
    big_up = await client.upload_file(big)
    big_back = os.path.join(folder, "big-back.bin")
    big_down = await client.download_file("/workspace/big.bin", big_back)
    seen["big"] = [big_up.success, big_up.size, big_down.success, big_down.size,
                   digest(big) == digest(big_back) if big_down.success else big_down.error,
                   time.monotonic() - started]

    # A stream client that goes away: the code must stop, and the next call answer at once.
    loop = "import time\nfor i in range(600):\n    open('/workspace/ticks', 'w').write(str(i))\n    print(i, flush=True)\n    time.sleep(0.05)"
    stream = client.execute_code_stream(loop)
    async for event in stream:
        if event.type == "stdout":
            break
    await stream.aclose()
    started = time.monotonic()
    after = await client.execute_code("print('next')")
    seen["after_disconnect"] = [after.success, after.data.get("output"), time.monotonic() - started]
    first = await client.execute_code("open('/workspace/ticks').read()")
    await asyncio.sleep(0.5)
    second = await client.execute_code("open('/workspace/ticks').read()")
    seen["ticks_after_disconnect"] = [first.data.get("result_text"), second.data.get("result_text")]

    sandbox_id = client.sandbox_id
    removed = await client.cleanup()
    seen["cleanup"] = [removed.success, removed.error]
    client.sandbox_id = sandbox_id
    gone = await client.wait_for_ready(max_attempts=1, delay=0.01)
    seen["after_cleanup"] = [gone.success, gone.error]
    print(json.dumps(seen))


asyncio.run(main(*sys.argv[1:4]))
