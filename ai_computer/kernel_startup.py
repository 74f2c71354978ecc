"""What each SDK kernel runs at start (IPython ``exec_lines``) so that an execution can report
the files it created or changed under /workspace: the patch ``inside/changed_files.py``."""

from __future__ import annotations

from .inside import kernel_line

CHANGED_FILES_EXPRESSION = "__import__('_ai_computer').changed_files_json()"
CHANGED_FILES_LIMIT = 1000
"""Most files one execution's ``data["files"]`` lists (the first in path order)."""

CHANGED_FILES_ARGUMENTS = [kernel_line("changed_files.py", LIMIT=CHANGED_FILES_LIMIT)]
"""ipykernel options that install the helper."""
