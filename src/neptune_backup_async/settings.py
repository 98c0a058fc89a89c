"""What one backup is asked to do: every option, in one object built once.

The command line and :func:`~.api.backup` build it; the processes, the workers and the
pipeline receive it whole, so an option is added in one place.
"""

from __future__ import annotations

#: Where the token is read from when none is passed.
TOKEN_ENV = "NEPTUNE_API_TOKEN"
