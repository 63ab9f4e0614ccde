"""The browser UI (`artifacts ui`) and self-contained HTML reports (`artifacts report`) over a store.

Read-only, served from the installed package (templates and vendored scripts), and safe on untrusted
store content: every value is escaped, no inline script runs, and downloads are attachments.
"""

from __future__ import annotations

from .app import create_app
from .report import write_report

__all__ = ["create_app", "write_report"]
