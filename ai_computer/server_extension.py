"""Where Jupyter Server configuration that predates ``ai_computer.jupyter`` finds the extension."""

from .jupyter.server_extension import (
    _jupyter_server_extension_points,
    _load_jupyter_server_extension,
)

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]
