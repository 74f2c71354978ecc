"""Kernel patch, run at start: stream output goes out in bounded pieces, at most
``KERNEL_OUTPUT_LIMIT`` of it per execution, and IPython keeps no copy of it.

- ipykernel sends everything written in one 0.2 s flush interval as one message (a single print
  of 100 MB would be one 100 MB message, after a 400 MB copy in its buffer), and the client
  refuses messages past its size cap: long writes go out in pieces of ``STREAM_CHUNK``
  characters, each flushed before the next is buffered.
- Past ``KERNEL_OUTPUT_LIMIT`` per execution output is dropped here: a client keeps only its
  output_limit anyway, and a flood sent faster than the client reads would pile up in the
  kernel's socket queue and kill it for memory.
- Lone surrogates (``print('\\ud800')``) cannot be encoded: left in, they make the whole flush
  fail and silently lose everything written with them. They become U+FFFD instead.

Cooperative: code in the sandbox can undo it, and then breaks only its own sandbox.
"""

from ipykernel.iostream import OutStream
from IPython import get_ipython

STREAM_CHUNK = 1024 * 1024
KERNEL_OUTPUT_LIMIT = 32 * 1024 * 1024
TRUNCATED = f"\n[output truncated by the sandbox: more than {KERNEL_OUTPUT_LIMIT >> 20}M]\n"

flush_buffers, write = OutStream._flush_buffers, OutStream.write
state = {"msg_id": None, "size": 0, "pending": 0}


def chunked_flush(self):
    for parent, data in flush_buffers(self):
        for start in range(0, len(data), STREAM_CHUNK):
            chunk = data[start : start + STREAM_CHUNK]
            yield parent, chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def chunked_write(self, string):
    if not isinstance(string, str):
        return write(self, string)
    length = len(string)
    msg_id = self.parent_header.get("msg_id")
    if msg_id != state["msg_id"]:
        state.update(msg_id=msg_id, size=0, pending=0)
    room = KERNEL_OUTPUT_LIMIT - state["size"]
    if room <= 0:
        return length
    if length > room:
        string = string[:room] + TRUNCATED
    state["size"] += len(string)
    for start in range(0, len(string), STREAM_CHUNK):
        piece = string[start : start + STREAM_CHUNK]
        write(self, piece)
        state["pending"] += len(piece)
        if state["pending"] >= STREAM_CHUNK:
            state["pending"] = 0
            self.flush()
    return length


class Write:
    # A data descriptor: IPython 9 replaces sys.stdout.write in every cell with a wrapper that
    # keeps all output in memory, forever; that assignment is ignored here.
    def __get__(self, stream, owner=None):
        return chunked_write if stream is None else chunked_write.__get__(stream, owner)

    def __set__(self, stream, value):
        pass


class NoOutputs(dict):
    # IPython 9 also keeps every cell's outputs in history_manager.outputs: keep none.
    def __contains__(self, key):
        return False

    def __getitem__(self, key):
        return []


OutStream._flush_buffers, OutStream.write = chunked_flush, Write()
get_ipython().history_manager.outputs = NoOutputs()
