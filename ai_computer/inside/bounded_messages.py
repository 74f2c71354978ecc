"""Kernel patch, run at start: output too big for one message (a 20 MB HTML display, an
exception with a 20 MB message) is sent as a one-line notice in its place, because the relay
would refuse the message and break the sandbox.

``LIMIT`` (bytes) is given by the host when the patch runs: the relay's message limit, less
room for what it counts besides header and content. Cooperative, like the stream limits: code
that undoes it breaks only its own sandbox.
"""

from jupyter_client.session import Session

LIMIT = int(globals()["LIMIT"])  # given by the host (kernel/startup.py: kernel_arguments)

serialize = Session.serialize


def bounded_serialize(self, msg, ident=None):
    frames = serialize(self, msg, ident)
    size = sum(len(frame) for frame in frames)
    content = msg.get("content") if isinstance(msg, dict) else None
    if size <= LIMIT or not isinstance(content, dict):
        return frames
    msg_type = msg["header"]["msg_type"]
    notice = (
        f"[{msg_type} of {size / 1048576:.1f}M not shown: the sandbox sends at most "
        f"{LIMIT / 1048576:.1f}M in one message]"
    )
    if "data" in content:  # display_data, update_display_data, execute_result
        content = dict(content, data={"text/plain": notice}, metadata={})
    elif "traceback" in content:  # error, and the execute_reply of an error
        evalue = str(content.get("evalue", ""))
        content = dict(content, evalue=evalue[:1000], traceback=[notice])
    else:
        return frames
    return serialize(self, dict(msg, content=content), ident)


Session.serialize = bounded_serialize
